"""Bar aggregation: ticks into wall-clock-aligned OHLCV bars.

A :class:`BarAggregator` builds the bars of one symbol at one resolution. The
:class:`BarHub` keeps one aggregator per (symbol, resolution) that anyone has
subscribed to, however many subscribers share it, and hands every closed bar
to a single callback (the daemon publishes it on the bus).

Bars close on the first tick of a later bucket, or on the clock
(:meth:`BarHub.on_time`), whichever comes first; a bar is closed exactly once.
Once a symbol has traded, a bucket without any tick still closes, as a flat bar
at the last close with volume 0 and ``ticks == 0``, so that strategies driven
by bar cadence keep their rhythm through quiet periods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orchestrator.model.market import (
    RESOLUTION_SECONDS,
    Bar,
    Tick,
    bucket_start,
    unknown_resolution,
)

BarHandler = Callable[[Bar], None]


class BarAggregator:
    """Builds the bars of one symbol at one resolution from its ticks.

    The open bucket is the one the last tick fell into, or the one after the
    last bar the clock closed. A tick before the open bucket is too late to be
    counted anywhere: it is dropped and counted in ``late_ticks``.
    """

    __slots__ = (
        "_close",
        "_high",
        "_low",
        "_open",
        "_start",
        "_ticks",
        "_volume",
        "late_ticks",
        "resolution",
        "seconds",
        "symbol",
    )

    def __init__(self, symbol: str, resolution: str) -> None:
        problem = unknown_resolution(resolution)
        if problem is not None:
            raise ValueError(problem)
        self.symbol = symbol
        self.resolution = resolution
        self.seconds = RESOLUTION_SECONDS[resolution]
        self.late_ticks = 0
        self._start: float | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0.0
        self._ticks = 0

    @property
    def open_bucket_end(self) -> float | None:
        """When the open bucket closes; None before the first tick."""
        return None if self._start is None else self._start + self.seconds

    def on_tick(self, tick: Tick) -> list[Bar]:
        """Count ``tick``; return the bars it closed, oldest first."""
        start = bucket_start(tick.ts, self.seconds)
        if self._start is None:
            self._start = start
        elif start < self._start:
            self.late_ticks += 1
            return []
        closed = self._close_before(start)
        self._add(tick)
        return closed

    def on_time(self, now: float) -> list[Bar]:
        """Close every bucket that ends at or before ``now``; return those bars."""
        if self._start is None:
            return []
        return self._close_before(bucket_start(now, self.seconds))

    def _add(self, tick: Tick) -> None:
        price = tick.price
        if self._ticks == 0:
            self._open = self._high = self._low = price
            self._volume = tick.size
        else:
            self._high = max(self._high, price)
            self._low = min(self._low, price)
            self._volume += tick.size
        self._close = price
        self._ticks += 1

    def _close_before(self, start: float) -> list[Bar]:
        """Close the open bucket and the empty ones after it, up to ``start``."""
        closed: list[Bar] = []
        while self._start is not None and self._start < start:
            closed.append(self._bar())
            self._start += self.seconds
            self._open = self._high = self._low = self._close
            self._volume = 0.0
            self._ticks = 0
        return closed

    def _bar(self) -> Bar:
        assert self._start is not None
        return Bar(
            self.symbol,
            self.resolution,
            self._start,
            self._open,
            self._high,
            self._low,
            self._close,
            self._volume,
            self._ticks,
        )


def aggregate(ticks: Iterable[Tick], symbol: str, resolution: str) -> list[Bar]:
    """All bars of ``ticks`` (one symbol, in order), the last bucket closed too."""
    aggregator = BarAggregator(symbol, resolution)
    bars: list[Bar] = []
    for tick in ticks:
        bars.extend(aggregator.on_tick(tick))
    end = aggregator.open_bucket_end
    if end is not None:
        bars.extend(aggregator.on_time(end))
    return bars


@dataclass(slots=True)
class _Subscription:
    aggregator: BarAggregator
    subscribers: int = 0


class BarHub:
    """One shared aggregator per subscribed (symbol, resolution).

    ``on_bar`` receives every closed bar; it runs on the caller's task and its
    exceptions propagate to the caller of ``on_tick`` / ``on_time``.
    """

    def __init__(self, on_bar: BarHandler) -> None:
        self._on_bar = on_bar
        # symbol -> resolution -> subscription: a tick touches only its symbol's.
        self._by_symbol: dict[str, dict[str, _Subscription]] = {}
        self._last_ticks: dict[str, Tick] = {}

    def subscribe(self, symbol: str, resolution: str) -> None:
        """Add a subscriber to the pair, starting its aggregator if it is the first.

        A new aggregator starts with the next tick, so its first bar covers only
        the part of its bucket after the subscription.
        """
        subscription = self._by_symbol.get(symbol, {}).get(resolution)
        if subscription is None:
            aggregator = BarAggregator(symbol, resolution)  # refuses unknown resolutions
            subscription = _Subscription(aggregator)
            self._by_symbol.setdefault(symbol, {})[resolution] = subscription
        subscription.subscribers += 1

    def unsubscribe(self, symbol: str, resolution: str) -> None:
        """Remove a subscriber; the last one out drops the aggregator.

        Raises KeyError if the pair has no subscriber, which is a caller's bug.
        """
        by_resolution = self._by_symbol.get(symbol, {})
        subscription = by_resolution.get(resolution)
        if subscription is None:
            raise KeyError(f"no subscription to {symbol} at {resolution}")
        subscription.subscribers -= 1
        if subscription.subscribers == 0:
            del by_resolution[resolution]
            if not by_resolution:
                del self._by_symbol[symbol]

    def subscriber_count(self, symbol: str, resolution: str) -> int:
        subscription = self._by_symbol.get(symbol, {}).get(resolution)
        return 0 if subscription is None else subscription.subscribers

    @property
    def aggregator_count(self) -> int:
        return sum(len(by_resolution) for by_resolution in self._by_symbol.values())

    def aggregator(self, symbol: str, resolution: str) -> BarAggregator | None:
        """The shared aggregator of a subscribed pair (for its counters)."""
        subscription = self._by_symbol.get(symbol, {}).get(resolution)
        return None if subscription is None else subscription.aggregator

    def on_tick(self, tick: Tick) -> None:
        """Feed ``tick`` to its symbol's aggregators and deliver the bars it closed."""
        last = self._last_ticks.get(tick.symbol)
        if last is None or tick.ts >= last.ts:
            self._last_ticks[tick.symbol] = tick
        by_resolution = self._by_symbol.get(tick.symbol)
        if by_resolution is None:
            return
        for subscription in by_resolution.values():
            self._deliver(subscription, subscription.aggregator.on_tick(tick))

    def on_time(self, now: float) -> None:
        """Close every bucket, of every aggregator, that ends at or before ``now``."""
        closed: list[tuple[_Subscription, Bar]] = []
        for by_resolution in self._by_symbol.values():
            for subscription in by_resolution.values():
                closed.extend((subscription, bar) for bar in subscription.aggregator.on_time(now))
        # In closing order across pairs, so consumers see time move forward.
        closed.sort(key=lambda pair: pair[1].end)
        for subscription, bar in closed:
            self._deliver(subscription, (bar,))

    def _deliver(self, subscription: _Subscription, bars: Iterable[Bar]) -> None:
        for bar in bars:
            self._on_bar(bar)

    def next_close(self) -> float | None:
        """Earliest end of any open bucket; None while no aggregator has seen a tick.

        Scans every aggregator: it is called once per timer wake-up, not per tick.
        """
        ends = (
            subscription.aggregator.open_bucket_end
            for by_resolution in self._by_symbol.values()
            for subscription in by_resolution.values()
        )
        return min((end for end in ends if end is not None), default=None)

    def last_tick(self, symbol: str) -> Tick | None:
        """The newest tick seen for ``symbol``, subscribed or not (quote snapshots)."""
        return self._last_ticks.get(symbol)
