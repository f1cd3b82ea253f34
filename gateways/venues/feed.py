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

Streaming (``stream = "auto"``, the trades source): where the venue's exchange has
ccxt.pro's ``watchTradesForSymbols`` (one connection for every symbol) or
``watchTrades`` (one watch per symbol), the public trades come over its WebSocket
instead, through a ccxt.pro exchange of the venue's settings (no credentials: public
streams), closed with the feed. It streams the channel whose trade ids are the REST
read's (``STREAM_PARAMS``): on Binance ``@aggTrade``, aggregate ids as ``fetch_trades``
reads them from ``aggTrades``, not ccxt.pro's default ``@trade``, whose trade ids are
another series. A wake of any watch delivers every symbol's trades that ccxt.pro holds
past the last id seen (``exchange.trades``), so a symbol never waits for another's
message. The stream counts as up with its first message: then the trades it
may have missed are read once by REST (``fetch_trades`` from the last id seen, as a
poll), and the stream takes over. Until then, and while it is down, the feed polls REST
as above. A dropped or refused stream opens a gap at once (logged, announced, its
reason saying the feed polls meanwhile) and is reconnected after the same exponential
backoff (its own count of failures in a row); the catch-up at its return ends the gap.
Trade ids dedupe the two paths: no trade is lost or doubled. A live stream is not a
gap when the market is quiet (ccxt.pro's keepalive pings find a dead connection).

ccxt.pro keeps a symbol's last ``tradesLimit`` trades (1000 by default): more between two
wakes of the feed push the oldest out. A wake that finds that a symbol's cache lost
trades after the last id seen reads them by REST first (the catch-up's read, from the
last id seen), logged as ``market_feed_stream_overflow``; they come before the cached
ones, deduped by id. Which rule tells a loss is learned from the ids in the
cache: where they are consecutive integers (Binance numbers each symbol's aggregate
trades so), a first new id past the last seen + 1; where a cache shows ids that skip (a venue that
numbers its trades across symbols), a full cache whose oldest trade is newer than the
last seen. A symbol whose re-read fails keeps its cached trades for the next wake.

Ticks are stamped with the venue's time, never later than the daemon's clock (a venue
clock ahead would close bars early). Per symbol they come in order; the ticks of one
poll (or one wake of the stream) are merged by time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from ccxt.base import errors as ccxt_errors

from gateways.venues.connector import describe_venue_error
from orchestrator.marketdata.config import CcxtFeedConfig
from orchestrator.marketdata.feeds import Sleep, TickSink
from orchestrator.model.clock import Clock
from orchestrator.model.errors import ConfigError
from orchestrator.model.events import FeedCondition, FeedState
from orchestrator.model.market import Tick

log = structlog.get_logger("gateways.venues.feed")

WatchCall = Callable[[], Coroutine[Any, Any, Any]]
"""One ccxt.pro watch call (it returns with the next message of its stream)."""

DEFAULT_TRADES_LIMIT = 1000
"""ccxt.pro's ``tradesLimit`` where its cache does not say its own size."""

STREAM_PARAMS: dict[str, dict[str, str]] = {
    # ccxt's fetch_trades reads Binance's aggTrades, numbered by aggregate trade id, but
    # ccxt.pro streams @trade by default, numbered by trade id (another series): the
    # catch-up reads REST from the stream's last id, so the stream must be @aggTrade.
    "binance": {"name": "aggTrade"},
    "binanceus": {"name": "aggTrade"},  # binance's classes, the same two series
}
"""The ``params`` of the trade watch by ccxt exchange id: the stream channel whose trade
ids are the ids the REST read (``fetch_trades``) returns; others stream ccxt.pro's default."""

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
    consecutive_ids: bool | None = None
    """Its trade ids go up by one (learned from the stream's cache; None: not known yet)."""


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
        self._stream_factory: Callable[[], Any] | None = None
        self._stream_live = False
        """The stream delivers: its first message came and the REST catch-up is done."""
        self._stream_error: str | None = None
        """Why the stream is down (a gap's reason); None while it is up or never failed."""
        self._stream_down_since = self._started
        self._streamed: frozenset[str] = frozenset()
        """The symbols the stream carries: those the venue lists, once its markets are known."""
        self.stream_failures = 0
        """Stream connections lost or refused in a row (its reconnection's backoff)."""

    @property
    def state(self) -> FeedState:
        return self._state

    def attach(self, exchange: Any, stream: Callable[[], Any] | None = None) -> None:
        """Read through ``exchange``: the venue broker's ccxt exchange, and its throttle;
        ``stream`` builds the venue's ccxt.pro exchange (None when ccxt.pro has none)."""
        self._exchange = exchange
        self._stream_factory = stream

    @property
    def streaming(self) -> bool:
        """The trades come over the venue's WebSocket now (not by polling)."""
        return self._stream_live

    def history(self, until: float) -> list[Tick]:
        """No backfill: the first ticks are the venue's trades (or quotes) after the start."""
        return []

    def gap_seconds(self) -> float:
        """How long a symbol may go without an answer before it is a gap."""
        return self.config.gap_intervals * self.config.interval_seconds

    def backoff(self, failures: int | None = None) -> float:
        """The wait before the next poll (or, given the stream's ``failures``, the next
        connection): the interval, doubled by each failure in a row."""
        failures = self.failures if failures is None else failures
        if failures == 0:
            return self.config.interval_seconds
        doubled = self.config.interval_seconds * 2.0 ** min(failures, 60)
        return min(doubled, self.config.max_backoff_seconds)

    # ------------------------------------------------------------ running

    async def run(self, sink: TickSink) -> None:
        """Stream or poll until cancelled, watching for gaps beside it."""
        if self._exchange is None:
            raise RuntimeError("the ccxt feed has no exchange: attach the venue's first")
        log.info(
            "feed_started", feed="ccxt", venue=self.config.venue, symbols=self.symbols,
            source=self.config.source, interval=self.config.interval_seconds,
        )  # fmt: skip
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_gaps(), name="ccxt-feed-gaps")
            streams = await self._stream_exchange()
            if streams is None:
                await self._poll_forever(sink)
                return
            try:
                await self._stream_forever(streams, sink)
            finally:
                await streams.close()

    async def _poll_forever(self, sink: TickSink) -> None:
        while True:
            more = await self.poll(sink)
            if not more:
                await self._sleep(self.backoff())

    async def poll(self, sink: TickSink, only: Collection[str] | None = None) -> bool:
        """Ask once for every symbol (or those of ``only``) and deliver what came; True
        when a page was full and no request failed (the next one should go at once)."""
        entries = [e for e in self._symbols.values() if only is None or e.symbol in only]
        answers = await asyncio.gather(
            *(self._ask(entry) for entry in entries), return_exceptions=True
        )
        now = self._clock.now()
        ticks: list[Tick] = []
        more = False
        failed = False
        for entry, answer in zip(entries, answers, strict=True):
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

    # ------------------------------------------------------------ streaming

    async def _stream_exchange(self) -> Any | None:
        """The ccxt.pro exchange to stream from, or None: poll (off, ticker, no watch)."""
        if self.config.stream == "off" or self.config.source != "trades":
            return None
        try:
            streams = None if self._stream_factory is None else self._stream_factory()
        except ConfigError as exc:  # stream_urls naming what the exchange has not
            log.error("market_feed_stream_unavailable", venue=self.config.venue, error=str(exc))
            return None
        if streams is None or not _watch_methods(streams):
            log.info(
                "market_feed_polling", venue=self.config.venue,
                reason="the venue's exchange has no public trade stream in ccxt.pro",
            )  # fmt: skip
            if streams is not None:
                await streams.close()
            return None
        return streams

    async def _stream_forever(self, streams: Any, sink: TickSink) -> None:
        """Stream until cancelled; poll while the stream is not up (see the module doc)."""
        watches: dict[asyncio.Task[Any], WatchCall] = {}
        """Each pending watch call, and how to make it again once it is done."""
        try:
            while True:
                if not watches:
                    watches = {asyncio.create_task(call()): call for call in self._calls(streams)}
                patience = None if self._stream_live else self.backoff()
                woken = await self._first_of(list(watches), patience)
                if woken is None:  # not up yet: the trades come by REST meanwhile
                    await self.poll(sink)
                    continue
                call = watches.pop(woken)
                error = woken.exception()
                if error is not None:
                    _cancel(watches)
                    watches = {}
                    self._stream_failed(error)
                    await self._poll_for(self.backoff(self.stream_failures), sink)
                    continue
                watches[asyncio.create_task(call())] = call
                if self._stream_live or await self._catch_up(sink):
                    await self._deliver_streamed(streams, sink)
        finally:
            _cancel(watches)

    def _calls(self, streams: Any) -> list[WatchCall]:
        """One watch for every symbol where the exchange has it, else one per symbol; a
        symbol the venue does not list (known after the first try) stays polled, a gap."""
        markets = streams.markets or {}
        listed = [s for s in self.symbols if not markets or s in markets] or list(self.symbols)
        self._streamed = frozenset(listed)
        params = STREAM_PARAMS.get(streams.id, {})
        if streams.has.get("watchTradesForSymbols"):
            return [lambda: streams.watch_trades_for_symbols(listed, params=dict(params))]
        return [_watch_symbol(streams, symbol, params) for symbol in listed]

    async def _first_of(
        self, watches: Sequence[asyncio.Task[Any]], patience: float | None
    ) -> asyncio.Task[Any] | None:
        """The first watch done, or None when ``patience`` seconds (the feed's sleep) pass."""
        timer = None if patience is None else asyncio.ensure_future(self._sleep(patience))
        waits: set[asyncio.Future[Any]] = {*watches, *([] if timer is None else [timer])}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if timer is not None:
                timer.cancel()
        return next((watch for watch in watches if watch in done), None)

    async def _poll_for(self, seconds: float, sink: TickSink) -> None:
        """Poll REST for ``seconds`` (the stream's backoff), at the polls' own pace."""
        while seconds > 0:
            wait = 0.0 if await self.poll(sink) else min(self.backoff(), seconds)
            await self._sleep(wait)
            seconds -= wait

    async def _catch_up(self, sink: TickSink) -> bool:
        """The stream's first message: read by REST what it may have missed (all
        pages), then let it take over; False when REST fails (the stream waits)."""
        if not await self._read_missed(self._streamed, sink):
            return False
        was_down = self._stream_error is not None
        self._stream_live, self._stream_error, self.stream_failures = True, None, 0
        log.info("market_feed_streaming", venue=self.config.venue, reconnected=was_down)
        self._settle(self._clock.now())
        return True

    async def _read_missed(self, symbols: Collection[str], sink: TickSink) -> bool:
        """Read by REST every trade of ``symbols`` after the last id seen (all pages);
        False when a request failed."""
        while await self.poll(sink, symbols):
            pass
        return not self.failures

    async def _deliver_streamed(self, streams: Any, sink: TickSink) -> None:
        """Every symbol's trades ccxt.pro holds past the last id seen, merged by time;
        those its cache dropped are read by REST first (see the module docstring)."""
        caches: dict[str, Any] = streams.trades or {}
        held = {s: sorted(caches.get(s) or [], key=_trade_id) for s in self._streamed}
        overflowed = [
            symbol
            for symbol, trades in held.items()
            if self._dropped(self._symbols[symbol], trades, _cache_size(streams, caches, symbol))
        ]
        ticks: list[Tick] = []
        unread = await self._reread(overflowed, held, ticks.append) if overflowed else set()
        now = self._clock.now()
        streamed = 0
        for symbol, trades in held.items():
            if symbol in unread:  # its cache waits for the next wake (and re-read)
                continue
            entry = self._symbols[symbol]
            for trade in trades:
                if entry.cursor is None or _trade_id(trade) > entry.cursor:
                    entry.cursor = _trade_id(trade)
                    ticks.append(_trade_tick(entry.symbol, trade, now))
                    streamed += 1
            entry.last_answer, entry.error, entry.answered = now, None, True
        ticks.sort(key=_tick_time)  # stable: a symbol's re-read trades stay first
        for tick in ticks:
            sink(tick)
        self.ticks += streamed  # the re-read's poll counted its own
        self._gap_ticks += streamed
        self._settle(now)

    @staticmethod
    def _dropped(entry: _Symbol, trades: Sequence[dict[str, Any]], cache_size: int) -> bool:
        """Whether ccxt.pro's cache of ``entry``'s symbol (``trades``, by id) lost trades
        after the last id seen; learns on the way whether its ids are consecutive."""
        if entry.cursor is None or not trades:
            return False
        ids = [_trade_id(trade) for trade in trades]
        if entry.consecutive_ids is not False and len(ids) > 1:  # one skip settles it
            pairs = itertools.pairwise(ids)
            entry.consecutive_ids = all(later - earlier == 1 for earlier, later in pairs)
        if entry.consecutive_ids:
            return ids[0] > entry.cursor + 1
        return len(ids) >= cache_size and ids[0] > entry.cursor

    async def _reread(
        self, symbols: Sequence[str], held: dict[str, list[dict[str, Any]]], sink: TickSink
    ) -> set[str]:
        """Read by REST the trades ``symbols``' caches dropped; the symbols whose read failed."""
        last_seen = {symbol: self._symbols[symbol].cursor for symbol in symbols}
        read: list[Tick] = []

        def deliver(tick: Tick) -> None:
            read.append(tick)
            sink(tick)

        await self._read_missed(symbols, deliver)
        failed = {symbol for symbol in symbols if self._symbols[symbol].error is not None}
        for symbol in symbols:
            (log.error if symbol in failed else log.warning)(
                "market_feed_stream_overflow", venue=self.config.venue, symbol=symbol,
                re_read=sum(1 for tick in read if tick.symbol == symbol),
                last_seen_id=last_seen[symbol], first_cached_id=_trade_id(held[symbol][0]),
                rule="consecutive ids" if self._symbols[symbol].consecutive_ids else "full cache",
                complete=symbol not in failed,
            )  # fmt: skip
        return failed

    def _stream_failed(self, exc: BaseException) -> None:
        """The stream dropped or was refused: a gap now, polling until it reconnects."""
        reason = describe_venue_error(self.config.venue, exc)
        retryable = isinstance(exc, ccxt_errors.NetworkError)
        self.stream_failures += 1
        if self._stream_error is None:
            self._stream_down_since = self._clock.now()
        self._stream_live = False
        self._stream_error = f"trade stream down, polling REST until it reconnects: {reason}"
        (log.warning if retryable else log.error)(
            "market_feed_stream_down", venue=self.config.venue, error=reason,
            failures=self.stream_failures, retry_in=self.backoff(self.stream_failures),
            retryable=retryable,
        )  # fmt: skip
        self._settle(self._clock.now())

    # ------------------------------------------------------------ polling

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
            tick = _trade_tick(entry.symbol, trade, now)
            if not first or tick.ts >= self._started:
                ticks.append(tick)
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
        # A live stream's quiet market is no gap: its keepalive finds a dead connection.
        silent = [
            s
            for s in self._symbols.values()
            if not (self._stream_live and s.symbol in self._streamed)
            and now - s.last_answer > self.gap_seconds()
        ]
        answered = all(s.answered for s in self._symbols.values())
        if silent or self._stream_error is not None:
            self._open_gap(silent, now)
        elif answered and self._state.condition is not FeedCondition.LIVE:
            self._recover(now)

    def _open_gap(self, silent: Sequence[_Symbol], now: float) -> None:
        reasons = [s.error or f"{s.symbol}: no answer" for s in silent]
        starts = [s.last_answer for s in silent]
        if self._stream_error is not None:
            reasons.insert(0, self._stream_error)
            starts.append(self._stream_down_since)
        reason = "; ".join(reasons)
        if self._state.condition is FeedCondition.GAP and self._state.reason == reason:
            return
        if self._state.condition is not FeedCondition.GAP:
            self._gap_ticks = 0
            since = min(starts)
            log.warning(
                "market_feed_gap", venue=self.config.venue,
                symbols=[s.symbol for s in silent] or list(self.symbols),
                silent_seconds=round(now - since, 3), reason=reason,
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


def _trade_tick(symbol: str, trade: dict[str, Any], now: float) -> Tick:
    """A ccxt trade as a tick, stamped with the venue's time but never after ``now``."""
    ts = min(float(trade["timestamp"]) / 1000.0, now)
    return Tick(symbol, float(trade["price"]), float(trade["amount"]), ts)


def _cache_size(streams: Any, caches: dict[str, Any], symbol: str) -> int:
    """How many trades ccxt.pro keeps for ``symbol``: its cache's size, else its option."""
    size = getattr(caches.get(symbol), "max_size", None)
    if isinstance(size, int) and size > 0:
        return size
    return int((streams.options or {}).get("tradesLimit", DEFAULT_TRADES_LIMIT))


def _watch_methods(streams: Any) -> bool:
    has = streams.has
    return bool(has.get("watchTradesForSymbols") or has.get("watchTrades"))


def _watch_symbol(streams: Any, symbol: str, params: dict[str, str]) -> WatchCall:
    # A copy per call (here and for every symbol): ccxt.pro's watch_trades writes into it.
    return lambda: streams.watch_trades(symbol, params=dict(params))


def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


def _tick_time(tick: Tick) -> float:
    return tick.ts
