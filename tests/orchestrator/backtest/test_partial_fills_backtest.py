"""Partial fills in backtests: each bar fills at most its volume (or the spec's
``max_volume_fraction`` of it) of an order, the rest in the next bars, by the live
pipeline's and paper broker's part rules (docs/orders.md#partial-fills-in-backtests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import Field, ValidationError

from orchestrator.backtest.engine import (
    BacktestEngine,
    BacktestResult,
    BacktestSpec,
    SyntheticSource,
)
from orchestrator.backtest.multi_symbol import MultiSymbolEngine
from orchestrator.backtest.report import build_report
from orchestrator.model.events import OrderAccepted, OrderLifecycle, OrderReplaced
from orchestrator.model.market import Bar
from orchestrator.model.orders import Fill, OrderPurpose, TradeStatus
from orchestrator.strategy.api import Strategy, StrategyParams
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig

START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
SYMBOL = "TEST"
FREE = PaperBrokerConfig(slippage_bps=0.0, commission_bps=0.0)
"""No costs: every fill at the price the rules give."""


def bar(i: int, open_: float, high: float, low: float, close: float, volume: float) -> Bar:
    return Bar(SYMBOL, "1m", START + 60 * i, open_, high, low, close, volume, 4)


class OnceParams(StrategyParams):
    quantity: float = Field(250.0, gt=0, description="Units of the one entry.")
    limit: float = Field(0.0, ge=0, description="A limit entry at this price; 0: market.")
    stop_loss: float = Field(0.0, ge=0, description="The entry's stop-loss; 0: none.")
    take_profit: float = Field(0.0, ge=0, description="The entry's take-profit; 0: none.")
    exit_on_bar: int = Field(0, ge=0, description="Close the position on this bar; 0: never.")


class EnterOnce(Strategy[OnceParams]):
    """Buys ``quantity`` once on each symbol's first bar (a market order, or a limit
    with its bracket), then holds; closes the position on its bar ``exit_on_bar``."""

    params_model = OnceParams

    def __init__(self, params: OnceParams, context: Any) -> None:
        super().__init__(params, context)
        self.bars: dict[str, int] = {}

    def on_bar(self, bar: Bar) -> None:
        seen = self.bars[bar.symbol] = self.bars.get(bar.symbol, 0) + 1
        p = self.params
        if seen == 1:
            self.buy(
                bar.symbol,
                bar.close,
                quantity=p.quantity,
                limit=p.limit or None,
                stop_loss=p.stop_loss or None,
                take_profit=p.take_profit or None,
            )
        elif seen == p.exit_on_bar:
            self.close_position(bar.symbol, bar.close)


class RecordingEngine(BacktestEngine):
    """The engine, keeping the lifecycle events a backtest's report leaves out."""

    result: BacktestResult

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[OrderLifecycle] = []

    def lifecycle(self, event: OrderLifecycle) -> None:
        self.events.append(event)


def run(bars: Sequence[Bar], volume_fraction: float | None = 1.0, **params: Any) -> RecordingEngine:
    config = StrategyRunConfig(symbols=(SYMBOL,), max_position_value=1e9, stop_loss_percentage=0.0)
    engine = RecordingEngine(
        EnterOnce, OnceParams(**params), config, broker=FREE, volume_fraction=volume_fraction
    )
    engine.result = engine.run(bars)
    return engine


def filled(engine: BacktestEngine) -> list[Fill]:
    return [fill for fill in engine.fills if fill.status is TradeStatus.FILLED]


def parts(fills: Sequence[Fill]) -> list[tuple[float, float, float, float]]:
    return [(fill.ts, fill.quantity, fill.price, fill.remaining) for fill in fills]


def flat_bars(count: int, volume: float, price: float = 100.0) -> list[Bar]:
    return [
        bar(i, price + i, price + i + 1, price + i - 1, price + i, volume) for i in range(count)
    ]


# ---------------------------------------------------------------- market orders


def test_a_market_order_larger_than_a_bar_fills_over_the_next_bars_at_their_opens() -> None:
    bars = flat_bars(6, volume=100.0)
    engine = run(bars)
    # Placed at bar 0's close: 100 at each next open until the 250 are filled.
    assert parts(filled(engine)) == [
        (bars[1].start, 100.0, bars[1].open, 150.0),
        (bars[2].start, 100.0, bars[2].open, 50.0),
        (bars[3].start, 50.0, bars[3].open, 0.0),
    ]
    assert engine.portfolio.position(SYMBOL) == 250.0
    assert len({fill.order_id for fill in engine.fills}) == 1


def test_the_volume_fraction_bounds_each_bar_and_a_bar_of_no_volume_fills_the_rest() -> None:
    bars = flat_bars(6, volume=100.0)
    bars[3] = bar(3, 103.0, 104.0, 102.0, 103.0, 0.0)  # its volume unknown
    engine = run(bars, volume_fraction=0.4, quantity=150.0)
    assert parts(filled(engine)) == [
        (bars[1].start, 40.0, bars[1].open, 110.0),
        (bars[2].start, 40.0, bars[2].open, 70.0),
        (bars[3].start, 70.0, bars[3].open, 0.0),
    ]


def test_off_an_order_fills_whole_whatever_the_volume() -> None:
    bars = flat_bars(4, volume=100.0)
    engine = run(bars, volume_fraction=None)
    assert parts(filled(engine)) == [(bars[1].start, 250.0, bars[1].open, 0.0)]


def test_an_order_smaller_than_the_bar_fills_whole_with_partial_fills_on() -> None:
    bars = flat_bars(4, volume=1000.0)
    engine = run(bars)
    assert parts(filled(engine)) == [(bars[1].start, 250.0, bars[1].open, 0.0)]


def test_the_exit_of_a_position_built_in_parts_fills_in_parts_and_is_one_round_trip() -> None:
    bars = flat_bars(10, volume=100.0)
    engine = run(bars, exit_on_bar=5)
    fills = filled(engine)
    buys, sells = fills[:3], fills[3:]
    assert [fill.side.value for fill in fills] == ["BUY"] * 3 + ["SELL"] * 3
    # The close is signalled on bar 4 (the strategy's 5th): at bar 5's open and on.
    assert parts(sells) == [
        (bars[5].start, 100.0, bars[5].open, 150.0),
        (bars[6].start, 100.0, bars[6].open, 50.0),
        (bars[7].start, 50.0, bars[7].open, 0.0),
    ]
    assert sum(f.quantity for f in buys) == sum(f.quantity for f in sells) == 250.0
    assert len(engine.trades) == 1  # a round trip: flat to flat, whatever its parts
    trade = engine.trades[0]
    assert trade.quantity == 250.0
    cost = sum(f.quantity * f.price for f in buys)
    proceeds = sum(f.quantity * f.price for f in sells)
    assert trade.entry_price == pytest.approx(cost / 250.0)
    assert trade.exit_price == pytest.approx(proceeds / 250.0)  # the parts' average
    assert trade.pnl == pytest.approx(proceeds - cost)


# ---------------------------------------------------------------- resting orders


def dipping_bars() -> list[Bar]:
    """Bars of volume 100 opening at 100; bars 2, 3 and 5 dip to 95, bar 4 does not."""
    lows = [99.0, 99.0, 95.0, 95.0, 99.0, 95.0, 99.0, 99.0]
    return [bar(i, 100.0, 101.0, low, 100.0, 100.0) for i, low in enumerate(lows)]


def test_a_resting_limit_fills_at_its_limit_over_the_bars_that_reach_it() -> None:
    bars = dipping_bars()
    engine = run(bars, limit=96.0)
    fills = filled(engine)
    assert [(f.ts // 60 * 60, f.quantity, f.price, f.remaining) for f in fills] == [
        (bars[2].start, 100.0, 96.0, 150.0),
        (bars[3].start, 100.0, 96.0, 50.0),
        (bars[5].start, 50.0, 96.0, 0.0),  # bar 4 does not reach the limit
    ]
    assert all(bars[2].start <= f.ts < bars[-1].end for f in fills)
    assert engine.portfolio.position(SYMBOL) == 250.0
    partly = [e for e in engine.events if type(e).__name__ == "OrderPartiallyFilled"]
    assert [e.order.quantity for e in partly] == [150.0, 50.0]  # the rest, as it rests
    assert engine.open_orders(SYMBOL) == []


def test_a_brackets_exits_are_armed_for_the_filled_part_and_grow_with_each_part() -> None:
    bars = dipping_bars()
    engine = run(bars, limit=96.0, stop_loss=80.0, take_profit=150.0)
    exits = {
        e.order.purpose: e.order.quantity
        for e in engine.events
        if isinstance(e, OrderAccepted) and e.order.parent_id is not None
    }
    assert exits == {OrderPurpose.STOP_LOSS: 100.0, OrderPurpose.TAKE_PROFIT: 100.0}
    grown = [
        (e.order.purpose, e.previous.quantity, e.order.quantity)
        for e in engine.events
        if isinstance(e, OrderReplaced)
    ]
    assert sorted(grown) == sorted(
        [(purpose, 100.0, 200.0) for purpose in exits]
        + [(purpose, 200.0, 250.0) for purpose in exits]
    )
    resting = sorted((o.purpose.value, o.quantity) for o in engine.open_orders(SYMBOL))
    assert resting == [("stop_loss", 250.0), ("take_profit", 250.0)]


def test_a_take_profit_of_a_position_built_in_parts_exits_in_parts_as_one_trade() -> None:
    # Filled at 96 in bars 2, 3, 5; the target at 104 is reached by bars 8 to 10.
    bars = dipping_bars() + [bar(i, 100.0, 105.0, 99.0, 100.0, 100.0) for i in range(8, 12)]
    engine = run(bars, limit=96.0, stop_loss=80.0, take_profit=104.0)
    sells = [f for f in filled(engine) if f.side.value == "SELL"]
    assert [(f.ts // 60 * 60, f.quantity, f.price, f.remaining) for f in sells] == [
        (bars[8].start, 100.0, 104.0, 150.0),
        (bars[9].start, 100.0, 104.0, 50.0),
        (bars[10].start, 50.0, 104.0, 0.0),
    ]
    assert engine.open_orders(SYMBOL) == []  # the last part cancelled the stop (OCO)
    assert engine.portfolio.position(SYMBOL) == 0.0
    assert len(engine.trades) == 1
    trade = engine.trades[0]
    assert (trade.quantity, trade.entry_price, trade.exit_price) == (250.0, 96.0, 104.0)
    assert trade.exit_reason == OrderPurpose.TAKE_PROFIT.value
    # The report's statistics count round trips: six fills, one trade.
    report = build_report(engine.result)
    assert engine.result.fills == 6
    assert report.statistics.trade_count == engine.result.total_trades == 1
    assert [(t.quantity, t.entry_price, t.exit_price) for t in report.trades] == [
        (250.0, 96.0, 104.0)
    ]
    assert report.statistics.win_rate_pct == 100.0


# ---------------------------------------------------------------- the spec


def test_the_spec_turns_partial_fills_on_and_checks_its_fraction() -> None:
    entry = CatalogEntry(
        id="bt",
        name="Backtest",
        kind="sma_crossover",
        params={},
        defaults=StrategyRunConfig(symbols=("BTC/USDT",)),
    )
    source = SyntheticSource(duration_seconds=3600.0)
    assert BacktestSpec(strategy=entry, source=source).volume_fraction is None
    on = BacktestSpec(strategy=entry, source=source, partial_fills=True, max_volume_fraction=0.1)
    assert on.volume_fraction == 0.1
    with pytest.raises(ValidationError, match="set partial_fills too"):
        BacktestSpec(strategy=entry, source=source, max_volume_fraction=0.5)
    with pytest.raises(ValidationError, match="max_volume_fraction"):
        BacktestSpec(strategy=entry, source=source, partial_fills=True, max_volume_fraction=0.0)


# ---------------------------------------------------------------- several symbols


def test_several_symbols_fill_each_order_by_its_own_bars_volume() -> None:
    other = "OTHER"
    bars = {
        SYMBOL: flat_bars(5, volume=100.0),
        other: [
            Bar(other, "1m", START + 60 * i, 50.0, 51.0, 49.0, 50.0, 1000.0, 4) for i in range(5)
        ],
    }
    config = StrategyRunConfig(
        symbols=(SYMBOL, other), max_position_value=1e9, stop_loss_percentage=0.0
    )
    engine = MultiSymbolEngine(
        EnterOnce, OnceParams(), config, broker=FREE, initial_capital=1e9, volume_fraction=1.0
    )
    engine.run(bars)
    fills = [f for f in engine.fills if f.status is TradeStatus.FILLED]
    by_symbol = {
        symbol: [(f.ts, f.quantity, f.remaining) for f in fills if f.symbol == symbol]
        for symbol in (SYMBOL, other)
    }
    starts = [b.start for b in bars[SYMBOL]]
    assert by_symbol == {
        SYMBOL: [(starts[1], 100.0, 150.0), (starts[2], 100.0, 50.0), (starts[3], 50.0, 0.0)],
        other: [(starts[1], 250.0, 0.0)],
    }
