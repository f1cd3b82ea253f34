"""Market data sources: where ticks come from.

Every source implements :class:`Feed`. The daemon builds one from its validated
config with :func:`build_feed`, warms strategies up from :meth:`Feed.history`,
then runs :meth:`Feed.run` as a supervised task that pushes ticks into the bar
hub until it is cancelled.

Two sources live here, both offline so that a fresh clone runs without network:

- :class:`SyntheticFeed`, a seeded geometric Brownian motion per symbol;
- :class:`CsvReplayFeed`, which replays OHLCV files as ticks.

A third, ``kind = "nng"`` (:class:`NngFeedConfig`), receives ticks and bars
that other processes push over NNG. Its config lives here with the others, but
the feed itself lives at the edge (``gateways.nng.feed``) because the core
does not speak NNG; the composition root builds it and hands it to the core.
A fourth, ``kind = "ccxt"`` (:class:`CcxtFeedConfig`), polls a configured venue
through ccxt: it lives at the edge too (``gateways.venues.feed``).

The history files (CSV, Parquet, recordings) are read by
:mod:`orchestrator.marketdata.history`, shared with the backtest engine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import Protocol, TypeAlias

import structlog

from orchestrator.marketdata.config import (
    CcxtFeedConfig,
    CsvReplayFeedConfig,
    FeedConfig,
    NngFeedConfig,
    ReplaySpeed,
    SyntheticFeedConfig,
)
from orchestrator.marketdata.history import FeedError, load_history
from orchestrator.marketdata.ohlcv import TICKS_PER_OHLCV_ROW
from orchestrator.model.clock import Clock
from orchestrator.model.market import RESOLUTION_SECONDS, Bar, Tick, bucket_start

log = structlog.get_logger(__name__)

Sleep: TypeAlias = Callable[[float], Awaitable[None]]
"""How a feed waits; injected so tests can advance a manual clock instead."""

TickSink: TypeAlias = Callable[[Tick], None]

SECONDS_PER_YEAR = 365 * 24 * 3600
MAX_SYNTHETIC_LAG_SECONDS = 5.0
"""A synthetic tick this far behind the clock (the machine slept) is skipped, not sent."""
MAX_SPEED_YIELD_EVERY = 500
"""A feed that never needs to sleep still yields to the loop after this many ticks."""


class Feed(Protocol):
    """A source of ticks for a fixed set of symbols.

    ``history(until)`` returns ticks strictly before ``until`` in timestamp
    order, to warm strategies up; it may return an empty list. ``run(sink)``
    calls ``sink`` with each live tick, in timestamp order, until it is
    cancelled or the source is exhausted, in which case it returns. ``sink``
    must be quick and must not raise: it runs on the feed's task.
    """

    symbols: tuple[str, ...]

    def history(self, until: float) -> list[Tick]: ...

    async def run(self, sink: TickSink) -> None: ...


# --------------------------------------------------------------------------- config


def build_feed(
    config: FeedConfig, clock: Clock, last_prices: Mapping[str, float] | None = None
) -> Feed:
    """The feed that ``config`` describes; raises FeedError if its data is unusable.
    ``last_prices`` (from the journal) is where a synthetic path continues; a file
    replays its own prices and NNG carries another process's."""
    if isinstance(config, SyntheticFeedConfig):
        return SyntheticFeed(config, clock, continue_from=last_prices)
    if isinstance(config, NngFeedConfig):
        # The core does not speak NNG: the composition root builds this one.
        raise FeedError(
            "market_data.feed", "kind 'nng' is built by the daemon (gateways.nng.feed.NngFeed)"
        )
    if isinstance(config, CcxtFeedConfig):
        # ccxt speaks the network: the composition root builds this one too.
        raise FeedError(
            "market_data.feed", "kind 'ccxt' is built by the daemon (gateways.venues.feed)"
        )
    return CsvReplayFeed(config, clock)


# --------------------------------------------------------------------------- pacing


class _Pacer:
    """Waits until each tick is due by the clock, yielding to the loop when behind."""

    def __init__(self, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._without_yield = 0

    async def wait_until(self, due: float) -> None:
        delay = due - self._clock.now()
        if delay > 0:
            self._without_yield = 0
            await self._sleep(delay)
            return
        # Catching up (or replaying at max speed): emit at once, but never starve
        # the consumers that run on the same loop.
        self._without_yield += 1
        if self._without_yield >= MAX_SPEED_YIELD_EVERY:
            self._without_yield = 0
            await self._sleep(0)


# --------------------------------------------------------------------------- synthetic


class _RandomWalk:
    """One symbol's geometric Brownian motion on the feed's tick grid.

    Step ``k`` (k >= 0) is the k-th grid point after the path's origin. The
    path is always generated forward from the origin with its own generator,
    so the price at a step never depends on which range was asked for.

    An anchored walk (``anchor``: a price and the step it is at) passes through
    that price at that step: the steps before it are drawn backward from it,
    the steps after forward, each with a generator of its own segment.
    """

    def __init__(
        self,
        symbol: str,
        initial_price: float,
        config: SyntheticFeedConfig,
        anchor: tuple[float, int] | None = None,
    ) -> None:
        self.symbol = symbol
        self._initial_price = initial_price
        # A string seed is hashed with SHA-512: stable across runs and processes,
        # and another symbol's name cannot shift this symbol's draws.
        self._seed = f"{config.seed}:{symbol}"
        self._anchor = anchor
        years_per_step = 1.0 / (config.ticks_per_second * SECONDS_PER_YEAR)
        sigma = config.volatility
        self._log_drift = (config.drift - sigma * sigma / 2.0) * years_per_step
        self._log_scale = sigma * math.sqrt(years_per_step)

    def steps(self) -> Iterator[tuple[float, float]]:
        """(price, size) at step 0, 1, 2, ... forever."""
        if self._anchor is None:
            return self._forward(self._initial_price, random.Random(self._seed))
        price, at = self._anchor
        segment = f"{self._seed}@{at}:{price!r}"
        before = self._backward(price, at, random.Random(f"{segment}:before"))
        return itertools.chain(before, self._forward(price, random.Random(f"{segment}:after")))

    def _forward(self, price: float, rng: random.Random) -> Iterator[tuple[float, float]]:
        while True:
            size = float(rng.randint(1, 100))
            yield price, size
            price *= math.exp(self._log_drift + self._log_scale * rng.gauss(0.0, 1.0))

    def _backward(self, price: float, steps: int, rng: random.Random) -> list[tuple[float, float]]:
        """The ``steps`` steps that lead up to ``price``, oldest first."""
        path: list[tuple[float, float]] = []
        for _ in range(steps):
            price /= math.exp(self._log_drift + self._log_scale * rng.gauss(0.0, 1.0))
            path.append((price, float(rng.randint(1, 100))))
        path.reverse()
        return path


class SyntheticFeed:
    """Seeded geometric Brownian motion for each configured symbol.

    The path starts at the configured prices ``history_seconds`` before the
    feed is built, so ``history(now)`` followed by ``run`` is one continuous
    path. Timestamps sit on a fixed grid (multiples of 1/ticks_per_second);
    the same seed and build time give the same ticks.

    ``continue_from`` (the last price of each symbol before a restart) makes a
    symbol's path pass through that price at the build time instead: its first
    live tick is where the last run left it, and its history leads up to it.
    """

    def __init__(
        self,
        config: SyntheticFeedConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        continue_from: Mapping[str, float] | None = None,
    ) -> None:
        self.config = config
        self.symbols = tuple(config.symbols)
        self._clock = clock
        self._sleep = sleep
        self._rate = config.ticks_per_second
        self._origin = self._first_index_at_or_after(clock.now() - config.history_seconds)
        now = self._first_index_at_or_after(clock.now()) - self._origin
        last = continue_from or {}
        self._walks = [
            _RandomWalk(s, p, config, (last[s], now) if s in last else None)
            for s, p in config.symbols.items()
        ]

    def _timestamp(self, index: int) -> float:
        return index / self._rate

    def _first_index_at_or_after(self, ts: float) -> int:
        # ceil(ts * rate) can be off by one in floating point; settle it against
        # the very formula that stamps the ticks.
        index = math.ceil(ts * self._rate)
        while self._timestamp(index - 1) >= ts:
            index -= 1
        while self._timestamp(index) < ts:
            index += 1
        return index

    def ticks(self, start: float, end: float | None = None) -> Iterator[Tick]:
        """Ticks with ``start <= ts < end`` (endless without ``end``), in order."""
        first = max(self._first_index_at_or_after(start), self._origin)
        stop = None if end is None else self._first_index_at_or_after(end)
        paths = zip(*(walk.steps() for walk in self._walks), strict=True)
        for index, quotes in enumerate(paths, start=self._origin):
            if stop is not None and index >= stop:
                return
            if index < first:
                continue
            ts = self._timestamp(index)
            for walk, (price, size) in zip(self._walks, quotes, strict=True):
                yield Tick(walk.symbol, price, size, ts)

    def history(self, until: float) -> list[Tick]:
        """The ``history_seconds`` of ticks before ``until`` (none before the path's origin)."""
        return list(self.ticks(until - self.config.history_seconds, until))

    async def run(self, sink: TickSink) -> None:
        """Emit each tick when the clock reaches its timestamp, forever.

        After a jump of the clock (a suspended machine), ticks more than
        ``MAX_SYNTHETIC_LAG_SECONDS`` old are skipped rather than sent in a
        burst that every bar aggregator would drop as late anyway.
        """
        log.info("feed_started", feed="synthetic", symbols=self.symbols, rate=self._rate)
        pacer = _Pacer(self._clock, self._sleep)
        skipped = 0
        for tick in self.ticks(self._clock.now()):
            await pacer.wait_until(tick.ts)
            if tick.ts < self._clock.now() - MAX_SYNTHETIC_LAG_SECONDS:
                skipped += 1
                continue
            if skipped:
                log.warning("synthetic_ticks_skipped", ticks=skipped, reason="clock jumped")
                skipped = 0
            sink(tick)


# --------------------------------------------------------------------------- OHLCV replay


def ohlcv_ticks(bar: Bar, offset: float = 0.0) -> tuple[Tick, ...]:
    """The four ticks a replayed bar becomes, ``offset`` seconds later.

    Open at the start, then low and high in the order the bar most likely
    traded them (low first in an up bar), close at three quarters. The volume
    is split evenly, the last part taking the rounding, so the ticks' sizes
    summed in order give back exactly the bar's volume.
    """
    step = RESOLUTION_SECONDS[bar.resolution] / TICKS_PER_OHLCV_ROW
    quarter = bar.volume / TICKS_PER_OHLCV_ROW
    rest = bar.volume - (quarter + quarter + quarter)
    middle = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
    prices = (bar.open, *middle, bar.close)
    sizes = (quarter, quarter, quarter, rest)
    start = bar.start + offset
    return tuple(
        Tick(bar.symbol, price, size, start + i * step)
        for i, (price, size) in enumerate(zip(prices, sizes, strict=True))
    )


# --------------------------------------------------------------------------- CSV replay


class CsvReplayFeed:
    """Replays OHLCV files (CSV or Parquet, see history) as ticks, all symbols merged
    in timestamp order.

    Files are read and checked when the feed is built, so a bad file stops
    the daemon at start with a FeedError naming the file and line.
    """

    def __init__(
        self, config: CsvReplayFeedConfig, clock: Clock, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.config = config
        self.symbols = tuple(config.files)
        self._clock = clock
        self._sleep = sleep
        self._bars = {symbol: load_history(path, symbol) for symbol, path in config.files.items()}
        log.info(
            "csv_feed_loaded",
            bars={symbol: len(bars) for symbol, bars in self._bars.items()},
            speed=config.speed,
        )

    def history(self, until: float) -> list[Tick]:
        """A replay has no past of its own: it starts where the files start."""
        return []

    def ticks(self, offset: float = 0.0) -> Iterator[Tick]:
        """Every file's ticks, ``offset`` seconds later, merged in timestamp order."""
        per_file = (replay_bars(bars, offset) for bars in self._bars.values())
        # heapq.merge is stable: on equal timestamps the earlier file goes first.
        return heapq.merge(*per_file, key=_tick_time)

    def shift_for(self, now: float) -> float:
        """Seconds to add to the files' timestamps so the replay starts at ``now``.

        The replay moves to the first boundary, at or after ``now``, of the
        coarsest file resolution, so every file stays on its own bar grid.
        """
        unit = max(RESOLUTION_SECONDS[bars[0].resolution] for bars in self._bars.values())
        first = min(bars[0].start for bars in self._bars.values())
        target = math.ceil(now / unit) * unit
        return target - bucket_start(first, unit)

    async def run(self, sink: TickSink) -> None:
        """Replay every tick at the configured speed, then return."""
        now = self._clock.now()
        offset = self.shift_for(now) if self.config.shift_to_now else 0.0
        multiplier = _speed_multiplier(self.config.speed)
        log.info("feed_started", feed="csv", symbols=self.symbols, offset=offset)
        ticks = self.ticks(offset)
        first = next(ticks, None)
        if first is None:
            return
        # In real time with shifted timestamps, data time *is* wall time: wait
        # for the first tick's moment. Otherwise the replay starts right now.
        wall_origin = first.ts if multiplier == 1.0 and self.config.shift_to_now else now
        pacer = _Pacer(self._clock, self._sleep)
        count = 0
        for tick in chain((first,), ticks):
            due = (
                -math.inf
                if multiplier is None
                else _replay_due(tick, first, wall_origin, multiplier)
            )
            await pacer.wait_until(due)
            sink(tick)
            count += 1
        log.info("feed_exhausted", feed="csv", ticks=count)


def _tick_time(tick: Tick) -> float:
    return tick.ts


def _speed_multiplier(speed: ReplaySpeed) -> float | None:
    """Times faster than real time; None for as fast as possible."""
    if speed == "max":
        return None
    if speed == "realtime":
        return 1.0
    return float(speed)


def _replay_due(tick: Tick, first: Tick, wall_origin: float, multiplier: float) -> float:
    return wall_origin + (tick.ts - first.ts) / multiplier


def replay_bars(bars: Iterable[Bar], offset: float = 0.0) -> Iterator[Tick]:
    """The ticks of ``bars`` in order, as a replay would emit them (for backtests)."""
    return chain.from_iterable(ohlcv_ticks(bar, offset) for bar in bars)
