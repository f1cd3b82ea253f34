"""The ccxt feed: a venue's market data, polled through ccxt's async API, into the
market data path (``[market_data.feed] kind = "ccxt"``, docs/venues.md).

:class:`CcxtFeed` implements :class:`orchestrator.marketdata.feeds.Feed`. Every
``interval_seconds`` it asks the venue, for each symbol at once, either for its public
trades since the last one it saw (``source = "trades"``: ccxt's ``fetch_trades`` from
that trade's id, so a tick per trade with its size, and the trades of a gap are read
when the venue answers again) or for its ticker (``source = "ticker"``: the last price,
a tick when it changes). Each tick goes to the sink, ``MarketData.handle_tick``, the
entry of every feed: the same bar aggregation, strategies and 3001 clients.

It reads through the venue's own ccxt exchange (the broker's), so ccxt's rate limiter
(``enable_rate_limit``) spaces the feed's requests and the orders' together. A failed
request (ccxt's NetworkError: unreachable, timed out, RateLimitExceeded,
ExchangeNotAvailable; or any other refusal) is logged, and the next poll waits twice
as long as the last, from ``interval_seconds`` up to ``max_backoff_seconds``; the first
answer goes back to the interval. A symbol that has not answered for
``gap_intervals`` intervals opens a gap: logged and announced (``FeedStatusChanged``,
3001's ``feed_status``) with the reason; the answer that ends it is logged and
announced as the recovery.

Ticks are stamped with the venue's time, never later than the daemon's clock (a venue
clock ahead would close bars early). Per symbol they come in order; the ticks of one
poll are merged by time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from ccxt.base import errors as ccxt_errors

from gateways.venues.connector import describe_venue_error
from orchestrator.marketdata.config import CcxtFeedConfig
from orchestrator.marketdata.feeds import Sleep, TickSink
from orchestrator.model.clock import Clock
from orchestrator.model.events import FeedCondition, FeedState
from orchestrator.model.market import Tick

log = structlog.get_logger("gateways.venues.feed")

MAX_PAGES_PER_POLL = 20
"""Most full pages of trades read for one symbol in one poll (a long gap's catch-up);
the rest comes at the next poll, so one symbol cannot hold the others up."""


@dataclass(slots=True)
class _Symbol:
    """What the feed knows of one symbol between polls."""

    symbol: str
    last_answer: float
    """When the venue last answered for it (the start, before the first answer)."""
    cursor: int | None = None
    """The id of the last public trade seen (trades source)."""
    last_price: float | None = None
    """The last ticker's price (ticker source)."""
    error: str | None = None
    """Why its last request failed; None after an answer."""
    answered: bool = False
    """The venue has answered for it at least once."""


@dataclass(frozen=True, slots=True)
class _Answer:
    ticks: list[Tick]
    more: bool
    """A full page came back: the next page waits."""


class CcxtFeed:
    """Market data polled from venue ``config.venue`` (see the module docstring)."""

    def __init__(self, config: CcxtFeedConfig, clock: Clock, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self.symbols = tuple(config.symbols)
        self._clock = clock
        self._sleep = sleep
        self._exchange: Any = None
        self._started = clock.now()
        self._symbols = {s: _Symbol(s, self._started) for s in self.symbols}
        self._state = FeedState("ccxt", config.venue, FeedCondition.CONNECTING, self._started)
        self._gap_ticks = 0
        """Ticks delivered since the gap opened (a trades source's catch-up)."""
        self.failures = 0
        """Polls in a row with a failed request (the backoff's exponent)."""
        self.ticks = 0
        """Ticks handed to the sink."""
        self.on_state: Callable[[FeedState], None] = lambda state: None
        """Called with each new condition: the composition root announces it."""

    @property
    def state(self) -> FeedState:
        return self._state

    def attach(self, exchange: Any) -> None:
        """Read through ``exchange``: the venue broker's ccxt exchange, and its throttle."""
        self._exchange = exchange

    def history(self, until: float) -> list[Tick]:
        """No backfill: the first ticks are the venue's trades (or quotes) after the start."""
        return []

    def gap_seconds(self) -> float:
        """How long a symbol may go without an answer before it is a gap."""
        return self.config.gap_intervals * self.config.interval_seconds

    def backoff(self) -> float:
        """The wait before the next poll: the interval, doubled by each failure in a row."""
        if self.failures == 0:
            return self.config.interval_seconds
        doubled = self.config.interval_seconds * 2.0 ** min(self.failures, 60)
        return min(doubled, self.config.max_backoff_seconds)

    # ------------------------------------------------------------ running

    async def run(self, sink: TickSink) -> None:
        """Poll until cancelled, watching for gaps beside it."""
        if self._exchange is None:
            raise RuntimeError("the ccxt feed has no exchange: attach the venue's first")
        log.info(
            "feed_started", feed="ccxt", venue=self.config.venue, symbols=self.symbols,
            source=self.config.source, interval=self.config.interval_seconds,
        )  # fmt: skip
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_gaps(), name="ccxt-feed-gaps")
            await self._poll_forever(sink)

    async def _poll_forever(self, sink: TickSink) -> None:
        while True:
            more = await self.poll(sink)
            if not more:
                await self._sleep(self.backoff())

    async def poll(self, sink: TickSink) -> bool:
        """Ask once for every symbol and deliver what came; True when a page was full
        and no request failed (the next one should go at once)."""
        answers = await asyncio.gather(
            *(self._ask(entry) for entry in self._symbols.values()), return_exceptions=True
        )
        now = self._clock.now()
        ticks: list[Tick] = []
        more = False
        failed = False
        for entry, answer in zip(self._symbols.values(), answers, strict=True):
            if isinstance(answer, asyncio.CancelledError):
                raise answer
            if isinstance(answer, BaseException):
                failed = True
                self._failed(entry, answer)
                continue
            entry.last_answer, entry.error, entry.answered = now, None, True
            ticks.extend(answer.ticks)
            more = more or answer.more
        self.failures = self.failures + 1 if failed else 0
        ticks.sort(key=_tick_time)
        for tick in ticks:
            sink(tick)
        self.ticks += len(ticks)
        self._gap_ticks += len(ticks)
        self._settle(now)
        return more and not failed

    async def _ask(self, entry: _Symbol) -> _Answer:
        if self.config.source == "ticker":
            return await self._ticker(entry)
        return await self._trades(entry)

    async def _trades(self, entry: _Symbol) -> _Answer:
        """The public trades after the cursor (the most recent ones, the first time:
        only those since the start become ticks)."""
        limit = self.config.trades_per_poll
        params = {} if entry.cursor is None else {"fromId": entry.cursor + 1}
        trades = await self._exchange.fetch_trades(entry.symbol, None, limit, params)
        first = entry.cursor is None
        now = self._clock.now()
        ticks: list[Tick] = []
        for trade in sorted(trades, key=_trade_id):
            trade_id = _trade_id(trade)
            if entry.cursor is not None and trade_id <= entry.cursor:
                continue
            entry.cursor = trade_id
            ts = min(float(trade["timestamp"]) / 1000.0, now)
            if not first or ts >= self._started:
                ticks.append(Tick(entry.symbol, float(trade["price"]), float(trade["amount"]), ts))
        return _Answer(ticks, more=not first and len(trades) >= limit)

    async def _ticker(self, entry: _Symbol) -> _Answer:
        """The last price, as a tick (size 0: a ticker has no trade size) when it moved."""
        ticker = await self._exchange.fetch_ticker(entry.symbol)
        price = ticker.get("last")
        if price is None:
            return _Answer([], more=False)
        now = self._clock.now()
        stamp = ticker.get("timestamp")
        ts = now if stamp is None else min(float(stamp) / 1000.0, now)
        if float(price) == entry.last_price:
            return _Answer([], more=False)
        entry.last_price = float(price)
        return _Answer([Tick(entry.symbol, float(price), 0.0, ts)], more=False)

    def _failed(self, entry: _Symbol, exc: BaseException) -> None:
        reason = describe_venue_error(self.config.venue, exc)
        entry.error = f"{entry.symbol}: {reason}"
        retryable = isinstance(exc, ccxt_errors.NetworkError)
        (log.warning if retryable else log.error)(
            "market_feed_request_failed", venue=self.config.venue, symbol=entry.symbol,
            error=reason, failures=self.failures + 1, retryable=retryable,
        )  # fmt: skip

    # ------------------------------------------------------------ gaps

    async def _watch_gaps(self) -> None:
        """Open a gap when a symbol stays silent too long, even while a request hangs."""
        while True:
            await self._sleep(self.config.interval_seconds)
            self._settle(self._clock.now())

    def _settle(self, now: float) -> None:
        """The condition that the symbols' last answers make now; announced on a change."""
        silent = [s for s in self._symbols.values() if now - s.last_answer > self.gap_seconds()]
        answered = all(s.answered for s in self._symbols.values())
        if silent:
            self._open_gap(silent, now)
        elif answered and self._state.condition is not FeedCondition.LIVE:
            self._recover(now)

    def _open_gap(self, silent: Sequence[_Symbol], now: float) -> None:
        reason = "; ".join(s.error or f"{s.symbol}: no answer" for s in silent)
        if self._state.condition is FeedCondition.GAP and self._state.reason == reason:
            return
        if self._state.condition is not FeedCondition.GAP:
            self._gap_ticks = 0
            since = min(s.last_answer for s in silent)
            log.warning(
                "market_feed_gap", venue=self.config.venue,
                symbols=[s.symbol for s in silent], silent_seconds=round(now - since, 3),
                reason=reason,
            )  # fmt: skip
        else:
            since = self._state.since
        self._state = FeedState(
            "ccxt", self.config.venue, FeedCondition.GAP, since, reason, self._last_data()
        )
        self.announce()

    def _recover(self, now: float) -> None:
        was = self._state
        if was.condition is FeedCondition.GAP:
            log.info(
                "market_feed_recovered", venue=self.config.venue,
                gap_seconds=round(now - was.since, 3), ticks_caught_up=self._gap_ticks,
            )  # fmt: skip
        self._state = FeedState(
            "ccxt", self.config.venue, FeedCondition.LIVE, now, None, self._last_data()
        )
        self.announce()

    def _last_data(self) -> float | None:
        answered = [s.last_answer for s in self._symbols.values() if s.answered]
        return max(answered) if answered else None

    def announce(self) -> None:
        """Tell ``on_state`` the condition now (the daemon does at start, for 3001's snapshot)."""
        self.on_state(self._state)


def _trade_id(trade: dict[str, Any]) -> int:
    return int(trade["id"])


def _tick_time(tick: Tick) -> float:
    return tick.ts
