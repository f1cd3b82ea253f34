"""The built-in strategies, bar by bar, against hand-computed indicator values.

The fake context fills every signal at once (a sized entry is ``LOT`` units),
so each test reads as a short trading session: which bar emitted what.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from orchestrator.model.market import Bar
from orchestrator.model.orders import Side
from orchestrator.strategy.api import Strategy
from orchestrator.strategy.builtin.bollinger_breakout import (
    BollingerBreakout,
    BollingerBreakoutParams,
)
from orchestrator.strategy.builtin.rsi_reversion import RsiReversion, RsiReversionParams
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.loader import BUILTIN_STRATEGIES, load_strategy_class

LOT = 10.0
BUY, SELL = Side.BUY, Side.SELL


@dataclass(frozen=True)
class Emitted:
    bar: int
    symbol: str
    action: Side
    price: float
    quantity: float | None
    confidence: float
    metadata: Mapping[str, Any]


@dataclass
class FillingContext:
    """A StrategyContext that fills every signal immediately and records it."""

    strategy_id: str = "test-strategy"
    name: str = "Test Strategy"
    positions: dict[str, float] = field(default_factory=dict)
    describes_signals: bool = True
    emitted: list[Emitted] = field(default_factory=list)
    bar_index: int = -1

    def now(self) -> float:
        return 1_700_000_000.0

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def emit(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
    ) -> None:
        self.emitted.append(
            Emitted(self.bar_index, symbol, action, price, quantity, confidence, dict(metadata))
        )
        # Unsized, a signal takes the position to LOT on its side, as the runtime sizes.
        held = self.position(symbol)
        filled = LOT - action.sign * held if quantity is None else quantity
        self.positions[symbol] = held + action.sign * filled


def make_bar(index: int, close: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, "1m", 1_700_000_000.0 + 60 * index, close, close, close, close, 100.0, 5)


def run(strategy: Strategy[Any], context: FillingContext, closes: list[float]) -> list[Emitted]:
    for index, close in enumerate(closes):
        context.bar_index = index
        strategy.on_bar(make_bar(index, close))
    return context.emitted


def signal(
    bar: int,
    action: Side,
    price: float,
    quantity: float | None,
    confidence: float,
    **metadata: Any,
) -> Emitted:
    """The expected signal; float fields compare approximately."""
    approx_metadata = {
        key: pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
        for key, value in metadata.items()
    }
    # pytest.approx stands in for the float; it compares equal within rel 1e-12.
    approx_confidence = cast(float, pytest.approx(confidence, rel=1e-12))
    return Emitted(bar, "AAPL", action, price, quantity, approx_confidence, approx_metadata)


def spread_confidence(fast: float, slow: float) -> float:
    return min(1.0, abs(fast - slow) / slow * 100)


# --- Moving Average Crossover -------------------------------------------------

# fast = SMA(2), slow = SMA(3); the hand-computed averages at each bar:
SMA_CLOSES = [100.0, 100.2, 100.4, 100.2, 99.8, 99.6, 100.1, 99.0]
FAST = {
    2: (100.2 + 100.4) / 2,  # 100.3
    3: (100.4 + 100.2) / 2,  # 100.3
    4: (100.2 + 99.8) / 2,  # 100.0
    5: (99.8 + 99.6) / 2,  # 99.7
    6: (99.6 + 100.1) / 2,  # 99.85
    7: (100.1 + 99.0) / 2,  # 99.55
}
SLOW = {
    2: (100.0 + 100.2 + 100.4) / 3,  # 100.2       fast > slow
    3: (100.2 + 100.4 + 100.2) / 3,  # 100.2667    fast > slow
    4: (100.4 + 100.2 + 99.8) / 3,  # 100.1333    fast < slow
    5: (100.2 + 99.8 + 99.6) / 3,  # 99.8667     fast < slow
    6: (99.8 + 99.6 + 100.1) / 3,  # 99.8333     fast > slow
    7: (99.6 + 100.1 + 99.0) / 3,  # 99.5667     fast < slow
}


def sma_signal(bar: int, action: Side, quantity: float | None, reason: str) -> Emitted:
    fast, slow = FAST[bar], SLOW[bar]
    return signal(
        bar,
        action,
        SMA_CLOSES[bar],
        quantity,
        spread_confidence(fast, slow),
        orderType="MARKET",
        fast=fast,
        slow=slow,
        reason=reason,
    )


def sma_crossover(**params: Any) -> tuple[SmaCrossover, FillingContext]:
    context = FillingContext()
    return SmaCrossover(SmaCrossoverParams(fast=2, slow=3, **params), context), context


def test_sma_crossover_long_only() -> None:
    strategy, context = sma_crossover()
    assert run(strategy, context, SMA_CLOSES) == [
        # bar 2 is the first with both averages: flat and fast > slow, so buy at once.
        sma_signal(2, BUY, None, "entry"),
        # bar 3: still fast > slow, already long: nothing.
        sma_signal(4, SELL, LOT, "exit"),
        # bar 5: fast < slow but flat and no shorting: nothing.
        sma_signal(6, BUY, None, "entry"),
        sma_signal(7, SELL, LOT, "exit"),
    ]
    assert context.position("AAPL") == 0


def test_sma_crossover_with_shorting_reverses_in_one_bar() -> None:
    strategy, context = sma_crossover(allow_short=True)
    assert run(strategy, context, SMA_CLOSES) == [
        sma_signal(2, BUY, None, "entry"),
        sma_signal(4, SELL, None, "reversal"),
        # bar 5: fast < slow and already short: nothing.
        sma_signal(6, BUY, None, "reversal"),
        sma_signal(7, SELL, None, "reversal"),
    ]
    assert context.position("AAPL") == -LOT


def test_sma_crossover_signals_on_first_ready_bar_when_flat() -> None:
    strategy, context = sma_crossover()
    run(strategy, context, [100.0, 100.0, 100.3])
    assert [(e.bar, e.action) for e in context.emitted] == [(2, BUY)]


def test_sma_crossover_confidence_saturates_at_one_percent_spread() -> None:
    strategy, context = sma_crossover()
    run(strategy, context, [100.0, 103.0, 106.0])
    assert context.emitted[0].confidence == 1.0


def test_sma_crossover_ignores_equal_averages() -> None:
    strategy, context = sma_crossover()
    run(strategy, context, [100.0] * 10)
    assert context.emitted == []


def test_sma_crossover_keeps_state_per_symbol() -> None:
    strategy, context = sma_crossover()
    rising, falling = [100.0, 101.0, 102.0, 103.0], [100.0, 99.0, 98.0, 97.0]
    for index, (up, down) in enumerate(zip(rising, falling, strict=True)):
        context.bar_index = index
        strategy.on_bar(make_bar(index, up, "AAPL"))
        strategy.on_bar(make_bar(index, down, "MSFT"))
    assert [(e.bar, e.symbol, e.action) for e in context.emitted] == [(2, "AAPL", BUY)]
    assert context.positions == {"AAPL": LOT}


def ahead_against_bar_by_bar(ahead_bars: list[Bar], shown: list[Bar]) -> list[Emitted]:
    """Show ``shown`` to a crossover given ``ahead_bars`` ahead and to one updating bar
    by bar: the same indicator lines after each bar and the same signals (returned)."""
    ahead, ahead_context = sma_crossover(allow_short=True)
    ahead.precompute("AAPL", ahead_bars)
    live, live_context = sma_crossover(allow_short=True)
    for index, bar in enumerate(shown):
        ahead_context.bar_index = live_context.bar_index = index
        ahead.on_bar(bar)
        live.on_bar(bar)
        assert ahead.indicators("AAPL") == live.indicators("AAPL")
    assert ahead_context.emitted == live_context.emitted
    return live_context.emitted


def test_sma_crossover_computed_ahead_signals_as_bar_by_bar() -> None:
    # A backtest hands the bars over first (precompute): the same signals, the same
    # averages in their metadata and the same indicator lines after each bar.
    rng = random.Random(5)
    closes = [round(100 + rng.gauss(0, 1), 2) for _ in range(300)]
    bars = [make_bar(index, close) for index, close in enumerate(closes)]
    assert len(ahead_against_bar_by_bar(bars, bars)) > 20


def test_sma_crossover_goes_on_bar_by_bar_when_another_bar_comes() -> None:
    # Bars other than those computed ahead (another object, another series): the
    # averages carry on from the bars seen, as if updated one by one all along.
    closes = [100.0, 101.0, 103.0, 102.0, 99.0, 98.0, 101.0, 104.0, 100.0, 97.0]
    bars = [make_bar(index, close) for index, close in enumerate(closes)]
    changed = [*bars[:5], make_bar(5, 105.0), make_bar(6, 95.0), *bars[7:]]
    assert ahead_against_bar_by_bar(bars, changed)


def test_sma_crossover_skips_the_signal_details_nobody_reads() -> None:
    # A backtest ignores confidence and metadata: the same signals come without them.
    strategy, context = sma_crossover(allow_short=True)
    quiet = FillingContext(describes_signals=False)
    terse = SmaCrossover(SmaCrossoverParams(fast=2, slow=3, allow_short=True), quiet)
    run(strategy, context, SMA_CLOSES)
    run(terse, quiet, SMA_CLOSES)
    assert [(e.bar, e.action, e.price, e.quantity) for e in quiet.emitted] == [
        (e.bar, e.action, e.price, e.quantity) for e in context.emitted
    ]
    assert {e.confidence for e in quiet.emitted} == {1.0}
    assert [e.metadata for e in quiet.emitted] == [
        {"reason": e.metadata["reason"]} for e in context.emitted
    ]


def test_sma_crossover_leaves_a_price_that_is_no_number_to_its_bar() -> None:
    # Computed ahead, a NaN close would fail before the first bar; it fails at its own
    # bar, with the indicator's message, as live.
    bars = [make_bar(0, 100.0), make_bar(1, math.nan)]
    strategy, _ = sma_crossover()
    strategy.precompute("AAPL", bars)
    strategy.on_bar(bars[0])
    with pytest.raises(ValueError, match="finite"):
        strategy.on_bar(bars[1])


# --- RSI mean reversion ------------------------------------------------------

# RSI(3) with Wilder's smoothing, worked out by hand:
RSI_CLOSES = [10.0, 9.0, 8.0, 8.5, 8.0, 11.0, 12.0, 9.0, 7.0]
RSI_BY_BAR = {
    # changes -1 -1 +0.5: gain 0.5/3 = 1/6, loss 2/3 -> 100 * (1/6) / (5/6)
    3: 100 * 1 / 5,  # 20: oversold
    # -0.5: gain (1/6*2)/3 = 1/9, loss (2/3*2 + 0.5)/3 = 11/18 -> 100 * 2 / 13
    4: 100 * 2 / 13,  # 15.4: oversold
    # +3: gain (1/9*2 + 3)/3 = 29/27, loss (11/18*2)/3 = 11/27 -> 100 * 29 / 40
    5: 100 * 29 / 40,  # 72.5: overbought
    # +1: gain (29/27*2 + 1)/3 = 85/81, loss (11/27*2)/3 = 22/81 -> 100 * 85 / 107
    6: 100 * 85 / 107,  # 79.4: overbought
    # -3: gain (85/81*2)/3 = 170/243, loss (22/81*2 + 3)/3 = 287/243 -> 100 * 170 / 457
    7: 100 * 170 / 457,  # 37.2: neutral
    # -2: gain (170/243*2)/3 = 340/729, loss (287/243*2 + 2)/3 = 1060/729 -> 100 * 340 / 1400
    8: 100 * 340 / 1400,  # 24.3: oversold
}


def rsi_signal(bar: int, action: Side, quantity: float | None, reason: str) -> Emitted:
    rsi = RSI_BY_BAR[bar]
    # oversold 30, overbought 70: 0.5 at the threshold, 1 at the end of the scale.
    depth = (30 - rsi) / 30 if action is BUY else (rsi - 70) / (100 - 70)
    confidence = 0.5 + 0.5 * depth
    return signal(
        bar,
        action,
        RSI_CLOSES[bar],
        quantity,
        confidence,
        orderType="MARKET",
        rsi=rsi,
        reason=reason,
    )


def rsi_reversion(**params: Any) -> tuple[RsiReversion, FillingContext]:
    context = FillingContext()
    return RsiReversion(RsiReversionParams(period=3, **params), context), context


def test_rsi_reversion_long_only() -> None:
    strategy, context = rsi_reversion()
    assert run(strategy, context, RSI_CLOSES) == [
        rsi_signal(3, BUY, None, "entry"),
        # bar 4: oversold again but already long: nothing.
        rsi_signal(5, SELL, LOT, "exit"),
        # bar 6: overbought but flat and no shorting: nothing.  bar 7: neutral.
        rsi_signal(8, BUY, None, "entry"),
    ]


def test_rsi_reversion_with_shorting() -> None:
    strategy, context = rsi_reversion(allow_short=True)
    assert run(strategy, context, RSI_CLOSES) == [
        rsi_signal(3, BUY, None, "entry"),
        rsi_signal(5, SELL, None, "reversal"),
        # bar 6: overbought and already short: nothing.  bar 7: neutral.
        rsi_signal(8, BUY, None, "reversal"),
    ]
    assert context.position("AAPL") == LOT


# --- Bollinger band breakout -------------------------------------------------

# Bands over 4 closes at 1 standard deviation, worked out by hand:
BB_CLOSES = [10.0, 10.0, 10.0, 10.0, 11.0, 11.0, 10.4, 9.5, 10.6]
BB_BY_BAR = {
    # [10 10 10 10]: mean 10, std 0; close 10 is not above the upper band
    3: (10.0, 0.0),
    # [10 10 10 11]: mean 10.25, deviations -.25 x3 and .75, variance .75/4
    4: (10.25, (0.75 / 4) ** 0.5),  # upper 10.68 < close 11: breakout
    # [10 10 11 11]: mean 10.5, std .5, upper 11.0 = close: no breakout
    5: (10.5, 0.5),
    # [10 11 11 10.4]: mean 10.6, deviations -.6 .4 .4 -.2, variance .72/4
    6: (10.6, (0.72 / 4) ** 0.5),  # close 10.4 < middle
    # [11 11 10.4 9.5]: mean 10.475, deviations .525 .525 -.075 -.975, variance 1.5075/4
    7: (10.475, (1.5075 / 4) ** 0.5),  # lower 9.861 > close 9.5
    # [11 10.4 9.5 10.6]: mean 10.375, deviations .625 .025 -.875 .225, variance 1.2075/4
    8: (10.375, (1.2075 / 4) ** 0.5),  # close 10.6 > middle
}


def bb_signal(bar: int, action: Side, quantity: float | None, reason: str) -> Emitted:
    middle, std = BB_BY_BAR[bar]
    close = BB_CLOSES[bar]
    z = abs(close - middle) / std
    # num_std = 1: entries are full confidence at z = 2, exits at z = 1.
    confidence = min(1.0, z / 2) if reason == "entry" else min(1.0, z)
    return signal(
        bar,
        action,
        close,
        quantity,
        confidence,
        orderType="MARKET",
        middle=middle,
        upper=middle + std,
        lower=middle - std,
        reason=reason,
    )


def bollinger_breakout(**params: Any) -> tuple[BollingerBreakout, FillingContext]:
    context = FillingContext()
    strategy = BollingerBreakout(BollingerBreakoutParams(period=4, num_std=1.0, **params), context)
    return strategy, context


def test_bollinger_breakout_long_only() -> None:
    strategy, context = bollinger_breakout()
    assert run(strategy, context, BB_CLOSES) == [
        bb_signal(4, BUY, None, "entry"),
        # bar 5: on the upper band, long, above the middle: hold.
        bb_signal(6, SELL, LOT, "exit"),
        # bar 7: below the lower band but no shorting; bar 8: flat inside the bands.
    ]


def test_bollinger_breakout_with_shorting() -> None:
    strategy, context = bollinger_breakout(allow_short=True)
    assert run(strategy, context, BB_CLOSES) == [
        bb_signal(4, BUY, None, "entry"),
        bb_signal(6, SELL, LOT, "exit"),
        bb_signal(7, SELL, None, "entry"),
        # bar 8: short and back above the middle: cover.
        bb_signal(8, BUY, LOT, "exit"),
    ]


def test_bollinger_breakout_reverses_a_long_on_a_downside_breakout() -> None:
    strategy, context = bollinger_breakout(allow_short=True)
    context.positions["AAPL"] = LOT
    run(strategy, context, [10.0, 10.0, 10.0, 9.0])
    assert [(e.bar, e.action, e.quantity, e.metadata["reason"]) for e in context.emitted] == [
        (3, SELL, None, "reversal"),
    ]


# --- shared properties -------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (SmaCrossover(SmaCrossoverParams(fast=5, slow=20), FillingContext()), 20),
        (RsiReversion(RsiReversionParams(period=14), FillingContext()), 15),
        (BollingerBreakout(BollingerBreakoutParams(period=20), FillingContext()), 20),
    ],
)
def test_warmup_covers_the_slowest_indicator(strategy: Strategy[Any], expected: int) -> None:
    assert strategy.warmup_bars == expected


@pytest.mark.parametrize(
    ("kind", "trigger", "action"),
    [
        ("sma_crossover", 110.0, BUY),  # fast jumps above slow
        ("rsi_reversion", 90.0, BUY),  # the only change is a loss: RSI 0
        ("bollinger_breakout", 110.0, BUY),  # far above a flat window
    ],
)
def test_warmup_is_enough_to_trade_on_the_first_live_bar(
    kind: str, trigger: float, action: Side
) -> None:
    cls = load_strategy_class(kind)
    context = FillingContext()
    strategy = cls(cls.params_model(), context)
    closes = [100.0] * strategy.warmup_bars + [trigger]
    run(strategy, context, closes)
    assert [(e.bar, e.action) for e in context.emitted] == [(strategy.warmup_bars, action)]


def test_builtin_names() -> None:
    assert {name: load_strategy_class(name) for name in BUILTIN_STRATEGIES} == {
        "sma_crossover": SmaCrossover,
        "rsi_reversion": RsiReversion,
        "bollinger_breakout": BollingerBreakout,
    }


# ---------------------------------------------------------------- indicator lines


def test_sma_crossover_exposes_both_averages_once_ready() -> None:
    strategy, context = sma_crossover()  # fast 2, slow 3
    run(strategy, context, [10.0, 11.0])
    assert strategy.indicators("AAPL") == {}  # the slow average is still warming up
    run(strategy, context, [10.0, 11.0, 15.0])
    assert strategy.indicators("AAPL") == {"SMA 2": 13.0, "SMA 3": pytest.approx(12.0)}
    assert strategy.indicators("MSFT") == {}  # no bar of it yet


def test_bollinger_breakout_exposes_its_bands() -> None:
    strategy, context = bollinger_breakout()
    closes = [100.0, 102.0, 98.0, 101.0, 99.0]
    run(strategy, context, closes)
    lines = strategy.indicators("AAPL")
    period = strategy.params.period
    window = closes[-period:]
    mean = sum(window) / period
    std = (sum((x - mean) ** 2 for x in window) / period) ** 0.5
    width = strategy.params.num_std * std
    assert lines == {
        "upper": pytest.approx(mean + width),
        "middle": pytest.approx(mean),
        "lower": pytest.approx(mean - width),
    }


def test_a_strategy_draws_no_lines_by_default() -> None:
    strategy, context = rsi_reversion()
    run(strategy, context, [100.0 + i for i in range(20)])
    assert strategy.indicators("AAPL") == {}
