"""Resting orders against backtesting.py, the oracle: the same strategies (limit
entries, stop entries and market entries, each with a stop-loss and take-profit
bracket) on its bundled GOOG (daily) and EURUSD (hourly) bars, placed with
``self.buy(limit=, stop=, sl=, tp=)`` there and ``buy(limit=, stop=, stop_loss=,
take_profit=)`` here. Every trade must be the same: direction, entry bar and
price, exit bar and price (docs/orders.md lists the rules; where backtesting.py's
differ, the strategies here do not reach them and the doc says so).

Both sides trade a fixed quantity with no commission, spread or slippage, so
sizing and costs cannot differ; the guardian's limits are set out of the way."""

from __future__ import annotations

import bisect
import itertools
import warnings
from collections.abc import Callable
from typing import Literal, NamedTuple

import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.test import EURUSD, GOOG
from pydantic import Field

from orchestrator.backtest.engine import BacktestEngine
from orchestrator.model.market import Bar
from orchestrator.model.orders import OrderPurpose, Side, TradeStatus, Trailing
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig

Kind = Literal["limit", "stop", "market"]


class Plan(NamedTuple):
    """One entry: its side (+1 buy, -1 sell), limit or stop, stop-loss and target."""

    side: int
    limit: float | None
    stop: float | None
    stop_loss: float
    take_profit: float


def plan(kind: Kind, step: float, bar: tuple[float, float, float, float], before: float) -> Plan:
    """The entry both engines place after a bar (open, high, low, close) whose previous
    close was ``before``: the same arithmetic, so the same floats, on both sides."""
    open_, _, _, close = bar
    if kind == "limit":  # buy a dip below an up close, sell a rise above a down close
        side = 1 if close >= before else -1
        limit = close * (1 - side * step)
        return Plan(side, limit, None, limit * (1 - side * 3 * step), limit * (1 + side * 3 * step))
    if kind == "stop":  # a breakout in the bar's direction
        side = 1 if close >= open_ else -1
        stop = close * (1 + side * step)
        return Plan(side, None, stop, stop * (1 - side * 2 * step), stop * (1 + side * 4 * step))
    side = 1 if close >= before else -1
    return Plan(side, None, None, close * (1 - side * 2 * step), close * (1 + side * 2 * step))


class PlannedParams(StrategyParams):
    kind: Kind = Field("limit", description="Which entries the strategy places.")
    step: float = Field(0.01, gt=0, lt=0.2, description="Distance of the entry, fraction.")
    quantity: float = Field(10.0, gt=0, le=1e9, description="Units per entry.")


class Planned(Strategy[PlannedParams]):
    """Ours: each bar, cancel the unfilled entry; flat, place the next one."""

    params_model = PlannedParams

    def __init__(self, params: PlannedParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._before: float | None = None

    @property
    def warmup_bars(self) -> int:
        return 1  # backtesting.py calls next() from the second bar on

    def on_bar(self, bar: Bar) -> None:
        before, self._before = self._before, bar.close
        if before is None:
            return
        for order in self.open_orders(bar.symbol):
            if order.purpose is OrderPurpose.SIGNAL:
                self.cancel(order.id)
        if self.position(bar.symbol) != 0:
            return
        p = self.params
        entry = plan(p.kind, p.step, (bar.open, bar.high, bar.low, bar.close), before)
        place = self.buy if entry.side > 0 else self.sell
        place(
            bar.symbol,
            bar.close,
            p.quantity,
            limit=entry.limit,
            stop=entry.stop,
            stop_loss=entry.stop_loss,
            take_profit=entry.take_profit,
        )


class BtPlanned(BtStrategy):  # type: ignore[misc]
    """backtesting.py's: the same orders."""

    kind: Kind = "limit"
    step = 0.01
    size = 10

    def init(self) -> None:
        return None

    def next(self) -> None:
        for order in list(self.orders):
            if not order.is_contingent:
                order.cancel()
        if self.position.size != 0:
            return
        data = self.data
        bar = (data.Open[-1], data.High[-1], data.Low[-1], data.Close[-1])
        entry = plan(self.kind, self.step, bar, data.Close[-2])
        place = self.buy if entry.side > 0 else self.sell
        place(
            size=self.size,
            limit=entry.limit,
            stop=entry.stop,
            sl=entry.stop_loss,
            tp=entry.take_profit,
        )


class Trade(NamedTuple):
    direction: int
    entry_bar: int
    entry_price: float
    exit_bar: int
    exit_price: float


def to_bars(frame: pd.DataFrame, symbol: str, resolution: str) -> list[Bar]:
    starts = frame.index.as_unit("s").asi8.tolist()
    rows = zip(
        starts,
        *(
            frame[c].to_numpy(dtype=float).tolist()
            for c in ("Open", "High", "Low", "Close", "Volume")
        ),
        strict=True,
    )
    return [Bar(symbol, resolution, float(t), o, h, lo, c, v, 4) for t, o, h, lo, c, v in rows]


def theirs(frame: pd.DataFrame, kind: Kind, step: float, size: int) -> list[Trade]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, BtPlanned, cash=1e9, commission=0.0).run(
            kind=kind, step=step, size=size
        )
    return [
        Trade(
            1 if row.Size > 0 else -1,
            int(row.EntryBar),
            float(row.EntryPrice),
            int(row.ExitBar),
            float(row.ExitPrice),
        )
        for row in stats["_trades"].itertuples()
    ]


def ours(bars: list[Bar], kind: Kind, step: float, size: int) -> list[Trade]:
    config = StrategyRunConfig(
        symbols=(bars[0].symbol,),
        data_resolution=bars[0].resolution,
        max_position_value=1e9,
        max_orders_per_minute=10_000,
        stop_loss_percentage=0.0,
    )
    risk = RiskConfig(max_gross_exposure=1e12, max_daily_loss=1e12)
    engine = BacktestEngine(
        Planned,
        PlannedParams(kind=kind, step=step, quantity=size),
        config,
        broker=PaperBrokerConfig(slippage_bps=0.0),
        risk=risk,
    )
    engine.run(bars)
    starts = [bar.start for bar in bars]

    def bar_of(ts: float) -> int:
        return bisect.bisect_right(starts, ts) - 1

    return [
        Trade(
            trip.direction,
            bar_of(trip.entry_ts),
            trip.entry_price,
            bar_of(trip.exit_ts),
            trip.exit_price,
        )
        for trip in engine.trades
    ]


DATA: dict[str, tuple[Callable[[], pd.DataFrame], str, float, int]] = {
    "GOOG": (lambda: GOOG, "1d", 0.01, 10),
    "EURUSD": (lambda: EURUSD, "1h", 0.001, 10_000),
}
RUNS = [(data, kind) for data in DATA for kind in ("limit", "stop", "market")]


@pytest.fixture(scope="module")
def compared() -> dict[tuple[str, str], tuple[list[Trade], list[Trade]]]:
    found: dict[tuple[str, str], tuple[list[Trade], list[Trade]]] = {}
    for data, kind in RUNS:
        frame_of, resolution, step, size = DATA[data]
        frame = frame_of()
        bars = to_bars(frame, data, resolution)
        found[(data, kind)] = (
            theirs(frame, kind, step, size),  # type: ignore[arg-type]
            ours(bars, kind, step, size),  # type: ignore[arg-type]
        )
    return found


@pytest.mark.parametrize(("data", "kind"), RUNS)
def test_every_trade_is_backtesting_pys(
    compared: dict[tuple[str, str], tuple[list[Trade], list[Trade]]], data: str, kind: str
) -> None:
    expected, actual = compared[(data, kind)]
    assert len(expected) > 50
    assert actual == expected


def test_a_brackets_exits_are_the_trades_exit_reasons() -> None:
    frame_of, resolution, step, size = DATA["GOOG"]
    config = StrategyRunConfig(
        symbols=("GOOG",), data_resolution=resolution, max_position_value=1e9,
        max_orders_per_minute=10_000, stop_loss_percentage=0.0,
    )  # fmt: skip
    engine = BacktestEngine(
        Planned, PlannedParams(kind="limit", step=step, quantity=size), config,
        broker=PaperBrokerConfig(slippage_bps=0.0),
        risk=RiskConfig(max_gross_exposure=1e12, max_daily_loss=1e12),
    )  # fmt: skip
    engine.run(to_bars(frame_of(), "GOOG", resolution))
    reasons = {trip.exit_reason for trip in engine.trades}
    assert {"stop_loss", "take_profit"} <= reasons <= {"stop_loss", "take_profit", "end_of_data"}


def test_over_a_thousand_trades_are_compared(
    compared: dict[tuple[str, str], tuple[list[Trade], list[Trade]]],
) -> None:
    assert sum(len(expected) for expected, _ in compared.values()) >= 1_000
    # Same-bar exits (a market entry's, a stop entry's target) and later ones alike.
    trades = [trade for expected, _ in compared.values() for trade in expected]
    assert any(t.exit_bar == t.entry_bar for t in trades)
    assert any(t.exit_bar > t.entry_bar for t in trades)


# --------------------------------------------------------------------------- the bar's range


@pytest.mark.parametrize("data", list(DATA))
def test_a_slipped_fill_never_lands_outside_its_bars_range(data: str) -> None:
    """With the default 1 bp of slippage, a market order filled at an open that is the
    bar's high (a buy) or low (a sell) would land outside the bar: it is clamped."""
    frame_of, resolution, _, _ = DATA[data]
    bars = to_bars(frame_of(), data, resolution)
    config = StrategyRunConfig(
        symbols=(data,), data_resolution=resolution, max_position_value=10_000.0,
        stop_loss_percentage=0.0,
    )  # fmt: skip
    engine = BacktestEngine(
        SmaCrossover, SmaCrossoverParams(fast=10, slow=20, allow_short=True), config
    )
    engine.run(bars)
    starts = [bar.start for bar in bars]
    at_edge = 0
    filled = [fill for fill in engine.fills if fill.status is TradeStatus.FILLED]
    for fill in filled:
        bar = bars[bisect.bisect_right(starts, fill.ts) - 1]
        assert bar.low <= fill.price <= bar.high
        at_edge += fill.price == (bar.high if fill.side is Side.BUY else bar.low)
    assert len(filled) > 80 and at_edge > 0  # the clamp acted


# --------------------------------------------------------------------------- time in force


class DayLimits(Strategy[PlannedParams]):
    """Flat: a long at market with a trailing stop 0.2 % behind its best price; with no
    entry resting, a DAY limit buy far below the close (it never fills)."""

    params_model = PlannedParams

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.symbol) == 0:
            self.buy(bar.symbol, bar.close, 1.0, trailing=Trailing(0.002, fraction=True))
        if not any(o.purpose is OrderPurpose.SIGNAL for o in self.open_orders(bar.symbol)):
            self.buy(bar.symbol, bar.close, 1.0, limit=bar.close * 0.5, time_in_force="DAY")


def test_day_orders_expire_at_midnight_and_trailing_stops_exit_in_a_backtest() -> None:
    bars = to_bars(EURUSD.iloc[:500], "EURUSD", "1h")
    config = StrategyRunConfig(
        symbols=("EURUSD",), data_resolution="1h", max_position_value=10_000.0,
        stop_loss_percentage=0.0,
    )  # fmt: skip
    engine = BacktestEngine(DayLimits, PlannedParams(), config, broker=PaperBrokerConfig())
    engine.run(bars)
    expired = [f.ts for f in engine.fills if f.reason and f.reason.startswith("expired")]
    first_of_day = [
        b.start for a, b in itertools.pairwise(bars) if a.start // 86_400 != b.start // 86_400
    ]
    assert expired == first_of_day[: len(expired)] and len(expired) >= len(first_of_day) - 1
    starts = [bar.start for bar in bars]
    assert len(engine.trades) > 10
    for trip in engine.trades:
        entry, exit_ = (bisect.bisect_right(starts, ts) - 1 for ts in (trip.entry_ts, trip.exit_ts))
        before = max([trip.entry_price, *(bar.high for bar in bars[entry:exit_])])
        best = max(before, bars[exit_].high)
        assert trip.exit_price <= best * 0.998 * (1 + 1e-12)  # at the stop, or below it
        # No lower than the stop behind the best price before the exit bar, or a gap's open.
        assert trip.exit_price >= min(before * 0.998, bars[exit_].open) * (1 - 2e-4)
