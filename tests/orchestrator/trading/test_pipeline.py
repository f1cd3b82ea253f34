"""The order pipeline behind the execution service: the broker's fills are settled
after the broker's call returns, never from inside it, and the broker is injected."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from orchestrator.bus import EventBus
from orchestrator.kernel import build_trading_core
from orchestrator.marketdata.config import MarketDataConfig
from orchestrator.marketdata.feeds import TickSink
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event, HaltSource, OrderSubmitted, TradeExecuted
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, OrderPurpose, Side, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import NO_ACTIONS, Halt, RiskActions, RiskGuardian, Verdict
from orchestrator.strategy.config import RuntimeConfig, StrategyRunConfig
from orchestrator.trading.broker import NO_FILLS
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

T0 = 1_700_000_000.0
LIMITS = StrategyRunConfig(symbols=("AAPL",), max_orders_per_minute=1_000, stop_loss_percentage=0)


class SpyBroker:
    """A paper broker that logs every call with how deep in broker calls it came."""

    def __init__(self, clock: ManualClock, ids: SequentialIds) -> None:
        self._broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0), clock, ids)
        self.calls: list[tuple[str, int]] = []
        self._depth = 0

    @property
    def pending_count(self) -> int:
        return self._broker.pending_count

    def pending_orders(self) -> list[Order]:
        self.calls.append(("pending_orders", self._depth))
        return self._broker.pending_orders()

    def submit(self, order: Order) -> Sequence[Fill]:
        return self._call("submit", lambda: self._broker.submit(order))

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        return self._call("on_tick", lambda: self._broker.on_tick(tick))

    def expire(self) -> Sequence[Fill]:
        return self._call("expire", self._broker.expire)

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return self._call("cancel_all", lambda: self._broker.cancel_all(reason))

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        return self._call(
            "cancel_strategy", lambda: self._broker.cancel_strategy(strategy_id, reason)
        )

    def _call(self, name: str, call: Callable[[], Sequence[Fill]]) -> Sequence[Fill]:
        self.calls.append((name, self._depth))
        self._depth += 1
        try:
            return call()
        finally:
            self._depth -= 1


class ExitOnEveryEntry:
    """A risk check that approves everything and answers each opening fill with
    an exit, as a stop-loss reached at the fill price would."""

    def __init__(self, ids: SequentialIds) -> None:
        self._ids = ids

    def check(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        return Verdict(order)

    def on_fill(self, fill: Fill, change: PositionChange | None) -> RiskActions:
        if change is None or change.opened_quantity == 0.0:
            return NO_ACTIONS
        side = Side.SELL if change.quantity_after > 0 else Side.BUY
        exit_order = Order(
            self._ids("order"),
            fill.strategy_id,
            fill.symbol,
            side,
            abs(change.quantity_after),
            fill.ts,
            OrderPurpose.STOP_LOSS,
        )
        return RiskActions(exits=((exit_order, LIMITS),))

    def on_price(self, tick: Tick, halt: Halt | None) -> RiskActions:
        return NO_ACTIONS

    def cancelled(self, order: Order, reason: str) -> None:
        return None


@dataclass
class Service:
    clock: ManualClock
    book: PortfolioBook
    broker: SpyBroker
    execution: ExecutionService
    ids: SequentialIds
    events: list[Event] = field(default_factory=list)

    def order(self, order_id: str, side: Side = Side.BUY, strategy: str = "s1") -> Order:
        return Order(order_id, strategy, "AAPL", side, 10.0, self.clock.now())

    def trades(self) -> list[tuple[str, TradeStatus]]:
        return [
            (event.fill.order_id, event.fill.status)
            for event in self.events
            if isinstance(event, TradeExecuted)
        ]


def service(**risk: object) -> Service:
    clock, bus, book, ids = ManualClock(T0), EventBus(), PortfolioBook(), SequentialIds()
    broker = SpyBroker(clock, ids)
    check = (
        RiskGuardian(RiskConfig.model_validate(risk), book, bus, clock, ids)
        if risk
        else ExitOnEveryEntry(ids)
    )
    execution = ExecutionService(bus, clock, book, broker, check, ids)
    made = Service(clock, book, broker, execution, ids)
    bus.subscribe(made.events.append)
    return made


def test_an_exit_a_fill_triggers_goes_to_the_broker_after_on_tick_returned() -> None:
    s = service()
    assert s.execution.submit(s.order("order_a"), LIMITS)
    assert s.execution.submit(s.order("order_b", strategy="s2"), LIMITS)
    s.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    # Each entry's fill asked for an exit; both were submitted at depth 0, after
    # on_tick had returned both fills, and neither was filled by that tick.
    assert s.broker.calls == [
        ("submit", 0),
        ("submit", 0),
        ("on_tick", 0),
        ("submit", 0),
        ("submit", 0),
    ]
    assert s.trades() == [("order_a", FILLED), ("order_b", FILLED)]
    assert s.execution.projected_position("s1", "AAPL") == 0.0  # 10 held, -10 in flight
    assert s.book.portfolio("s1").position("AAPL") == 10.0
    s.execution.on_tick(Tick("AAPL", 99.0, 1.0, T0 + 1))
    assert s.book.portfolio("s1").position("AAPL") == 0.0
    assert s.book.portfolio("s2").position("AAPL") == 0.0


def test_each_fill_of_a_tick_is_settled_and_acted_on_before_the_next() -> None:
    s = service()
    s.execution.submit(s.order("order_a"), LIMITS)
    s.execution.submit(s.order("order_b", strategy="s2"), LIMITS)
    s.events.clear()
    s.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    kinds = [
        (type(event).__name__, event.fill.order_id)
        if isinstance(event, TradeExecuted)
        else (type(event).__name__, event.order.strategy_id)
        for event in s.events
        if isinstance(event, TradeExecuted | OrderSubmitted)
    ]
    assert kinds == [
        ("TradeExecuted", "order_a"),
        ("OrderSubmitted", "s1"),
        ("TradeExecuted", "order_b"),
        ("OrderSubmitted", "s2"),
    ]


def test_a_fill_that_engages_the_kill_switch_cancels_after_on_tick_returned() -> None:
    s = service(max_daily_loss=50.0, daily_loss_blocks_all=True)
    s.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    assert s.execution.submit(s.order("order_1"), LIMITS)
    s.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    s.clock.advance(1.0)
    s.execution.on_tick(Tick("AAPL", 96.0, 1.0, T0 + 1))  # 40 down: under the limit
    assert s.execution.submit(s.order("order_2", side=Side.SELL), LIMITS)
    assert s.execution.submit(s.order("order_3", strategy="s2"), LIMITS)
    s.broker.calls.clear()
    # order_2 sells 10 at 94: 60 lost, the limit: its fill engages the kill switch,
    # which cancels order_3 (already withdrawn by the tick, so it fills instead).
    s.execution.on_tick(Tick("AAPL", 94.0, 1.0, T0 + 1))
    assert s.execution.halt is not None and s.execution.halt.block_all
    assert all(depth == 0 for _, depth in s.broker.calls)
    assert s.broker.calls[0] == ("on_tick", 0)
    assert s.trades()[-2:] == [("order_2", FILLED), ("order_3", FILLED)]


def test_stopping_a_strategy_and_shutting_down_settle_the_cancelled_orders() -> None:
    s = service()
    s.execution.submit(s.order("order_a"), LIMITS)
    s.execution.submit(s.order("order_b", strategy="s2"), LIMITS)
    s.execution.cancel_strategy("s1", "strategy stopped")
    assert s.execution.projected_position("s1", "AAPL") == 0.0
    s.execution.cancel_pending("daemon shutting down")
    assert s.execution.projected_position("s2", "AAPL") == 0.0
    assert s.trades() == [("order_a", TradeStatus.REJECTED), ("order_b", TradeStatus.REJECTED)]


class InstantVenue:
    """A broker that fills every order on submission, as some venues do."""

    def __init__(self) -> None:
        self.submitted: list[Order] = []

    @property
    def pending_count(self) -> int:
        return 0

    def pending_orders(self) -> list[Order]:
        return []

    def submit(self, order: Order) -> Sequence[Fill]:
        self.submitted.append(order)
        fill = Fill(
            f"venue_{order.id}",
            order.id,
            order.strategy_id,
            order.symbol,
            order.side,
            order.quantity,
            101.0,
            0.0,
            order.ts,
            FILLED,
        )
        return [fill]

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        return NO_FILLS

    def expire(self) -> Sequence[Fill]:
        return NO_FILLS

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return NO_FILLS

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        return NO_FILLS


def test_another_broker_plugs_into_the_execution_service() -> None:
    clock, bus, book, ids = ManualClock(T0), EventBus(), PortfolioBook(), SequentialIds()
    venue = InstantVenue()
    guardian = RiskGuardian(RiskConfig(), book, bus, clock, ids)
    execution = ExecutionService(bus, clock, book, venue, guardian, ids)
    trades: list[TradeExecuted] = []
    bus.subscribe(lambda event: trades.extend([event] if isinstance(event, TradeExecuted) else []))
    execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    assert execution.submit(Order("order_1", "s1", "AAPL", Side.BUY, 5.0, T0), LIMITS)
    assert [o.id for o in venue.submitted] == ["order_1"]
    [trade] = trades
    assert trade.fill.price == 101.0 and trade.change is not None
    assert book.portfolio("s1").position("AAPL") == 5.0
    assert execution.projected_position("s1", "AAPL") == 5.0  # nothing left in flight


# ---------------------------------------------------------------- the kernel


class NoTicks:
    symbols = ("AAPL",)

    def history(self, until: float) -> list[Tick]:
        return []

    async def run(self, sink: TickSink) -> None:
        return None


@dataclass(frozen=True)
class Components:
    """The component configs the kernel builds the core from."""

    market_data: MarketDataConfig = field(default_factory=MarketDataConfig)
    broker: PaperBrokerConfig = field(
        default_factory=lambda: PaperBrokerConfig(slippage_bps=7.0, max_pending_orders=3)
    )
    risk: RiskConfig = field(default_factory=RiskConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def test_the_kernel_builds_the_paper_broker_and_injects_it() -> None:
    config = Components()
    clock = ManualClock(T0)
    core = build_trading_core(config, EventBus(), clock, feed=NoTicks())
    assert core.execution.broker is core.brokers  # paper, or a live strategy's venue
    broker = core.brokers.paper
    assert isinstance(broker, PaperBroker)
    assert broker.config is config.broker
    core.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    core.execution.submit(Order("order_1", "s1", "AAPL", Side.BUY, 1.0, T0), LIMITS)
    assert broker.pending_count == 1  # the execution service sends to that broker
    core.execution.on_tick(Tick("AAPL", 100.0, 1.0, T0))
    assert core.execution.book.portfolio("s1").get("AAPL") is not None
    position = core.execution.book.portfolio("s1").get("AAPL")
    assert position is not None
    assert position.entry_price == pytest.approx(100.0 * (1 + 7.0 / 1e4))


class AnsweringLater:
    """A venue's stand-in whose orders stay on their way until :meth:`answer`: a cancel
    only asks (the venue may have filled the order already)."""

    def __init__(self) -> None:
        self.submitted: list[Order] = []
        self._answers: list[Fill] = []

    @property
    def pending_count(self) -> int:
        return len(self.pending_orders())

    def pending_orders(self) -> list[Order]:
        answered = {fill.order_id for fill in self._answers}
        return [order for order in self.submitted if order.id not in answered]

    def submit(self, order: Order) -> Sequence[Fill]:
        self.submitted.append(order)
        return NO_FILLS

    def answer(self, order: Order) -> None:
        self._answers.append(
            Fill(f"venue_{order.id}", order.id, order.strategy_id, order.symbol, order.side,
                 order.quantity, 100.0, 0.0, order.ts, FILLED)
        )  # fmt: skip

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        return NO_FILLS

    def expire(self) -> Sequence[Fill]:
        answers, self._answers = self._answers, []
        return answers

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return NO_FILLS

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        return NO_FILLS


def flattening_with_an_order_on_its_way() -> tuple[ExecutionService, AnsweringLater, Order]:
    clock, bus, book, ids = ManualClock(T0), EventBus(), PortfolioBook(), SequentialIds()
    venue = AnsweringLater()
    guardian = RiskGuardian(RiskConfig(), book, bus, clock, ids)
    execution = ExecutionService(bus, clock, book, venue, guardian, ids)
    execution.on_tick(Tick("AAPL", 100.0, 1.0, clock.now()))
    bought = Order("order_buy", "s1", "AAPL", Side.BUY, 10.0, clock.now())
    assert execution.submit(bought, LIMITS)
    execution.engage_kill_switch(Halt("flat", True, HaltSource.COMMAND, clock.now()))
    assert execution.flatten({"s1": LIMITS}, "flat") == []  # nothing held yet
    return execution, venue, bought


def test_a_fill_of_an_order_on_its_way_when_flattening_is_closed_as_it_comes() -> None:
    execution, venue, bought = flattening_with_an_order_on_its_way()
    venue.answer(bought)
    execution.collect()
    [_, closing] = venue.submitted
    assert (closing.side, closing.quantity, closing.purpose) == (
        Side.SELL,
        10.0,
        OrderPurpose.STRATEGY_STOP,
    )
    assert execution.projected_position("s1", "AAPL") == 0.0


def test_once_trading_resumed_a_late_fill_is_kept() -> None:
    execution, venue, bought = flattening_with_an_order_on_its_way()
    execution.release_kill_switch("resumed")
    venue.answer(bought)
    execution.collect()
    assert venue.submitted == [bought]
    assert execution.book.quantity("s1", "AAPL") == 10.0
