"""The built-in Bollinger breakout with its order options, in backtests.

``entry = "stop"`` rests a breakout stop at the band and ``stop_loss_pct`` /
``take_profit_pct`` put a bracket on each entry. Against backtesting.py, the oracle:
the same rule written as a backtesting.py strategy (``self.buy(stop=, sl=, tp=)``,
the bands from the same indicator class, so the same floats), on its GOOG (daily)
and EURUSD (hourly) bars, no costs. Every trade must be the same: direction, entry
bar and price, exit bar and price. backtesting.py trades a fixed size where ours is
sized by the runtime; sizes are not compared (nothing here depends on them: the
strategy never adds to or reverses a position). The fills must also follow
docs/orders.md on their own: each stop entry at its stop or, on a gap, at the
bar's open; each bracket exit at its level or a gap's open; every fill inside its
bar's range.
"""

from __future__ import annotations

import bisect
import warnings
from typing import Any

import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.test import EURUSD, GOOG

from orchestrator.backtest.engine import BacktestEngine
from orchestrator.model.events import OrderAccepted, OrderLifecycle
from orchestrator.model.market import Bar
from orchestrator.model.orders import OrderPurpose, OrderType, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.builtin.bollinger_breakout import (
    BollingerBreakout,
    BollingerBreakoutParams,
)
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.strategy.indicators import BollingerBands
from orchestrator.trading.config import PaperBrokerConfig
from tests.orchestrator.backtest.test_orders_oracle import Trade, to_bars

PERIOD, NUM_STD = 20, 2.0
DATA = {"GOOG": (GOOG, "1d", 10), "EURUSD": (EURUSD, "1h", 10_000)}
BRACKETS = {"GOOG": (0.03, 0.06), "EURUSD": (0.002, 0.004)}  # stop-loss, take-profit


class BtBollingerStops(BtStrategy):  # type: ignore[misc]
    """backtesting.py's: while flat, a stop at the band on the close's side of the
    middle (placed again when the band moved), with its bracket; holding, a close back
    across the middle exits at the next open."""

    sl = 0.03
    tp = 0.06
    size = 10

    def init(self) -> None:
        self.bands = BollingerBands(PERIOD, NUM_STD)
        self.fed = 0

    def next(self) -> None:
        closes = self.data.Close
        while self.fed < len(closes):  # every close once, the first bar's too
            self.bands.update(float(closes[self.fed]))
            self.fed += 1
        if len(closes) <= PERIOD:  # ours warms up on the first PERIOD bars
            return
        bands = self.bands.value
        assert bands is not None
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


def theirs(frame: pd.DataFrame, symbol: str) -> list[Trade]:
    stop_loss, take_profit = BRACKETS[symbol]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, BtBollingerStops, cash=1e12, commission=0.0).run(
            sl=stop_loss, tp=take_profit, size=DATA[symbol][2]
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


class RecordingEngine(BacktestEngine):
    """The engine, keeping the order lifecycle events a backtest's report leaves out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order_events: list[OrderLifecycle] = []

    def lifecycle(self, event: OrderLifecycle) -> None:
        self.order_events.append(event)


def engine_for(symbol: str, resolution: str, **params: Any) -> RecordingEngine:
    config = StrategyRunConfig(
        symbols=(symbol,), data_resolution=resolution, max_position_value=1e9,
        max_orders_per_minute=10_000, stop_loss_percentage=0.0,
    )  # fmt: skip
    return RecordingEngine(
        BollingerBreakout,
        BollingerBreakoutParams(period=PERIOD, num_std=NUM_STD, allow_short=True, **params),
        config,
        broker=PaperBrokerConfig(slippage_bps=0.0, commission_per_share=0.0),
        risk=RiskConfig(max_gross_exposure=1e12, max_daily_loss=1e12),
        sizing_fraction=0.01,  # far from max_position_value, however the price moves
    )


def ours(bars: list[Bar], symbol: str, resolution: str) -> tuple[RecordingEngine, list[Trade]]:
    stop_loss, take_profit = BRACKETS[symbol]
    engine = engine_for(
        symbol, resolution, entry="stop", stop_loss_pct=stop_loss, take_profit_pct=take_profit
    )
    engine.run(bars)
    starts = [bar.start for bar in bars]

    def bar_of(ts: float) -> int:
        return bisect.bisect_right(starts, ts) - 1

    trades = [
        Trade(
            trip.direction,
            bar_of(trip.entry_ts),
            trip.entry_price,
            bar_of(trip.exit_ts),
            trip.exit_price,
        )
        for trip in engine.trades
    ]
    return engine, trades


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[list[Bar], RecordingEngine, list[Trade], list[Trade]]]:
    found = {}
    for symbol, (frame, resolution, _) in DATA.items():
        bars = to_bars(frame, symbol, resolution)
        engine, mine = ours(bars, symbol, resolution)
        found[symbol] = (bars, engine, mine, theirs(frame, symbol))
    return found


@pytest.mark.parametrize("symbol", list(DATA))
def test_stop_entries_with_brackets_trade_as_backtesting_py(
    runs: dict[str, tuple[list[Bar], RecordingEngine, list[Trade], list[Trade]]], symbol: str
) -> None:
    _, engine, mine, expected = runs[symbol]
    assert len(expected) > 40
    assert mine == expected
    # Both sides, and each of the three exits: stop-loss, take-profit, back at the middle.
    reasons = {trip.exit_reason for trip in engine.trades}
    assert {"stop_loss", "take_profit", "signal"} <= reasons
    assert {trade.direction for trade in mine} == {1, -1}


@pytest.mark.parametrize("symbol", list(DATA))
def test_its_fills_follow_the_documented_rules(
    runs: dict[str, tuple[list[Bar], RecordingEngine, list[Trade], list[Trade]]], symbol: str
) -> None:
    bars, engine, _, _ = runs[symbol]
    starts = [bar.start for bar in bars]
    placed = {event.order.id: event.order for event in engine.order_events}
    filled = [fill for fill in engine.fills if fill.status is TradeStatus.FILLED]
    stops = 0
    for fill in filled:
        bar = bars[bisect.bisect_right(starts, fill.ts) - 1]
        assert bar.low <= fill.price <= bar.high
        order = placed.get(fill.order_id)
        if order is None:  # the market exit back at the middle: the next bar's open
            assert fill.price == bar.open
            continue
        level = order.stop_price if order.order_type is OrderType.STOP else order.limit_price
        assert level is not None
        worse = fill.price > level if fill.side.sign > 0 else fill.price < level
        if order.purpose is OrderPurpose.TAKE_PROFIT:  # a limit: at its level or better
            assert fill.price == level or (not worse and fill.price == bar.open)
        else:  # a stop (entry or stop-loss): at its level, or a gap's open beyond it
            assert fill.price == level or (worse and fill.price == bar.open)
            stops += order.purpose is OrderPurpose.SIGNAL
    assert stops > 20


def test_the_defaults_are_todays_market_rule() -> None:
    """No option given: every order a market order, nothing ever rests."""
    frame, resolution, _ = DATA["GOOG"]
    engine = engine_for("GOOG", resolution)
    engine.run(to_bars(frame, "GOOG", resolution))
    assert len(engine.trades) > 10
    assert list(engine.order_events) == []


def test_a_market_entry_with_a_bracket_arms_it_from_the_close() -> None:
    """entry = "market" with the percentages: the same market entries as without them,
    each fill arming a stop-loss and a target that far from the signal's close."""
    frame, resolution, _ = DATA["GOOG"]
    bars = to_bars(frame, "GOOG", resolution)
    plain = engine_for("GOOG", resolution)
    plain.run(bars)
    bracketed = engine_for("GOOG", resolution, stop_loss_pct=0.03, take_profit_pct=0.06)
    bracketed.run(bars)
    armed = [e.order for e in bracketed.order_events if isinstance(e, OrderAccepted)]
    assert {o.purpose for o in armed} == {OrderPurpose.STOP_LOSS, OrderPurpose.TAKE_PROFIT}
    assert all(o.parent_id is not None for o in armed)
    reasons = {trip.exit_reason for trip in bracketed.trades}
    assert {"stop_loss", "take_profit"} <= reasons
    # The first entry is the same; the brackets close trades the plain run held longer.
    assert bracketed.trades[0].entry_ts == plain.trades[0].entry_ts
    assert len(bracketed.trades) > len(plain.trades)
