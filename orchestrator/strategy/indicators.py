"""Incremental technical indicators: O(1) work per update, no recomputation over history.

Each indicator takes one value at a time through ``update(x)`` and returns its
current value, or ``None`` while it has not seen enough values (``ready`` is
False). They hold only what the next update needs: the window for the rolling
ones, the previous average for the recursive ones.

Why the rolling sums are exact
------------------------------
A daemon feeds the same indicator for days. A float running sum that adds the
new value and subtracts the old one accumulates rounding error without bound,
and a variance taken as ``E[x^2] - E[x]^2`` from float sums cancels almost all
its digits on prices: for a price near 60 000 that moves by cents the two terms
agree to about ten digits, so the band width would be noise and could even come
out negative. :class:`_FixedPointWindow` keeps the window, the sum and the sum
of squares as Python integers in binary fixed point, fine enough to hold every
value it has seen exactly (every finite float is a whole multiple of some
``2**-k``). Adding and removing values is then exact, the variance is exact
until one final, correctly rounded division, and it is never negative.

A float becomes fixed point with one multiplication by ``2**k`` (exact: a power
of two) and ``int()``, after ``is_integer()`` has shown that ``k`` is fine
enough; only a value with finer bits than any before takes the slow path, which
rescales the window once. For prices the integers stay around 60 bits (120 for
squares). The mean is ``sum / count`` (correctly rounded) times ``2**-k``,
exact while the result cannot be subnormal; otherwise the sum is divided by
``count << k`` in one step. Either way it has the same bits as summing the
window exactly and dividing once. An update costs about 0.3 us for the SMA and
1 us for the bands on CPython 3.11; :class:`DualSMA` keeps two averages of one
series for about 0.3 us and compares them without dividing.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Sequence
from itertools import accumulate, repeat
from typing import NamedTuple

import numpy as np
import numpy.typing as npt


def _require_period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be a positive integer, got {period!r}")
    return period


def _require_finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"indicator input must be a finite number, got {x!r}")
    return x


def _binary_fraction(x: float) -> tuple[int, int]:
    """``(m, k)`` with ``x == m / 2**k`` exactly; ``k`` is small for everyday prices."""
    numerator, denominator = _require_finite(x).as_integer_ratio()
    return numerator, denominator.bit_length() - 1


MAX_FLOAT_EXPONENT = 1023
"""Scales above this have no float ``2**k``; such windows always convert exactly by ratio."""
MIN_NORMAL_EXPONENT = 1022
"""``2**-1022`` is the smallest normal float: below it a product may round twice."""


class _FixedPointWindow:
    """The last ``period`` values as integers counting units of ``2**-scale``.

    ``scale`` is the finest binary fraction seen so far (46 bits for 100.53, at
    most 1074). It only grows, and growing shifts the stored values and the
    sums, so a value converts exactly at the current scale whenever it is used.
    Subclasses keep the sums they need and shift them in :meth:`_rescale`.
    """

    __slots__ = ("_denominator", "_inverse_unit", "_scale", "_sum", "_unit", "_window", "period")

    def __init__(self, period: int) -> None:
        self.period = _require_period(period)
        self._window: deque[int] = deque()
        self._scale = 0
        self._unit = 1.0
        """``2.0**scale``, or infinity when no float holds it (every value goes slow)."""
        self._sum = 0
        self._denominator = self.period
        """``period << scale``: the sum over this is the mean (the bands' variance
        divides by its square)."""
        self._inverse_unit = 1.0
        """``2.0**-scale`` while ``sum / count * inverse_unit`` is exact, else 0.0."""

    def _to_fixed(self, x: float) -> int:
        """``x`` in units of ``2**-scale``; rescales first if ``x`` has finer bits."""
        numerator, bits = _binary_fraction(x)
        if bits > self._scale:
            self._rescale(bits - self._scale)
        return numerator << (self._scale - bits)

    def _rescale(self, shift: int) -> None:
        self._window = deque(value << shift for value in self._window)
        self._sum <<= shift
        self._scale += shift
        self._denominator = self.period << self._scale
        self._unit = math.ldexp(1.0, self._scale) if self._scale <= MAX_FLOAT_EXPONENT else math.inf
        # sum / count is correctly rounded; scaling it by a power of two stays exact
        # unless the mean could be subnormal (at least 2**-scale / count when not 0).
        # (sum / count itself overflows only past float range: updates fall back.)
        exact = self._scale + self.period.bit_length() <= MIN_NORMAL_EXPONENT
        self._inverse_unit = math.ldexp(1.0, -self._scale) if exact else 0.0

    def _mean(self, total: int, count: int) -> float:
        """``total`` units of ``2**-scale`` over ``count`` (at most ``period``), correctly
        rounded: ``total / count`` scaled by ``2**-scale`` while that is exact, else
        one division by ``count << scale``."""
        inverse = self._inverse_unit
        if inverse:
            try:
                return total / count * inverse
            except OverflowError:  # total / count beyond float range: the scale is too fine
                pass
        return total / (count << self._scale)


class SMA(_FixedPointWindow):
    """Simple moving average over the last ``period`` values."""

    __slots__ = ("_value",)

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        # NaN and infinities are not integers after scaling: _to_fixed refuses them.
        scaled = x * self._unit
        fixed = int(scaled) if scaled.is_integer() else self._to_fixed(x)
        window = self._window
        if len(window) == self.period:
            self._sum += fixed - window.popleft()
            window.append(fixed)
        else:
            window.append(fixed)
            self._sum += fixed
            if len(window) < self.period:
                return None
        value = self._value = self._mean(self._sum, self.period)
        return value

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


class DualSMA(_FixedPointWindow):
    """Two simple moving averages of one series, ``fast < slow``, and which is above.

    What a crossover rule reads on every bar. ``update(x)`` returns the regime:
    +1 while the fast average is above the slow one, -1 below, 0 level, or None
    until ``slow`` values were seen. It is decided exactly, on the window sums
    (``fast_sum * slow > slow_sum * fast``), so no rounding can make two
    different averages look level, and it costs no division: each value becomes
    fixed point once and both sums move over one window. ``value`` gives the
    two averages when asked, the same bits as two :class:`SMA`.
    """

    __slots__ = ("_fast_leaving", "_fast_sum", "fast_period")

    def __init__(self, fast: int, slow: int) -> None:
        super().__init__(_require_fast_below_slow(fast, slow))
        self.fast_period = fast
        self._fast_leaving = -fast - 1
        """Where, once appended to, the window holds the value leaving the fast average."""
        self._fast_sum = 0

    def update(self, x: float) -> int | None:
        scaled = x * self._unit
        fixed = int(scaled) if scaled.is_integer() else self._to_fixed(x)
        window = self._window
        window.append(fixed)
        if len(window) > self.period:
            # Full: both windows slide. The value leaving the fast one is read
            # before the slow one's drops.
            fast_sum = self._fast_sum = self._fast_sum + fixed - window[self._fast_leaving]
            slow_sum = self._sum = self._sum + fixed - window.popleft()
        else:
            fast_sum, slow_sum = self._warm_up(fixed, len(window))
            if len(window) < self.period:
                return None
        fast_side, slow_side = fast_sum * self.period, slow_sum * self.fast_period
        return 1 if fast_side > slow_side else -1 if fast_side < slow_side else 0

    def _warm_up(self, fixed: int, seen: int) -> tuple[int, int]:
        leaving = self._window[self._fast_leaving] if seen > self.fast_period else 0
        self._fast_sum += fixed - leaving
        self._sum += fixed
        return self._fast_sum, self._sum

    @property
    def value(self) -> tuple[float, float] | None:
        """``(fast, slow)``, each correctly rounded; None until ``slow`` values were seen."""
        if len(self._window) < self.period:
            return None
        return self._mean(self._fast_sum, self.fast_period), self._mean(self._sum, self.period)

    @property
    def ready(self) -> bool:
        return len(self._window) == self.period

    def _rescale(self, shift: int) -> None:
        super()._rescale(shift)
        self._fast_sum <<= shift


def _require_fast_below_slow(fast: int, slow: int) -> int:
    if _require_period(fast) >= _require_period(slow):
        raise ValueError(f"fast ({fast}) must be less than slow ({slow})")
    return slow


FixedPointValues = npt.NDArray[np.int64] | list[int]
"""Integers in units of ``2**-scale``: int64 where they cannot overflow, else Python's."""

INT64_HEADROOM = 2.0**62
"""Below this, a window sum times a period fits in int64 (with room for their difference)."""


class DualSMASeries(_FixedPointWindow):
    """:class:`DualSMA` over every value of a series known in advance, computed at once.

    ``regimes[i]`` is what ``DualSMA(fast, slow).update`` returns for ``values[i]``
    after ``values[:i]``, and ``value_at(i)`` what its ``value`` is then, the same
    bits: the window sums are the same integers, at one scale (the finest of the
    series), and the regime compares them while the means divide them once, so the
    scale changes neither. What a backtest can do, knowing its bars before the first:
    numpy makes the sums in int64 when no sum or product of them can overflow (the
    running total may wrap: a window's sum is the difference of two, exact modulo
    2**64), Python integers otherwise. About 0.1 us a value in int64 against 1.2 for
    ``update`` one by one (CPython 3.11). Raises ValueError for a value that is not
    a finite number.
    """

    __slots__ = ("_fast_sums", "_slow_sums", "fast_period", "regimes")

    def __init__(self, values: Sequence[float], fast: int, slow: int) -> None:
        super().__init__(_require_fast_below_slow(fast, slow))
        self.fast_period = fast
        closes = np.asarray(values, dtype=np.float64)
        if not np.isfinite(closes).all():
            raise ValueError("indicator input must be a finite number")
        bits = _finest_fraction_bits(closes)
        if bits:
            self._rescale(bits)
        fixed = _fixed_point(closes, bits, fast * slow)
        self._fast_sums: FixedPointValues = _window_sums(fixed, fast)[slow - fast :]
        self._slow_sums: FixedPointValues = _window_sums(fixed, slow)
        """The sums of the windows ending at value ``slow - 1`` and after."""
        self.regimes: list[int | None] = [None] * min(slow - 1, len(closes))
        self.regimes += _regimes(self._fast_sums, self._slow_sums, fast, slow)

    def value_at(self, index: int) -> tuple[float, float] | None:
        """``(fast, slow)`` after ``values[index]``; None while fewer than ``slow`` were seen."""
        window = index - self.period + 1
        if not 0 <= window < len(self._slow_sums):
            return None
        fast_sum, slow_sum = int(self._fast_sums[window]), int(self._slow_sums[window])
        return self._mean(fast_sum, self.fast_period), self._mean(slow_sum, self.period)


def _finest_fraction_bits(values: npt.NDArray[np.float64]) -> int:
    """The fewest ``k`` with every value a whole multiple of ``2**-k`` (0 for integers)."""
    mantissas, exponents = np.frexp(values)  # value = mantissa * 2**exponent, exactly
    digits = np.abs(np.ldexp(mantissas, 53)).astype(np.int64)  # 53-bit integers
    nonzero = digits != 0
    if not nonzero.any():
        return 0
    lowest_bit = digits[nonzero] & -digits[nonzero]
    trailing_zeros = np.log2(lowest_bit).astype(np.int64)  # exact: powers of two
    bits = 53 - exponents[nonzero] - trailing_zeros
    return max(int(bits.max()), 0)


def _fixed_point(
    values: npt.NDArray[np.float64], bits: int, largest_factor: int
) -> FixedPointValues:
    """``values`` in units of ``2**-bits``: int64 while a sum of ``largest_factor`` of
    them fits with room, else Python integers."""
    largest = float(np.abs(values).max(initial=0.0))
    try:
        fits = math.ldexp(largest, bits) * largest_factor < INT64_HEADROOM
    except OverflowError:
        fits = False
    if fits:
        return np.ldexp(values, bits).astype(np.int64)  # exact: a power of two, integers
    fixed: list[int] = []
    for value in values.tolist():
        numerator, fraction_bits = _binary_fraction(value)
        fixed.append(numerator << (bits - fraction_bits))
    return fixed


def _window_sums(fixed: FixedPointValues, period: int) -> FixedPointValues:
    """The sum of each run of ``period`` consecutive values, first to last."""
    if isinstance(fixed, np.ndarray):
        with np.errstate(over="ignore"):  # the running total wraps; differences do not
            totals = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(fixed)))
            return totals[period:] - totals[:-period]
    running = [0, *accumulate(fixed)]
    return list(map(operator.sub, running[period:], running[:-period]))


def _regimes(
    fast_sums: FixedPointValues, slow_sums: FixedPointValues, fast: int, slow: int
) -> list[int]:
    """+1, -1 or 0 for each pair of window sums, as :meth:`DualSMA.update` decides."""
    if isinstance(fast_sums, np.ndarray) and isinstance(slow_sums, np.ndarray):
        signs: list[int] = np.sign(fast_sums * slow - slow_sums * fast).tolist()
        return signs
    fast_sides = map(operator.mul, fast_sums, repeat(slow))
    slow_sides = map(operator.mul, slow_sums, repeat(fast))
    return [(f > s) - (f < s) for f, s in zip(fast_sides, slow_sides, strict=True)]


class EMA:
    """Exponential moving average with ``alpha = 2 / (period + 1)``.

    Seeded with the simple mean of the first ``period`` values (the usual
    convention, so that the first value does not dominate), then
    ``ema = ema + alpha * (x - ema)``.
    """

    __slots__ = ("_alpha", "_seed_count", "_seed_sum", "_value", "period")

    def __init__(self, period: int) -> None:
        self.period = _require_period(period)
        self._alpha = 2.0 / (self.period + 1)
        self._seed_sum = 0.0
        self._seed_count = 0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        _require_finite(x)
        if self._value is not None:
            self._value += self._alpha * (x - self._value)
            return self._value
        self._seed_sum += x
        self._seed_count += 1
        if self._seed_count == self.period:
            self._value = self._seed_sum / self.period
        return self._value

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


class RSI:
    """Relative strength index with Wilder's smoothing, in ``[0, 100]``.

    Each value after the first gives a change; its gain is ``max(change, 0)``
    and its loss ``max(-change, 0)``. The first averages are the simple means of
    the first ``period`` gains and losses; after that
    ``avg = (avg * (period - 1) + x) / period``. Then
    ``RSI = 100 * avg_gain / (avg_gain + avg_loss)``, which is the textbook
    ``100 - 100 / (1 + avg_gain / avg_loss)`` without the division by zero:
    100 when the average loss is 0, and 50 when nothing moved at all.
    ``None`` until ``period`` changes have been seen (``period + 1`` values).
    """

    __slots__ = (
        "_avg_gain",
        "_avg_loss",
        "_changes_seen",
        "_previous",
        "_value",
        "period",
    )

    def __init__(self, period: int) -> None:
        self.period = _require_period(period)
        self._previous: float | None = None
        self._changes_seen = 0
        # Before the first average is complete these hold running sums.
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        _require_finite(x)
        previous, self._previous = self._previous, x
        if previous is None:
            return None
        change = x - previous
        self._absorb(max(change, 0.0), max(-change, 0.0))
        if self._changes_seen >= self.period:
            self._value = self._rsi()
        return self._value

    def _absorb(self, gain: float, loss: float) -> None:
        self._changes_seen += 1
        if self._changes_seen < self.period:
            self._avg_gain += gain
            self._avg_loss += loss
        elif self._changes_seen == self.period:
            self._avg_gain = (self._avg_gain + gain) / self.period
            self._avg_loss = (self._avg_loss + loss) / self.period
        else:
            self._avg_gain = (self._avg_gain * (self.period - 1) + gain) / self.period
            self._avg_loss = (self._avg_loss * (self.period - 1) + loss) / self.period

    def _rsi(self) -> float:
        total = self._avg_gain + self._avg_loss
        if total == 0.0:
            return 50.0
        return 100.0 * self._avg_gain / total

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


class Bands(NamedTuple):
    """Bollinger bands: the rolling mean and ``num_std`` deviations either side."""

    middle: float
    upper: float
    lower: float


class BollingerBands(_FixedPointWindow):
    """Rolling mean ± ``num_std`` population standard deviations over ``period`` values."""

    __slots__ = ("_std", "_sum_of_squares", "_value", "num_std")

    def __init__(self, period: int, num_std: float) -> None:
        super().__init__(period)
        if not (math.isfinite(num_std) and num_std > 0):
            raise ValueError(f"num_std must be a positive finite number, got {num_std!r}")
        self.num_std = float(num_std)
        self._sum_of_squares = 0
        self._std: float | None = None
        self._value: Bands | None = None

    def update(self, x: float) -> Bands | None:
        scaled = x * self._unit
        fixed = int(scaled) if scaled.is_integer() else self._to_fixed(x)
        window = self._window
        if len(window) == self.period:
            oldest = window.popleft()
            self._sum += fixed - oldest
            self._sum_of_squares += fixed * fixed - oldest * oldest
            window.append(fixed)
        else:
            window.append(fixed)
            self._sum += fixed
            self._sum_of_squares += fixed * fixed
            if len(window) < self.period:
                return None
        n, total = self.period, self._sum
        middle = self._mean(total, n)
        # (n * sum(x^2) - sum(x)^2) / n^2, exact until this one division: never negative.
        variance = (n * self._sum_of_squares - total * total) / (self._denominator**2)
        std = math.sqrt(variance)
        width = self.num_std * std
        self._std = std
        value = self._value = Bands(middle, middle + width, middle - width)
        return value

    def _rescale(self, shift: int) -> None:
        super()._rescale(shift)
        self._sum_of_squares <<= 2 * shift

    @property
    def value(self) -> Bands | None:
        return self._value

    @property
    def std(self) -> float | None:
        """The population standard deviation of the current window."""
        return self._std

    @property
    def ready(self) -> bool:
        return self._value is not None
