"""Indicators against hand-computed values and against naive recomputation."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.strategy.indicators import (
    EMA,
    RSI,
    SMA,
    Bands,
    BollingerBands,
    DualSMA,
    DualSMASeries,
)

PRICES = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False
)
POSITIVE_PRICES = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
PERIODS = st.integers(min_value=1, max_value=12)


def close(actual: float | None, expected: float) -> bool:
    # The absolute floor only matters for values that are zero up to rounding
    # (the mean of [1e6, -1e6]); relative error is meaningless there.
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def feed(indicator: SMA | EMA | RSI, values: list[float]) -> list[float | None]:
    return [indicator.update(x) for x in values]


# --- SMA -------------------------------------------------------------------


def test_sma_by_hand() -> None:
    sma = SMA(3)
    assert feed(sma, [1, 2, 3, 4, 5, 10]) == [
        None,
        None,
        (1 + 2 + 3) / 3,  # 2
        (2 + 3 + 4) / 3,  # 3
        (3 + 4 + 5) / 3,  # 4
        (4 + 5 + 10) / 3,  # 19/3
    ]
    assert sma.ready
    assert sma.value == 19 / 3


def test_sma_not_ready_until_full() -> None:
    sma = SMA(4)
    assert feed(sma, [5, 5, 5]) == [None, None, None]
    assert not sma.ready
    assert sma.value is None


def test_sma_does_not_drift_after_large_values_leave_the_window() -> None:
    # A float running sum would keep ~1e12 * 2**-52 of error after the large
    # values leave; exact sums return exactly the mean of the small ones.
    sma = SMA(3)
    for x in [1e12, -3e12, 7.77e12, 1e12] * 250:
        sma.update(x)
    for x in [0.1, 0.2, 0.3]:
        value = sma.update(x)
    assert value == float((Fraction(0.1) + Fraction(0.2) + Fraction(0.3)) / 3)


@given(period=PERIODS, values=st.lists(PRICES, max_size=60))
def test_sma_matches_naive_window_mean(period: int, values: list[float]) -> None:
    sma = SMA(period)
    for i, x in enumerate(values):
        value = sma.update(x)
        window = values[max(0, i + 1 - period) : i + 1]
        if len(window) < period:
            assert value is None
        else:
            assert close(value, math.fsum(window) / period)


ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


def exact_mean(window: list[float]) -> float:
    return float(sum(map(Fraction, window)) / len(window))


@given(
    period=PERIODS,
    values=st.lists(
        st.one_of(PRICES, ANY_FINITE, st.sampled_from([5e-324, 2**-1000])), max_size=40
    ),
)
def test_sma_is_the_correctly_rounded_mean(period: int, values: list[float]) -> None:
    # Subnormal and tiny values push the scale past where sum / n * 2**-scale is
    # exact; the SMA must then divide the exact way.
    sma, dual = SMA(period), DualSMA(period, period + 1)
    for i, x in enumerate(values):
        value = sma.update(x)
        dual.update(x)
        if i + 1 >= period:
            assert value == exact_mean(values[i + 1 - period : i + 1])
        if dual.ready:
            assert dual.value == (value, exact_mean(values[i - period : i + 1]))


# --- DualSMA ---------------------------------------------------------------


def test_dual_sma_by_hand() -> None:
    dual = DualSMA(2, 3)
    assert [dual.update(x) for x in [1, 2, 3, 4, 10, 1, 0, 5]] == [
        None,
        None,
        1,  # 2.5 above 2
        1,  # 3.5 above 3
        1,  # 7 above 17/3
        1,  # 5.5 above 5
        -1,  # 0.5 below 11/3
        1,  # 2.5 above 2
    ]
    assert dual.ready
    assert dual.value == (2.5, 2.0)


def test_dual_sma_is_level_only_when_the_averages_are_equal() -> None:
    dual = DualSMA(1, 2)
    assert [dual.update(x) for x in [3.0, 3.0, 3.0]] == [None, 0, 0]
    # The slow mean is 1 + 4/3 ulp exactly and rounds to 1 + 1 ulp, the fast mean:
    # equal as floats, below exactly.
    ulp = 2.0**-52
    dual = DualSMA(1, 3)
    for x in [1.0 + ulp, 1.0 + 2 * ulp]:
        dual.update(x)
    assert dual.update(1.0 + ulp) == -1
    assert dual.value == (1.0 + ulp, 1.0 + ulp)


# --- DualSMASeries ---------------------------------------------------------


def assert_series_is_updates(values: list[float], fast: int, slow: int) -> None:
    """What DualSMASeries computed at once is what DualSMA gives value by value."""
    dual, series = DualSMA(fast, slow), DualSMASeries(values, fast, slow)
    assert len(series.regimes) == len(values)
    for i, x in enumerate(values):
        assert series.regimes[i] == dual.update(x), f"regime at {i}"
        assert series.value_at(i) == dual.value, f"averages at {i}"  # the same bits
    assert series.value_at(-1) is None
    assert series.value_at(len(values)) is None


@given(
    fast=st.integers(min_value=1, max_value=8),
    extra=st.integers(min_value=1, max_value=8),
    values=st.lists(st.one_of(PRICES, ANY_FINITE, st.sampled_from([5e-324, 0.0])), max_size=50),
)
def test_dual_sma_series_matches_updates(fast: int, extra: int, values: list[float]) -> None:
    # Values up to 1e300 or subnormal take the Python-integer sums; prices int64.
    assert_series_is_updates(values, fast, fast + extra)


@given(values=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=80))
def test_dual_sma_series_matches_updates_on_cents(values: list[int]) -> None:
    # Prices in cents are full of ties: level means must come out level (0) as updates.
    assert_series_is_updates([x / 100 for x in values], 2, 4)


def test_dual_sma_series_sums_in_int64_without_wrapping_wrong() -> None:
    # 200,000 prices near 60,000 quoted to 1e-8: the running total passes 2**63 many
    # times; each window's sum, the difference of two totals, is still exact.
    rng = random.Random(11)
    values = [round(60_000 + rng.gauss(0, 50), 8) for _ in range(200_000)]
    series = DualSMASeries(values, 10, 20)
    dual = DualSMA(10, 20)
    assert [dual.update(x) for x in values] == series.regimes
    assert series.value_at(len(values) - 1) == dual.value


def test_dual_sma_series_refuses_what_updates_refuse() -> None:
    with pytest.raises(ValueError, match="finite"):
        DualSMASeries([1.0, math.nan, 2.0], 1, 2)
    with pytest.raises(ValueError, match="finite"):
        DualSMASeries([math.inf], 1, 2)
    with pytest.raises(ValueError, match="less than slow"):
        DualSMASeries([1.0], 3, 3)
    assert DualSMASeries([], 2, 3).regimes == []


def test_dual_sma_not_ready_until_full() -> None:
    dual = DualSMA(2, 4)
    assert [dual.update(5.0) for _ in range(3)] == [None, None, None]
    assert not dual.ready
    assert dual.value is None


@given(
    periods=st.lists(PERIODS, min_size=2, max_size=2, unique=True),
    values=st.lists(st.one_of(PRICES, ANY_FINITE), max_size=60),
)
def test_dual_sma_gives_two_smas_and_the_exact_regime(
    periods: list[int], values: list[float]
) -> None:
    # The values' finest bits change as they come, so both sums are rescaled mid-window.
    fast, slow = sorted(periods)
    dual, fast_sma, slow_sma = DualSMA(fast, slow), SMA(fast), SMA(slow)
    for i, x in enumerate(values):
        regime, one, other = dual.update(x), fast_sma.update(x), slow_sma.update(x)
        if other is None:
            assert regime is None
            continue
        assert dual.value == (one, other)
        fast_mean = sum(map(Fraction, values[i + 1 - fast : i + 1])) / fast
        slow_mean = sum(map(Fraction, values[i + 1 - slow : i + 1])) / slow
        assert regime == (fast_mean > slow_mean) - (fast_mean < slow_mean)


def test_dual_sma_does_not_drift_and_rescales_exactly() -> None:
    dual, fast_sma, slow_sma = DualSMA(3, 5), SMA(3), SMA(5)
    for x in [1e12, -3e12, 7.77e12, 1e12] * 250 + [0.1, 0.2, 2**-60, 0.3, 5e-324, 0.7]:
        dual.update(x)
        one, other = fast_sma.update(x), slow_sma.update(x)
        assert dual.value == (None if other is None else (one, other))
    assert dual.value == (fast_sma.value, slow_sma.value)
    assert fast_sma.value == float((Fraction(0.3) + Fraction(5e-324) + Fraction(0.7)) / 3)


@pytest.mark.parametrize(("fast", "slow"), [(5, 5), (6, 5)])
def test_dual_sma_needs_fast_below_slow(fast: int, slow: int) -> None:
    with pytest.raises(ValueError, match="must be less than slow"):
        DualSMA(fast, slow)


# --- EMA -------------------------------------------------------------------


def test_ema_by_hand() -> None:
    # alpha = 2 / (3 + 1) = 0.5; seed = mean of the first 3 values.
    ema = EMA(3)
    assert feed(ema, [2, 4, 6, 8, 4]) == [
        None,
        None,
        (2 + 4 + 6) / 3,  # 4
        4 + 0.5 * (8 - 4),  # 6
        6 + 0.5 * (4 - 6),  # 5
    ]


def naive_ema(values: list[float], period: int) -> list[float | None]:
    alpha = 2 / (period + 1)
    out: list[float | None] = [None] * min(len(values), period - 1)
    if len(values) < period:
        return out
    ema = sum(values[:period]) / period
    out.append(ema)
    for x in values[period:]:
        ema = alpha * x + (1 - alpha) * ema
        out.append(ema)
    return out


@given(period=PERIODS, values=st.lists(POSITIVE_PRICES, max_size=60))
def test_ema_matches_naive_recursion(period: int, values: list[float]) -> None:
    ema = EMA(period)
    for value, expected in zip(feed(ema, values), naive_ema(values, period), strict=True):
        assert value is None if expected is None else close(value, expected)


# --- RSI -------------------------------------------------------------------


def test_rsi_by_hand() -> None:
    # closes 10 11 12 11 13 13 10 -> changes +1 +1 -1 +2 0 -3
    # first averages (simple): gain (1+1+0)/3 = 2/3, loss (0+0+1)/3 = 1/3
    #   RSI = 100 * (2/3) / (2/3 + 1/3) = 200/3
    # +2: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2 + 0)/3 = 2/9 -> 100 * 10/12 = 250/3
    # 0: gain (10/9*2)/3 = 20/27, loss (2/9*2)/3 = 4/27 -> 100 * 20/24 = 250/3
    # -3: gain (20/27*2)/3 = 40/81, loss (4/27*2 + 3)/3 = 89/81 -> 100 * 40/129
    rsi = RSI(3)
    values = feed(rsi, [10, 11, 12, 11, 13, 13, 10])
    assert values[:3] == [None, None, None]
    expected = [200 / 3, 250 / 3, 250 / 3, 4000 / 129]
    assert all(close(v, e) for v, e in zip(values[3:], expected, strict=True))
    assert rsi.ready


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        ([1, 2, 3, 4], 100.0),  # no losses at all
        ([4, 3, 2, 1], 0.0),  # no gains at all
        ([5, 5, 5, 5], 50.0),  # nothing moved
    ],
)
def test_rsi_extremes(closes: list[float], expected: float) -> None:
    assert feed(RSI(3), closes)[-1] == expected


def naive_rsi(values: list[float], period: int) -> list[float | None]:
    """Textbook Wilder RSI over the whole history, recomputed from scratch."""
    changes = [b - a for a, b in itertools.pairwise(values)]
    out: list[float | None] = [None] * min(len(values), period)
    if len(changes) < period:
        return out
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    avg_gain = sum(gains[:period]) / period
    avg_loss = sum(losses[:period]) / period
    for i in range(period, len(changes) + 1):
        if i > period:
            avg_gain = (avg_gain * (period - 1) + gains[i - 1]) / period
            avg_loss = (avg_loss * (period - 1) + losses[i - 1]) / period
        if avg_loss == 0:
            out.append(50.0 if avg_gain == 0 else 100.0)
        else:
            out.append(100 - 100 / (1 + avg_gain / avg_loss))
    return out


@given(
    period=st.integers(min_value=1, max_value=12),
    values=st.lists(POSITIVE_PRICES, max_size=60),
)
def test_rsi_matches_naive_recomputation(period: int, values: list[float]) -> None:
    rsi = RSI(period)
    for value, expected in zip(feed(rsi, values), naive_rsi(values, period), strict=True):
        if expected is None:
            assert value is None
        else:
            assert value is not None
            assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)


# --- Bollinger bands ---------------------------------------------------------


def test_bollinger_by_hand() -> None:
    bands = BollingerBands(4, 2.0)
    values = [bands.update(x) for x in [1, 3, 1, 3, 5, 3, 3]]
    assert values[:3] == [None, None, None]
    # [1 3 1 3]: mean 2, deviations -1 1 -1 1, variance 4/4 = 1, std 1
    assert values[3] == Bands(2.0, 2 + 2 * 1.0, 2 - 2 * 1.0)
    # [3 1 3 5]: mean 3, deviations 0 -2 0 2, variance 8/4 = 2, std sqrt(2)
    assert values[4] == Bands(3.0, 3 + 2 * math.sqrt(2), 3 - 2 * math.sqrt(2))
    # [1 3 5 3]: mean 3, deviations -2 0 2 0, variance 2 again
    assert values[5] == Bands(3.0, 3 + 2 * math.sqrt(2), 3 - 2 * math.sqrt(2))
    # [3 5 3 3]: mean 3.5, deviations -.5 1.5 -.5 -.5, variance 3/4
    assert values[6] == Bands(3.5, 3.5 + 2 * math.sqrt(0.75), 3.5 - 2 * math.sqrt(0.75))
    assert bands.std == math.sqrt(0.75)


def test_bollinger_constant_window_has_zero_width() -> None:
    bands = BollingerBands(5, 2.0)
    for _ in range(5):
        value = bands.update(60_000.01)
    assert value == Bands(60_000.01, 60_000.01, 60_000.01)
    assert bands.std == 0.0


def test_bollinger_width_survives_price_levels_that_cancel_float_sums() -> None:
    # E[x^2] - E[x]^2 in floats loses ~10 of 16 digits here and drifts with
    # every update; the exact sums give the correctly rounded variance.
    bands = BollingerBands(20, 2.0)
    series = [60_000.0 + 0.01 * (i % 3) for i in range(10_000)]
    for x in series:
        bands.update(x)
    window = [Fraction(x) for x in series[-20:]]
    mean = sum(window) / 20
    variance = sum((x - mean) ** 2 for x in window) / 20
    assert bands.std == math.sqrt(float(variance))


@given(period=PERIODS, values=st.lists(PRICES, max_size=60))
def test_bollinger_matches_naive_window_statistics(period: int, values: list[float]) -> None:
    bands = BollingerBands(period, 2.0)
    for i, x in enumerate(values):
        value = bands.update(x)
        window = values[max(0, i + 1 - period) : i + 1]
        if len(window) < period:
            assert value is None
            continue
        middle, std = statistics.fmean(window), statistics.pstdev(window)
        assert value is not None
        assert close(value.middle, middle)
        assert close(bands.std, std)
        assert close(value.upper, middle + 2 * std)
        assert close(value.lower, middle - 2 * std)


# --- input validation --------------------------------------------------------


@pytest.mark.parametrize("period", [0, -3, True, 2.5])
def test_invalid_period_is_rejected(period: int) -> None:
    with pytest.raises(ValueError, match="period must be a positive integer"):
        SMA(period)


@pytest.mark.parametrize("num_std", [0.0, -1.0, math.nan, math.inf])
def test_invalid_num_std_is_rejected(num_std: float) -> None:
    with pytest.raises(ValueError, match="num_std must be a positive finite number"):
        BollingerBands(20, num_std)


@pytest.mark.parametrize(
    "indicator", [SMA(2), DualSMA(1, 2), EMA(2), RSI(2), BollingerBands(2, 2.0)]
)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_rejected(
    indicator: SMA | DualSMA | EMA | RSI | BollingerBands, bad: float
) -> None:
    with pytest.raises(ValueError, match="must be a finite number"):
        indicator.update(bad)
