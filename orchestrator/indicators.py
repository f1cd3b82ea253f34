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
out negative. :class:`_ExactWindowSums` keeps the sum and the sum of squares as
Python integers in binary fixed point, fine enough to hold every value it has
seen exactly (every finite float is a whole multiple of some ``2**-k``). Adding
and removing values is then exact, the variance is exact until one final,
correctly rounded division, and it is never negative. For prices the integers
stay around 100 bits; an update costs one to three microseconds, nothing per bar.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple


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
    numerator, denominator = x.as_integer_ratio()
    return numerator, denominator.bit_length() - 1


class _ExactWindowSums:
    """Sum and sum of squares over the last ``period`` values, kept exactly.

    The sums are integers counting units of ``2**-scale_bits``, where
    ``scale_bits`` is the finest binary fraction seen so far (45 bits for 100.1,
    at most 1074). It only grows, and growing shifts the two sums, so every value
    still in the window converts exactly at the current scale when it leaves.
    """

    __slots__ = ("_period", "_scale_bits", "_sum", "_sum_of_squares", "_window")

    def __init__(self, period: int) -> None:
        self._period = period
        self._window: deque[float] = deque()
        self._scale_bits = 0
        self._sum = 0
        self._sum_of_squares = 0

    @property
    def full(self) -> bool:
        return len(self._window) == self._period

    def push(self, x: float) -> None:
        numerator, bits = _binary_fraction(x)
        if bits > self._scale_bits:
            self._rescale(bits)
        if self.full:
            oldest = self._to_fixed(*_binary_fraction(self._window.popleft()))
            self._sum -= oldest
            self._sum_of_squares -= oldest * oldest
        fixed = self._to_fixed(numerator, bits)
        self._window.append(x)
        self._sum += fixed
        self._sum_of_squares += fixed * fixed

    def _to_fixed(self, numerator: int, bits: int) -> int:
        return numerator << (self._scale_bits - bits)

    def _rescale(self, bits: int) -> None:
        shift = bits - self._scale_bits
        self._sum <<= shift
        self._sum_of_squares <<= 2 * shift
        self._scale_bits = bits

    def mean(self) -> float:
        return self._sum / (len(self._window) << self._scale_bits)

    def population_variance(self) -> float:
        """``(n * sum(x^2) - sum(x)^2) / n^2``, exact up to the final rounding."""
        n = len(self._window)
        numerator = n * self._sum_of_squares - self._sum * self._sum
        return numerator / ((n * n) << (2 * self._scale_bits))


class SMA:
    """Simple moving average over the last ``period`` values."""

    __slots__ = ("_sums", "_value", "period")

    def __init__(self, period: int) -> None:
        self.period = _require_period(period)
        self._sums = _ExactWindowSums(self.period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        self._sums.push(_require_finite(x))
        if self._sums.full:
            self._value = self._sums.mean()
        return self._value

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


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


class BollingerBands:
    """Rolling mean ± ``num_std`` population standard deviations over ``period`` values."""

    __slots__ = ("_std", "_sums", "_value", "num_std", "period")

    def __init__(self, period: int, num_std: float) -> None:
        self.period = _require_period(period)
        if not (math.isfinite(num_std) and num_std > 0):
            raise ValueError(f"num_std must be a positive finite number, got {num_std!r}")
        self.num_std = float(num_std)
        self._sums = _ExactWindowSums(self.period)
        self._std: float | None = None
        self._value: Bands | None = None

    def update(self, x: float) -> Bands | None:
        self._sums.push(_require_finite(x))
        if not self._sums.full:
            return None
        middle = self._sums.mean()
        # The variance is exact, so it cannot be negative; max() documents the invariant.
        std = math.sqrt(max(self._sums.population_variance(), 0.0))
        width = self.num_std * std
        self._std = std
        self._value = Bands(middle, middle + width, middle - width)
        return self._value

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
