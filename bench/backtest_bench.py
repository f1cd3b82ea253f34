"""Backtest bars per second: our engine against backtesting.py, same data, same run.

Data: backtesting.py's own samples, GOOG (2,148 daily bars, 2004-2013) and
EURUSD (5,000 hourly bars) tiled 200 times onto a contiguous hourly grid
(1,000,000 bars; each tile starts where the sample starts, so the price jumps
back at every seam, for both engines alike).

Strategy: the SmaCross of backtesting.py's README (SMA 10/20 of the close; on
a cross above, buy, on a cross below, sell; ``exclusive_orders=True`` closes
the opposite position first), and ours, :class:`SmaCross` below, the same rule
on our Strategy API with our incremental SMAs (``enter_long`` and
``enter_short`` reverse the opposite position in one order). Both fill market
orders at the next bar's open with no spread or slippage, start with 10,000 and charge
the commission on every fill (the README's 0.2 % for GOOG; 0.02 % for EURUSD,
because at 0.2 % per fill the hourly crossovers take backtesting.py's
compounding account to zero within the first tile, after which it can buy
nothing and stops trading while our fixed-size account keeps going).

Our engine runs as in a backtest job: the strategy class, the live sizing rule
(the default ``sizing_fraction`` 0.95 of a ``maxPositionValue`` of 10,000),
every order through the live risk guardian (default limits, no stop-loss) and
``PaperBroker.fill_at``. Timed: ``Backtest.run()`` against building and
running a ``BacktestEngine``, both on data already in memory (a DataFrame, a
list of Bars); loading is not timed for either. Each engine's figure is its
best run, of 5 on GOOG and of 3 on the million bars (the same for both).

Sizing is the one modelled difference: backtesting.py buys with 99.99 % of its
current equity at the fill, ours ``floor(9,500 / signal close)`` units every
time. So the trades are the same (side, entry and exit bar, entry and exit
price, and so each trade's return net of commission), the share counts and
therefore the total returns are not: backtesting.py compounds its trade
returns, ours adds them on a constant stake. The bench checks the trades one
by one and prints how many are identical.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import structlog
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import EURUSD, GOOG, SMA
from pydantic import Field

from bench.report import machine, table
from orchestrator.backtest.engine import BacktestEngine, RoundTrip
from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.strategy.indicators import DualSMA
from orchestrator.trading.config import PaperBrokerConfig

CASH = 10_000.0
TILED_BARS = 1_000_000
GOOG_REPEATS = 5
TILED_REPEATS = 3
TARGET_SPEEDUP = 5.0
"""On the million bars, with every trade the same."""


# --------------------------------------------------------------------------- strategies


class ReadmeSmaCross(BtStrategy):  # type: ignore[misc]
    """backtesting.py's README example, verbatim."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        price = self.data.Close
        self.ma1 = self.I(SMA, price, self.n1)
        self.ma2 = self.I(SMA, price, self.n2)

    def next(self) -> None:
        if crossover(self.ma1, self.ma2):
            self.buy()
        elif crossover(self.ma2, self.ma1):
            self.sell()


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=1, le=1000, description="Bars in the fast simple moving average.")
    slow: int = Field(20, ge=2, le=5000, description="Bars in the slow simple moving average.")


class _Crossing:
    __slots__ = ("averages", "previous")

    def __init__(self, fast: int, slow: int) -> None:
        self.averages = DualSMA(fast, slow)
        self.previous: int | None = None
        """The regime on the bar before: +1 fast above slow, -1 below, 0 level."""


class SmaCross(Strategy[SmaCrossParams]):
    """The README's crossover as an event: act on the bar where the averages cross.

    ``fast`` crosses above ``slow`` (below on the previous bar, above on this
    one): go long, reversing a short in the same order; crosses below: go
    short, reversing a long. Above and below are decided exactly on the window
    sums (:class:`DualSMA`); the bench checks that the trades are still
    backtesting.py's, one for one. Entries are sized by the runtime. Usable live by
    import path ``bench.backtest_bench:SmaCross``.
    """

    params_model = SmaCrossParams

    def __init__(self, params: SmaCrossParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._by_symbol: dict[str, _Crossing] = {}

    @property
    def warmup_bars(self) -> int:
        return self.params.slow

    def on_bar(self, bar: Bar) -> None:
        crossing = self._by_symbol.get(bar.symbol)
        if crossing is None:
            crossing = self._by_symbol[bar.symbol] = _Crossing(self.params.fast, self.params.slow)
        regime = crossing.averages.update(bar.close)
        previous = crossing.previous
        if regime == previous:
            return
        crossing.previous = regime
        if previous is None or regime is None:
            return
        # backtesting.py's crossover(): below on the bar before, above on this one.
        if previous < 0 < regime:
            self.enter_long(bar.symbol, bar.close)
        elif regime < 0 < previous:
            self.enter_short(bar.symbol, bar.close)


# --------------------------------------------------------------------------- data


def tiled_eurusd(bars: int) -> pd.DataFrame:
    columns = ("Open", "High", "Low", "Close", "Volume")
    data = {name: np.resize(EURUSD[name].to_numpy(dtype=float), bars) for name in columns}
    index = pd.date_range(EURUSD.index[0], periods=bars, freq="h")
    return pd.DataFrame(data, index=index)


def to_bars(frame: pd.DataFrame, symbol: str, resolution: str) -> list[Bar]:
    starts = frame.index.as_unit("s").asi8.tolist()
    columns = [frame[name].to_numpy(dtype=float).tolist() for name in ("Open", "High", "Low")]
    opens, highs, lows = columns
    closes = frame["Close"].to_numpy(dtype=float).tolist()
    volumes = frame["Volume"].to_numpy(dtype=float).tolist()
    return [
        Bar(symbol, resolution, float(start), o, h, low, c, v, 4)
        for start, o, h, low, c, v in zip(starts, opens, highs, lows, closes, volumes, strict=True)
    ]


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True)
class Trade:
    direction: int
    entry_ts: float
    exit_ts: float
    entry_price: float
    exit_price: float
    net_return: float
    """P&L net of both commissions over the entry notional."""

    def same_as(self, other: Trade) -> bool:
        return (
            self.direction == other.direction
            and self.entry_ts == other.entry_ts
            and self.exit_ts == other.exit_ts
            and self.entry_price == other.entry_price
            and self.exit_price == other.exit_price
        )


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    """CPU seconds of the best run (time.process_time)."""
    wall: float
    """Wall-clock seconds of the same run."""
    trades: list[Trade]
    total_return: float


class _Stopwatch:
    """CPU and wall time of a block; keeps the run with the least CPU time."""

    def __init__(self) -> None:
        self.cpu, self.wall = math.inf, math.inf

    def time(self, started_cpu: float, started_wall: float) -> None:
        cpu = time.process_time() - started_cpu
        if cpu < self.cpu:
            self.cpu, self.wall = cpu, time.perf_counter() - started_wall


def run_backtesting_py(frame: pd.DataFrame, commission: float, repeats: int) -> Run:
    watch, stats = _Stopwatch(), None
    for _ in range(repeats):
        backtest = Backtest(frame, ReadmeSmaCross, cash=CASH, commission=commission,
                            exclusive_orders=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cpu, wall = time.process_time(), time.perf_counter()
            stats = backtest.run()
            watch.time(cpu, wall)
    assert stats is not None
    table_: Any = stats["_trades"]
    trades = [
        Trade(
            direction=1 if row.Size > 0 else -1,
            entry_ts=row.EntryTime.timestamp(),
            exit_ts=row.ExitTime.timestamp(),
            entry_price=float(row.EntryPrice),
            exit_price=float(row.ExitPrice),
            net_return=float(row.ReturnPct),
        )
        for row in table_.itertuples()
    ]
    return Run(watch.cpu, watch.wall, trades, float(stats["Return [%]"]) / 100.0)


def run_ours(bars: Sequence[Bar], commission: float, repeats: int) -> Run:
    config = StrategyRunConfig(
        symbols=(bars[0].symbol,),
        data_resolution=bars[0].resolution,
        max_position_value=CASH,
        stop_loss_percentage=0.0,
    )
    broker = PaperBrokerConfig(slippage_bps=0.0, commission_bps=commission * 1e4)
    watch, engine, result = _Stopwatch(), None, None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        engine = BacktestEngine(SmaCross, SmaCrossParams(), config, broker=broker)
        result = engine.run(bars)
        watch.time(cpu, wall)
    assert engine is not None and result is not None
    trades = [_trade(trip) for trip in engine.trades]
    return Run(watch.cpu, watch.wall, trades, result.total_return)


def _trade(trip: RoundTrip) -> Trade:
    return Trade(
        direction=trip.direction,
        entry_ts=trip.entry_ts,
        exit_ts=trip.exit_ts,
        entry_price=trip.entry_price,
        exit_price=trip.exit_price,
        net_return=trip.pnl / (trip.quantity * trip.entry_price),
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    name: str
    bars: int
    commission: float
    theirs: Run
    ours: Run

    @property
    def identical(self) -> int:
        pairs = zip(self.theirs.trades, self.ours.trades, strict=False)
        return sum(1 for theirs, ours in pairs if theirs.same_as(ours))

    @property
    def return_gap(self) -> float:
        """Largest difference of one trade's net return between the engines."""
        pairs = zip(self.theirs.trades, self.ours.trades, strict=False)
        return max((abs(a.net_return - b.net_return) for a, b in pairs), default=0.0)

    @property
    def speedup(self) -> float:
        return self.theirs.seconds / self.ours.seconds


def compare(
    name: str, symbol: str, frame: pd.DataFrame, resolution: str, commission: float
) -> Comparison:
    repeats = GOOG_REPEATS if len(frame) < 10_000 else TILED_REPEATS
    bars = to_bars(frame, symbol, resolution)
    theirs = run_backtesting_py(frame, commission, repeats)
    ours = run_ours(bars, commission, repeats)
    return Comparison(name, len(frame), commission, theirs, ours)


def report(comparisons: Sequence[Comparison]) -> str:
    rows: list[list[object]] = []
    for c in comparisons:
        for engine, run in (("backtesting.py", c.theirs), ("ours", c.ours)):
            rows.append(
                [
                    c.name,
                    c.bars,
                    f"{c.commission:.2%}",
                    engine,
                    f"{run.seconds:.3f}",
                    f"{run.wall:.3f}",
                    f"{c.bars / run.seconds:,.0f}",
                    len(run.trades),
                    f"{run.total_return:+.2%}",
                    f"{c.speedup:.1f}x" if engine == "ours" else "",
                ]
            )
    headers = [
        "data",
        "bars",
        "commission",
        "engine",
        "cpu s",
        "wall s",
        "bars/cpu s",
        "trades",
        "return",
        "speed",
    ]
    lines = [table(f"Backtest, SMA 10/20 crossover ({machine()})", headers, rows), ""]
    for c in comparisons:
        lines.append(
            f"{c.name}: {c.identical} of {len(c.theirs.trades)} backtesting.py trades and "
            f"{len(c.ours.trades)} of ours identical in side, entry and exit bar and price; "
            f"per-trade net returns differ by at most {c.return_gap:.1e}"
        )
    lines.append(
        "Speed: bars per CPU second of the run (time.process_time, so other load on the "
        "machine does not skew the ratio; on an idle machine wall time is the same)."
    )
    lines.append(
        "Returns differ by sizing alone: backtesting.py stakes its whole, compounding "
        "equity on each trade, ours floor(9,500 / signal close) units every time."
    )
    lines.append(verdict(comparisons[-1]))
    return "\n".join(lines)


def verdict(c: Comparison) -> str:
    same = c.identical == len(c.theirs.trades) == len(c.ours.trades)
    ok = same and c.speedup >= TARGET_SPEEDUP
    return (
        f"backtest: {c.speedup:.1f}x backtesting.py's bars per CPU second on {c.bars:,} bars, "
        f"trades {'all identical' if same else 'DIFFERENT'} "
        f"(target >= {TARGET_SPEEDUP:g}x with the same trades): {'PASS' if ok else 'FAIL'}"
    )


def main() -> None:
    # The risk guardian logs every refused order and limit breach; a backtest job's
    # worker keeps only errors, and so does this benchmark while it runs.
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        comparisons = [
            compare("GOOG", "GOOG", GOOG, "1d", commission=0.002),
            compare("EURUSD x200", "EURUSD", tiled_eurusd(TILED_BARS), "1h", commission=0.0002),
        ]
    finally:
        structlog.configure(**saved)
    print(report(comparisons))


if __name__ == "__main__":
    main()
