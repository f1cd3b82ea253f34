"""Resting orders: orders per second through risk and the pipeline, against market
orders in the same run; and a backtest with stop entries and brackets against
backtesting.py with the same orders.

**Through risk and the pipeline.** The daemon's path, as ``risk_bench``'s: an
``ExecutionService`` with the ``RiskGuardian`` and the ``PaperBroker`` (1 bp of
slippage), on a ManualClock that moves 1 ms per placement. 20 strategies place,
across 50 symbols, 10,000 resting LIMIT buys of one unit each (10 per strategy and
symbol, at 99.0 to 99.9 while the last price is 100: every check of docs/risk.md
runs at placement, ``maxPositionValue`` counting the resting entries, and nothing
is refused), through ``ExecutionService.submit``. Then one tick per symbol at 98.5
touches every order of its symbol: each is triggered, checked again at the trigger
(``check_trigger``), executed by the broker and settled in the book. Twice: plain
limits, and limits with a bracket (a stop-loss at 90 and a take-profit at 110,
which each fill arms: 20,000 exits resting after the ticks). Each run is a fresh
service (set-up untimed) after a discarded warm-up run; the best placement and
the best ticks of 3 runs are kept.
The baseline, in the same run, is ``risk_bench``'s market-order round trip: a
market order through risk and the broker, filled by the next tick of its symbol
(20 strategies, 5 symbols, 10,000 orders after a warm-up of 10,000, best of 3).
"Round trip" is placement to fill for both: a resting order's placement plus its
share of the ticks.

**Backtest.** What a backtest job runs (``run_backtest``'s engine,
``build_engine``) on the catalog entry ``kind = "bollinger_breakout"``, ``params =
{period = 20, num_std = 2.0, allow_short = true, entry = "stop", stop_loss_pct,
take_profit_pct}`` (3 % / 6 % on GOOG, 0.2 % / 0.4 % on EURUSD), run config
``maxPositionValue = 10,000``, ``stopLossPercentage = 0``, sizing fraction 0.5
(so that no gap through a stop takes the position past the limit at its
trigger, which backtesting.py does not have), no slippage, no commission; against
the same orders on backtesting.py (:class:`BollingerStopsRule`, the bands from the
same indicator class so the same floats: ``self.buy(stop=, sl=, tp=)``). Data:
backtesting.py's GOOG (2,148 daily bars) and EURUSD tiled 10 times (50,000 hourly
bars, as ``backtest_bench`` tiles it). CPU seconds of the best of 2 runs of each
(time.process_time); the bench checks that every trade is the same (direction,
entry and exit bar and price). tests/orchestrator/backtest/test_bollinger_orders.py
holds the same comparison on the untiled samples.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import structlog
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.test import GOOG

from bench.backtest_bench import tiled_eurusd, to_bars
from bench.report import Verdict, machine, table
from bench.risk_bench import Bench as MarketBench
from orchestrator.backtest.engine import (
    BacktestSpec,
    FileSource,
    build_engine,
    load_strategy,
)
from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import TradeExecuted
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Bracket, Order, OrderType, Side, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import RiskGuardian
from orchestrator.strategy.config import CatalogEntry, RuntimeConfig, StrategyRunConfig
from orchestrator.strategy.indicators import BollingerBands
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook

START = 1_700_000_000.0
STRATEGIES = 20
SYMBOLS = tuple(f"S{i:02d}" for i in range(50))
PER_STRATEGY_AND_SYMBOL = 10
RESTING = STRATEGIES * len(SYMBOLS) * PER_STRATEGY_AND_SYMBOL
LAST_PRICE, TOUCH_PRICE = 100.0, 98.5
BRACKET = Bracket(stop_loss=90.0, take_profit=110.0)
MARKET_ORDERS = 10_000
REPEATS = 3

LIMITS = StrategyRunConfig(
    symbols=SYMBOLS,
    max_position_value=10_000.0,
    max_orders_per_minute=10_000,
    stop_loss_percentage=0.02,
)
RISK = RiskConfig(
    max_gross_exposure=100_000_000.0,
    max_orders_per_second=100_000,
    max_daily_loss=1_000_000.0,
)

PERIOD, NUM_STD = 20, 2.0
BACKTEST_BRACKETS = {"GOOG": (0.03, 0.06), "EURUSD": (0.002, 0.004)}
TILES = 10
BACKTEST_REPEATS = 2


# --------------------------------------------------------------------------- the pipeline


class RestingBench:
    """One execution service with the guardian, the 50 symbols priced at 100."""

    def __init__(self, bracket: Bracket | None) -> None:
        self.clock = ManualClock(START)
        bus = EventBus()
        bus.subscribe(self._count)
        book = PortfolioBook()
        ids = SequentialIds()
        guardian = RiskGuardian(RISK, book, bus, self.clock, ids)
        broker = PaperBroker(PaperBrokerConfig(slippage_bps=1.0), self.clock, ids)
        self.execution = ExecutionService(bus, self.clock, book, broker, guardian, ids)
        self.bracket = bracket
        self.filled = self.refused = 0
        for symbol in SYMBOLS:
            self.execution.on_tick(Tick(symbol, LAST_PRICE, 1.0, START))

    def _count(self, event: object) -> None:
        if isinstance(event, TradeExecuted):
            if event.fill.status is TradeStatus.FILLED:
                self.filled += 1
            else:
                self.refused += 1

    def place(self) -> float:
        """Every resting order through the checks; seconds taken."""
        execution, clock = self.execution, self.clock
        started = time.perf_counter()
        for level in range(PER_STRATEGY_AND_SYMBOL):
            limit = 99.0 + level / 10
            for symbol in SYMBOLS:
                for strategy in range(STRATEGIES):
                    clock.advance(0.001)
                    order = Order(
                        execution.new_order_id(), f"s{strategy}", symbol, Side.BUY, 1.0,
                        clock.now(), order_type=OrderType.LIMIT, limit_price=limit,
                        bracket=self.bracket,
                    )  # fmt: skip
                    execution.submit(order, LIMITS)
        return time.perf_counter() - started

    def touch(self) -> float:
        """One tick per symbol through all its orders; seconds taken."""
        execution, now = self.execution, self.clock.now()
        started = time.perf_counter()
        for symbol in SYMBOLS:
            execution.on_tick(Tick(symbol, TOUCH_PRICE, 1.0, now))
        return time.perf_counter() - started

    def resting(self) -> int:
        return sum(len(self.execution.open_orders(f"s{s}")) for s in range(STRATEGIES))


@dataclass(frozen=True, slots=True)
class RestingRun:
    name: str
    place: float
    touch: float
    resting_after_place: int
    filled: int
    resting_after_touch: int

    @property
    def round_trip(self) -> float:
        return self.place + self.touch


def measure_resting(name: str, bracket: Bracket | None) -> RestingRun:
    """The best placement and the best ticks of REPEATS fresh runs, after a warm-up."""
    place = touch = math.inf
    run: RestingRun | None = None
    for attempt in range(REPEATS + 1):  # the first is a warm-up
        bench = RestingBench(bracket)
        placing = bench.place()
        placed = bench.resting()
        touching = bench.touch()
        if bench.refused or bench.filled != RESTING:
            raise RuntimeError(f"{name}: {bench.filled} filled, {bench.refused} refused")
        if attempt:
            place, touch = min(place, placing), min(touch, touching)
        run = RestingRun(name, place, touch, placed, bench.filled, bench.resting())
    assert run is not None
    return run


def measure_market() -> float:
    """risk_bench's guarded round trip: seconds for MARKET_ORDERS orders, best run."""
    bench = MarketBench(guarded=True)
    bench.run(MARKET_ORDERS)
    best = min(bench.run(MARKET_ORDERS) for _ in range(REPEATS))
    if bench.refused:
        raise RuntimeError(f"{bench.refused} market orders were refused")
    return best


def pipeline_report(runs: Sequence[RestingRun], market: float) -> tuple[str, list[Verdict]]:
    market_rate = MARKET_ORDERS / market
    rows: list[list[object]] = [
        ["market (risk_bench)", MARKET_ORDERS, "-", "-", MARKET_ORDERS, market_rate, "1.00"]
    ]
    for run in runs:
        rate = RESTING / run.round_trip
        rows.append(
            [
                run.name,
                RESTING,
                RESTING / run.place,
                RESTING / run.touch,
                run.filled,
                rate,
                f"{rate / market_rate:.2f}",
            ]
        )
    title = (
        f"Resting orders through risk and the pipeline: {RESTING:,} limit buys, "
        f"{STRATEGIES} strategies x {len(SYMBOLS)} symbols, then one tick per symbol "
        f"touching them all ({machine()}; best of {REPEATS})"
    )
    headers = ["orders", "count", "placed/s", "triggered+filled/s", "filled", "round trip/s",
               "vs market"]  # fmt: skip
    lines = [table(title, headers, rows)]
    for run in runs:
        lines.append(
            f"{run.name}: {run.resting_after_place:,} resting after placement, "
            f"{run.resting_after_touch:,} after the ticks (a bracket's two exits per fill)"
        )
    verdicts = [
        Verdict(
            f"resting {run.name} orders through risk and the pipeline, placed to filled",
            f"{RESTING / run.round_trip:,.0f}/s, "
            f"{RESTING / run.round_trip / market_rate:.2f}x market orders' {market_rate:,.0f}/s",
            "none",
            None,
        )
        for run in runs
    ]
    return "\n".join(lines), verdicts


# --------------------------------------------------------------------------- backtests


class BollingerStopsRule(BtStrategy):  # type: ignore[misc]
    """The built-in's ``entry = "stop"`` rule with its bracket, on backtesting.py: while
    flat, a stop at the band on the close's side of the middle (placed again when the
    band moved); holding, a close back across the middle exits at the next open."""

    sl = 0.03
    tp = 0.06
    size = 10

    def init(self) -> None:
        self.bands = BollingerBands(PERIOD, NUM_STD)
        self.fed = 0

    def next(self) -> None:
        closes = self.data.Close
        while self.fed < len(closes):
            self.bands.update(float(closes[self.fed]))
            self.fed += 1
        if len(closes) <= PERIOD:  # ours warms up on the first PERIOD bars
            return
        bands = self.bands.value
        assert bands is not None  # PERIOD closes fed
        close, held = float(closes[-1]), self.position.size
        side = 0 if held != 0 else (1 if close >= bands.middle else -1)
        level = bands.upper if side > 0 else bands.lower
        kept = False
        for order in list(self.orders):
            if order.is_contingent:
                continue
            if side and (order.size > 0) == (side > 0) and order.stop == level and not kept:
                kept = True
            else:
                order.cancel()
        if side and not kept:
            place = self.buy if side > 0 else self.sell
            sl, tp = level * (1 - side * self.sl), level * (1 + side * self.tp)
            place(size=self.size, stop=level, sl=sl, tp=tp)
        if (held > 0 and close < bands.middle) or (held < 0 and close > bands.middle):
            self.position.close()


Trade = tuple[int, int, float, int, float]
"""Direction, entry bar and price, exit bar and price."""


@dataclass(frozen=True, slots=True)
class BacktestRun:
    cpu: float
    trades: list[Trade]


def best_cpu(repeats: int, run: Any) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        started = time.process_time()
        result = run()
        best = min(best, time.process_time() - started)
    return best, result


def theirs(frame: pd.DataFrame, symbol: str) -> BacktestRun:
    stop_loss, take_profit = BACKTEST_BRACKETS[symbol]

    def run() -> Any:
        backtest = Backtest(frame, BollingerStopsRule, cash=1e12, commission=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return backtest.run(sl=stop_loss, tp=take_profit)

    cpu, stats = best_cpu(BACKTEST_REPEATS, run)
    trades = [
        (1 if row.Size > 0 else -1, int(row.EntryBar), float(row.EntryPrice),
         int(row.ExitBar), float(row.ExitPrice))
        for row in stats["_trades"].itertuples()
    ]  # fmt: skip
    return BacktestRun(cpu, trades)


def bollinger_spec(symbol: str, resolution: str) -> BacktestSpec:
    stop_loss, take_profit = BACKTEST_BRACKETS[symbol]
    entry = CatalogEntry(
        id="bollinger-stops",
        name="Bollinger breakout, stop entries with a bracket",
        kind="bollinger_breakout",
        params={
            "period": PERIOD,
            "num_std": NUM_STD,
            "allow_short": True,
            "entry": "stop",
            "stop_loss_pct": stop_loss,
            "take_profit_pct": take_profit,
        },
        defaults=StrategyRunConfig(
            symbols=(symbol,),
            data_resolution=resolution,
            max_position_value=10_000.0,
            stop_loss_percentage=0.0,
        ),
    )
    return BacktestSpec(
        strategy=entry,
        source=FileSource(path=f"{symbol}.csv"),  # not read: the bars are given
        symbol=symbol,
        broker=PaperBrokerConfig(slippage_bps=0.0),
        runtime=RuntimeConfig(sizing_fraction=0.5),
    )


def ours(bars: list[Bar], symbol: str) -> BacktestRun:
    spec = bollinger_spec(symbol, bars[0].resolution)
    strategy_cls, params = load_strategy(spec.strategy)

    def run() -> Any:
        engine = build_engine(spec, strategy_cls, params, bars)
        engine.run(bars, lambda: False)
        return engine

    cpu, engine = best_cpu(BACKTEST_REPEATS, run)
    starts = [bar.start for bar in bars]

    def bar_of(ts: float) -> int:
        return bisect.bisect_right(starts, ts) - 1

    trades = [
        (trip.direction, bar_of(trip.entry_ts), trip.entry_price, bar_of(trip.exit_ts),
         trip.exit_price)
        for trip in engine.trades
    ]  # fmt: skip
    return BacktestRun(cpu, trades)


def backtest_report() -> tuple[str, list[Verdict]]:
    data = {
        "GOOG": (GOOG, "1d"),
        f"EURUSD x{TILES}": (tiled_eurusd(5_000 * TILES), "1h"),
    }
    rows: list[list[object]] = []
    verdicts: list[Verdict] = []
    notes: list[str] = []
    for name, (frame, resolution) in data.items():
        symbol = name.split()[0]
        bars = to_bars(frame, symbol, resolution)
        mine, bt = ours(bars, symbol), theirs(frame, symbol)
        same = mine.trades == bt.trades
        speed = bt.cpu / mine.cpu
        for engine, run in (("backtesting.py", bt), ("bollinger_breakout", mine)):
            speedup = f"{speed:.1f}x" if run is mine else ""
            rows.append([name, len(bars), engine, f"{run.cpu:.3f}", len(bars) / run.cpu,
                         len(run.trades), speedup])  # fmt: skip
        notes.append(
            f"{name}: {len(mine.trades)} trades, "
            + ("every one identical (side, entry and exit bar and price)" if same else
               f"DIFFERENT from backtesting.py's {len(bt.trades)}")
        )  # fmt: skip
        verdicts.append(
            Verdict(
                f"backtest with stop entries and brackets (bollinger_breakout), {name}, "
                f"{len(bars):,} bars",
                f"{speed:.1f}x backtesting.py's bars per CPU second, trades "
                + ("all identical" if same else "DIFFERENT"),
                "the same trades",
                same,
            )
        )
    title = (
        "Backtest with stop entries and brackets: the built-in bollinger_breakout "
        "(entry stop, a bracket) through run_backtest's engine against the same orders "
        f"on backtesting.py ({machine()}; best of {BACKTEST_REPEATS}, CPU seconds)"
    )
    headers = ["data", "bars", "engine", "cpu s", "bars/cpu s", "trades", "speed"]
    return "\n".join([table(title, headers, rows), *notes]), verdicts


def main() -> list[Verdict]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        market = measure_market()
        runs = [measure_resting("limit", None), measure_resting("limit + bracket", BRACKET)]
        text, verdicts = pipeline_report(runs, market)
        print(text + "\n")
        text, more = backtest_report()
        print(text)
    finally:
        structlog.configure(**saved)
    return verdicts + more


if __name__ == "__main__":
    main()
