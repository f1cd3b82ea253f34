"""What the risk guardian costs per order: orders per second through the
execution service and the paper broker, with the guardian and with a
pass-through check in its place, measured in the same run.

One order's round trip, as in the daemon: ``ExecutionService.submit`` (the
pre-trade checks, then the broker's queue), then one tick of the order's symbol
through ``ExecutionService.on_tick`` (the fill, the book, the guardian's fill
hook, the marks, then the guardian's price watch: stop-losses, daily loss and
limits the market broke). The pass-through approves every order and watches
nothing, so the ratio is the whole cost of risk: pre-trade and post-trade.

The load: 20 strategies over 5 symbols, each order 10 units buying into a flat
position or selling out of a long one, so each position swings between 0 and
10 units and every check runs (rate windows, position value, gross exposure,
stop-loss and daily loss) without refusing anything. A ManualClock moves 1 ms
per order: 1000 orders a second for the whole daemon, 3000 a minute per
strategy, both within the limits configured here. Each set-up runs a warm-up,
then the two are timed in turn, seven times, and
the best run of each is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.report import Verdict as BenchVerdict
from bench.report import machine, table
from gateways.config import LoggingConfig
from gateways.logs import configure_logging
from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import TradeExecuted
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order, Side, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import (
    NO_ACTIONS,
    Halt,
    PreTradeCheck,
    RiskActions,
    RiskGuardian,
    Verdict,
)
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

START = 1_700_000_000.0
STRATEGIES = 20
SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")
QUANTITY = 10.0
STEP_SECONDS = 0.001
WARMUP_ORDERS = 10_000
MEASURED_ORDERS = 30_000
REPEATS = 4

LIMITS = StrategyRunConfig(
    symbols=SYMBOLS,
    max_position_value=10_000.0,
    max_orders_per_minute=10_000,
    stop_loss_percentage=0.02,
)
RISK = RiskConfig(
    max_gross_exposure=1_000_000.0,
    max_orders_per_second=100_000,
    max_daily_loss=1_000_000.0,
)


class PassThrough:
    """The baseline: approves every order, watches nothing."""

    def check(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        return Verdict(order)

    def on_fill(self, fill: Fill, change: PositionChange | None) -> RiskActions:
        return NO_ACTIONS

    def on_price(self, tick: Tick, halt: Halt | None) -> RiskActions:
        return NO_ACTIONS

    def cancelled(self, order: Order, reason: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Run:
    orders: int
    seconds: float

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.seconds

    @property
    def micros_per_order(self) -> float:
        return self.seconds / self.orders * 1e6


class Bench:
    """One execution service with ``check`` as its risk, and a fill counter."""

    def __init__(self, guarded: bool) -> None:
        self.clock = ManualClock(START)
        bus = EventBus()
        bus.subscribe(self._count)
        book = PortfolioBook()
        ids = SequentialIds()
        check: PreTradeCheck = (
            RiskGuardian(RISK, book, bus, self.clock, ids) if guarded else PassThrough()
        )
        broker = PaperBroker(PaperBrokerConfig(slippage_bps=1.0), self.clock, ids)
        self.execution = ExecutionService(bus, self.clock, book, broker, check, ids)
        self.filled = self.refused = 0
        self._step = 0
        for symbol in SYMBOLS:
            self.execution.on_tick(Tick(symbol, 100.0, 1.0, START))

    def _count(self, event: object) -> None:
        if isinstance(event, TradeExecuted):
            if event.fill.status is TradeStatus.FILLED:
                self.filled += 1
            else:
                self.refused += 1

    def run(self, orders: int) -> float:
        execution, clock = self.execution, self.clock
        started = time.perf_counter()
        for _ in range(orders):
            step = self._step = self._step + 1
            clock.advance(STEP_SECONDS)
            now = clock.now()
            strategy = f"s{step % STRATEGIES}"
            symbol = SYMBOLS[step % len(SYMBOLS)]
            held = execution.book.portfolio(strategy).position(symbol)
            side = Side.SELL if held > 0 else Side.BUY
            order = Order(execution.new_order_id(), strategy, symbol, side, QUANTITY, now)
            execution.submit(order, LIMITS)
            # A small wobble around 100: never 2 % against a position.
            price = 100.0 + (step % 7 - 3) * 0.05
            execution.on_tick(Tick(symbol, price, 1.0, now))
        return time.perf_counter() - started


def measure() -> tuple[Run, Run]:
    """The guardian and the baseline, timed in alternation so both see the same machine."""
    benches = (Bench(guarded=True), Bench(guarded=False))
    for bench in benches:
        bench.run(WARMUP_ORDERS)
    best = [float("inf"), float("inf")]
    for _ in range(REPEATS):
        for i, bench in enumerate(benches):
            best[i] = min(best[i], bench.run(MEASURED_ORDERS))
    for bench in benches:
        if bench.refused:
            raise RuntimeError(f"{bench.refused} orders were refused: the load must pass")
    return Run(MEASURED_ORDERS, best[0]), Run(MEASURED_ORDERS, best[1])


def main() -> list[BenchVerdict]:
    configure_logging(LoggingConfig(level="warning"))
    guarded, baseline = measure()
    rows = [
        (
            "pass-through check",
            baseline.orders,
            baseline.orders_per_second,
            baseline.micros_per_order,
        ),
        ("risk guardian", guarded.orders, guarded.orders_per_second, guarded.micros_per_order),
    ]
    print(
        table(
            "Orders through risk and the paper broker (submit, fill on the next tick)",
            ("set-up", "orders", "orders/s", "us/order"),
            rows,
        )
    )
    ratio = guarded.orders_per_second / baseline.orders_per_second
    added = guarded.micros_per_order - baseline.micros_per_order
    print(
        f"with checks / without: {ratio:.2f} of the throughput; "
        f"the risk guardian adds {added:.1f} us per order"
    )
    print(f"({machine()}; {STRATEGIES} strategies, {len(SYMBOLS)} symbols, best of {REPEATS})")
    figure = f"{guarded.orders_per_second:,.0f}/s, {ratio:.2f} of unchecked"
    return [BenchVerdict("orders through risk and the paper broker", figure, "none", None)]


if __name__ == "__main__":
    main()
