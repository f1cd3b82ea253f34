"""The market data service: runs the feed, aggregates bars, and hands every tick
and bar to execution, strategies and subscribers in a fixed order.

Order per tick: pending orders fill at this price and positions are marked;
then bars that this tick closes reach the strategies; then strategies that want
ticks see it; then the quote is published. So an order a strategy sends on a
bar fills at the *next* price, never at the price that triggered it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence

import structlog

from orchestrator.bus import EventBus
from orchestrator.marketdata.bars import BarAggregator, BarHub
from orchestrator.marketdata.feeds import Feed
from orchestrator.model.clock import Clock
from orchestrator.model.events import BarClosed, QuoteUpdated
from orchestrator.model.market import Bar, Tick, bucket_start, resolution_seconds

log = structlog.get_logger("orchestrator.marketdata.hub")

TickHandler = Callable[[Tick], None]
BarHandler = Callable[[Bar], None]


class MarketData:
    def __init__(
        self,
        feed: Feed,
        bus: EventBus,
        clock: Clock,
        warmup_ticks_per_symbol: int,
    ) -> None:
        self.feed = feed
        self.symbols = frozenset(feed.symbols)
        self._bus = bus
        self._clock = clock
        self._hub = BarHub(self._on_bar)
        self._recent: dict[str, deque[Tick]] = {
            symbol: deque(maxlen=warmup_ticks_per_symbol) for symbol in feed.symbols
        }
        self._before_bars: list[TickHandler] = []
        self._bar_handlers: list[BarHandler] = []
        self._after_bars: list[TickHandler] = []
        self.ticks_received = 0
        self._bar_clock_wakeup = asyncio.Event()

    def on_price(self, handler: TickHandler) -> None:
        """``handler`` sees each tick before bars close (execution: fills, marks)."""
        self._before_bars.append(handler)

    def on_bar(self, handler: BarHandler) -> None:
        self._bar_handlers.append(handler)

    def on_tick(self, handler: TickHandler) -> None:
        """``handler`` sees each tick after its bars were delivered (strategies)."""
        self._after_bars.append(handler)

    def prime(self) -> None:
        """Load the feed's history so strategies can warm up right after start."""
        for tick in self.feed.history(self._clock.now()):
            self._remember(tick)

    def subscribe(self, symbol: str, resolution: str) -> None:
        self._hub.subscribe(symbol, resolution)
        aggregator = self._hub.aggregator(symbol, resolution)
        if aggregator is not None and self._hub.subscriber_count(symbol, resolution) == 1:
            self._seed_open_bucket(aggregator, symbol, resolution)
        self._bar_clock_wakeup.set()

    def _seed_open_bucket(self, aggregator: BarAggregator, symbol: str, resolution: str) -> None:
        # A new aggregator would otherwise miss the ticks already seen in the
        # current bucket, and its first bar would have the wrong open, high and low.
        start = bucket_start(self._clock.now(), resolution_seconds(resolution))
        for tick in self._recent.get(symbol, ()):
            if tick.ts >= start:
                aggregator.on_tick(tick)

    def unsubscribe(self, symbol: str, resolution: str) -> None:
        self._hub.unsubscribe(symbol, resolution)

    def last_tick(self, symbol: str) -> Tick | None:
        return self._hub.last_tick(symbol)

    def warmup_bars(self, symbol: str, resolution: str, count: int) -> Sequence[Bar]:
        """Up to ``count`` closed bars before now, rebuilt from recent ticks."""
        if count <= 0:
            return ()
        aggregator = BarAggregator(symbol, resolution)
        bars: list[Bar] = []
        for tick in self._recent.get(symbol, ()):
            bars.extend(aggregator.on_tick(tick))
        bars.extend(aggregator.on_time(self._clock.now()))
        return bars[-count:]

    def handle_tick(self, tick: Tick) -> None:
        """The single entry of every tick, whatever the feed."""
        self.ticks_received += 1
        self._remember(tick)
        for handler in self._before_bars:
            handler(tick)
        self._hub.on_tick(tick)
        for handler in self._after_bars:
            handler(tick)
        self._bus.publish(QuoteUpdated(tick))

    def close_due_bars(self) -> None:
        self._hub.on_time(self._clock.now())

    async def run_feed(self) -> None:
        await self.feed.run(self.handle_tick)
        log.info("feed_exhausted", ticks=self.ticks_received)

    async def run_bar_clock(self) -> None:
        """Close bars on time even when no tick arrives in a bucket."""
        while True:
            self._bar_clock_wakeup.clear()
            due = self._hub.next_close()
            # No open bucket until an aggregator sees its first tick: look again soon.
            delay = 1.0 if due is None else due - self._clock.now()
            if delay > 0:
                # A new, shorter resolution may be subscribed meanwhile: wake for it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bar_clock_wakeup.wait(), timeout=delay)
                continue
            self.close_due_bars()

    def _remember(self, tick: Tick) -> None:
        recent = self._recent.get(tick.symbol)
        if recent is not None:
            recent.append(tick)

    def _on_bar(self, bar: Bar) -> None:
        for handler in self._bar_handlers:
            handler(bar)
        self._bus.publish(BarClosed(bar))
