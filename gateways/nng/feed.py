"""The NNG feed: ticks and bars that other processes push, into the market data path.

:class:`NngFeed` implements :class:`orchestrator.marketdata.feeds.Feed` for config kind
``nng``. A Pull0 socket listens at the configured address. The event loop
watches the socket's receive descriptor (NNG's ``recv_fd``) and, each time it
is readable, takes every message already there with a non-blocking ``recv``
(up to ``MAX_BATCH_TICKS`` ticks, then it lets other tasks run), decodes and
validates each with :class:`TickDecoder`, and hands each tick to the sink,
``MarketData.handle_tick``, the same entry as every other feed's.

Why not ``arecv`` or a thread: one ``arecv`` per message tops out near 5,000
messages per second; a thread doing blocking ``recv`` fights the loop for the
GIL on every message (each ``recv`` releases and retakes it) and needs a
hand-over to the loop, and measured slower than this design under load (see
bench/nng_bench.py and docs/nng.md). Here there is no thread and no hand-over,
and a busy loop reads more messages per wake-up.

The formats are in :mod:`gateways.client.nng_wire` and docs/nng.md. A message that is
not valid is dropped whole (a batch with one bad tick included), counted by
reason in :attr:`NngFeed.malformed` and logged at most once per reason every
ten seconds; it never stops the feed.

Nothing is lost between a sender and the strategies. NNG's Pull0 (1.11) keeps
one message per connected sender and reads the next one from that sender only
once the daemon took it; the rest wait in the sender (its NNG send queue, the
kernel's socket buffer), and a Push0 send waits when those are full. A busy
daemon slows senders down rather than dropping. The same rule bounds one
sender's single-tick rate by a round trip through NNG's threads per message:
batch ticks (or use several senders) for high rates.
Linux and macOS only (the loop must be able to watch the descriptor).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import orjson
import pynng
import structlog

from gateways.nng.publisher import DropLog, listen
from orchestrator.marketdata.config import NngFeedConfig
from orchestrator.marketdata.feeds import TickSink, ohlcv_ticks
from orchestrator.marketdata.ohlcv import EPOCH_MILLISECONDS_THRESHOLD
from orchestrator.model.clock import Clock, parse_iso_utc
from orchestrator.model.market import (
    RESOLUTION_SECONDS,
    Bar,
    Tick,
    bucket_start,
    unknown_resolution,
)

log = structlog.get_logger("gateways.nng.feed")

MAX_BATCH_TICKS = 2_000
"""Most ticks taken in one wake-up before the loop runs other tasks."""
NNG_SIZE_LIMIT_FACTOR = 16
"""NNG's own message size limit, in multiples of ``max_message_bytes``. Up to it, a too
large message is counted and dropped like any bad one; beyond it NNG closes the
sender's connection, losing what the sender had queued behind the message."""
MAX_PRICE = 1e12
"""No instrument trades above this; a larger price is a unit or encoding mistake."""
_TICK_FIELDS = frozenset({"type", "symbol", "price", "size", "timestamp"})
_TICK_REQUIRED = frozenset({"symbol", "price", "size"})
_TICKS_FIELDS = frozenset({"type", "ticks"})
_TICKS_REQUIRED = frozenset({"ticks"})
_BAR_FIELDS = frozenset(
    {"type", "symbol", "resolution", "timestamp", "open", "high", "low", "close", "volume"}
)
_BAR_REQUIRED = _BAR_FIELDS - {"type"}


class Malformed(ValueError):
    """A message that cannot enter: ``reason`` is a stable snake_case word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- decoding


class TickDecoder:
    """Turns one ingest message into ticks, or raises Malformed. Pure but for the clock."""

    def __init__(self, config: NngFeedConfig, clock: Clock) -> None:
        self._symbols = frozenset(config.symbols)
        self._max_ticks = config.max_ticks_per_message
        self._max_future = config.max_future_seconds
        self._clock = clock

    def decode(self, raw: bytes) -> list[Tick]:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Malformed("invalid_json", "the message is not JSON") from None
        if not isinstance(message, dict):
            raise Malformed("not_an_object", "the message is not a JSON object")
        kind = message.get("type")
        now = self._clock.now()
        if kind == "tick":
            _check_fields(message, _TICK_FIELDS, _TICK_REQUIRED)
            return [self._tick(message["symbol"], message["price"], message["size"],
                               message.get("timestamp"), now)]  # fmt: skip
        if kind == "ticks":
            _check_fields(message, _TICKS_FIELDS, _TICKS_REQUIRED)
            return self._ticks(message["ticks"], now)
        if kind == "bar":
            _check_fields(message, _BAR_FIELDS, _BAR_REQUIRED)
            return self._bar(message, now)
        raise Malformed("unknown_type", f"type {str(kind)[:40]!r} is not tick, ticks or bar")

    def _ticks(self, rows: Any, now: float) -> list[Tick]:
        if not isinstance(rows, list) or not rows:
            raise Malformed("bad_batch", "ticks must be a non-empty array")
        if len(rows) > self._max_ticks:
            raise Malformed("too_many_ticks", f"{len(rows)} ticks, at most {self._max_ticks}")
        ticks = []
        for row in rows:
            if not isinstance(row, list) or len(row) not in (3, 4):
                raise Malformed("bad_batch", "each tick is [symbol, price, size(, timestamp)]")
            ticks.append(self._tick(row[0], row[1], row[2], row[3] if len(row) == 4 else None, now))
        return ticks

    def _tick(self, symbol: Any, price: Any, size: Any, ts: Any, now: float) -> Tick:
        if not isinstance(symbol, str) or symbol not in self._symbols:
            raise Malformed("unknown_symbol", f"symbol {str(symbol)[:40]!r} is not configured")
        if not _is_number(price) or not 0 < price <= MAX_PRICE:
            raise Malformed("bad_price", f"price {str(price)[:40]} is not a number in (0, 1e12]")
        if not _is_number(size) or size < 0:
            raise Malformed("bad_size", f"size {str(size)[:40]} is not a number >= 0")
        stamp = now if ts is None else self._timestamp(ts, now)
        return Tick(symbol, float(price), float(size), stamp)

    def _timestamp(self, value: Any, now: float) -> float:
        if isinstance(value, str):
            ts = _parse_iso(value)
        elif _is_number(value) and 0 < value < EPOCH_MILLISECONDS_THRESHOLD:
            ts = float(value)
        else:
            raise Malformed(
                "bad_timestamp", f"timestamp {str(value)[:40]} is neither epoch seconds nor ISO"
            )
        if ts > now + self._max_future:
            raise Malformed(
                "future_timestamp", f"timestamp {ts} is {ts - now:.1f} s ahead of the clock"
            )
        return ts

    def _bar(self, message: dict[str, Any], now: float) -> list[Tick]:
        symbol, resolution = message["symbol"], message["resolution"]
        if not isinstance(symbol, str) or symbol not in self._symbols:
            raise Malformed("unknown_symbol", f"symbol {str(symbol)[:40]!r} is not configured")
        problem = unknown_resolution(resolution)
        if problem is not None or not isinstance(resolution, str):
            raise Malformed("bad_resolution", str(problem))
        prices = [message[name] for name in ("open", "high", "low", "close")]
        if not all(_is_number(p) and 0 < p <= MAX_PRICE for p in prices):
            raise Malformed("bad_price", "open, high, low and close must be numbers in (0, 1e12]")
        open_, high, low, close = (float(p) for p in prices)
        if not low <= min(open_, close) <= max(open_, close) <= high:
            raise Malformed("bad_bar", "need low <= open, close <= high")
        volume = message["volume"]
        if not _is_number(volume) or volume < 0:
            raise Malformed("bad_size", f"volume {str(volume)[:40]} is not a number >= 0")
        start = self._timestamp(message["timestamp"], now)
        seconds = RESOLUTION_SECONDS[resolution]
        if bucket_start(start, seconds) != start:
            raise Malformed("bad_bar", f"timestamp is not the start of a {resolution} bar")
        bar = Bar(symbol, resolution, start, open_, high, low, close, float(volume), 4)
        ticks = list(ohlcv_ticks(bar))
        if ticks[-1].ts > now + self._max_future:
            raise Malformed("future_timestamp", "the bar has not closed yet")
        return ticks


def _check_fields(
    message: dict[str, Any], allowed: frozenset[str], required: frozenset[str]
) -> None:
    keys = message.keys()
    if not keys >= required:
        raise Malformed("missing_field", f"missing {', '.join(sorted(required - keys))}")
    if not keys <= allowed:
        unknown = sorted(str(k)[:40] for k in keys - allowed)
        raise Malformed("unknown_field", f"unknown {', '.join(unknown[:5])}")


_NUMBER_TYPES = (int, float)
"""What ``orjson.loads`` makes of a JSON number (a bool is not one: it is its own type)."""


def _is_number(value: Any) -> bool:
    """A finite JSON number; by exact type (every message of a feed passes here), as
    orjson gives no other subclass of int or float than bool."""
    return type(value) in _NUMBER_TYPES and math.isfinite(value)


def _parse_iso(text: str) -> float:
    try:
        return parse_iso_utc(text)
    except ValueError:
        raise Malformed("bad_timestamp", f"timestamp {text[:40]!r} is not ISO-8601") from None


# ---------------------------------------------------------------- the feed


class NngFeed:
    """Market data pushed to a Pull0 socket (see the module docstring)."""

    def __init__(self, config: NngFeedConfig, address: str, clock: Clock) -> None:
        self.config = config
        self.address = address
        self.symbols = tuple(config.symbols)
        self.messages = 0
        """Messages received, valid or not."""
        self.ticks = 0
        """Ticks that passed validation and went to the sink."""
        self.wakeups = 0
        """Times the socket woke the loop (ticks / wakeups is the mean batch)."""
        self._decoder = TickDecoder(config, clock)
        self._drops = DropLog("nng_ingest_malformed", address=address)
        self._socket: Any = None
        self._reader: tuple[asyncio.AbstractEventLoop, int] | None = None

    @property
    def malformed(self) -> Counter[str]:
        """Dropped messages by reason."""
        return Counter(self._drops.counts)

    def open(self) -> None:
        """Listen at the address (raises NngBindError); ``run`` opens if not done yet."""
        if self._socket is not None:
            return
        socket = pynng.Pull0(recv_max_size=self.config.max_message_bytes * NNG_SIZE_LIMIT_FACTOR)
        try:
            listen(socket, "ingest", self.address)
        except Exception:
            socket.close()
            raise
        self._socket = socket
        log.info("nng_ingest_listening", address=self.address, symbols=len(self.symbols))

    def close(self) -> None:
        """Stop listening (``run`` does on its way out; the daemon does at stop)."""
        if self._reader is not None:
            loop, fd = self._reader
            self._reader = None
            loop.remove_reader(fd)
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.close()

    def history(self, until: float) -> list[Tick]:
        """Pushed data has no past the daemon could ask for."""
        return []

    async def run(self, sink: TickSink) -> None:
        """Receive until cancelled; a failure of the sink is raised here."""
        self.open()
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()
        socket = self._socket
        fd: int = socket.recv_fd
        loop.add_reader(fd, self._readable, socket, sink, failed)
        self._reader = (loop, fd)
        try:
            await failed
        finally:
            self.close()
            log.info(
                "nng_ingest_stopped", messages=self.messages, ticks=self.ticks,
                malformed=self._drops.total,
            )  # fmt: skip

    def _readable(self, socket: Any, sink: TickSink, failed: asyncio.Future[None]) -> None:
        """The socket has messages: decode what is there (up to MAX_BATCH_TICKS ticks,
        so other tasks run in between) and hand each tick to the sink."""
        self.wakeups += 1
        batch = self._take(socket)
        self.ticks += len(batch)
        try:
            for tick in batch:
                sink(tick)
        except Exception as exc:  # a broken invariant downstream: stop the feed loudly
            if not failed.done():
                failed.set_exception(exc)

    def _take(self, socket: Any) -> list[Tick]:
        batch: list[Tick] = []
        try:
            while len(batch) < MAX_BATCH_TICKS:
                raw = socket.recv(block=False)
                self.messages += 1
                if len(raw) > self.config.max_message_bytes:
                    self._drops.drop("oversized", f"{len(raw)} bytes")
                    continue
                try:
                    batch.extend(self._decoder.decode(raw))
                except Malformed as exc:
                    self._drops.drop(exc.reason, exc.detail)
        except (pynng.TryAgain, pynng.Closed):
            pass
        return batch
