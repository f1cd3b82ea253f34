"""A small helper for other processes: push market data to the daemon, follow its events.

Needs only ``pynng`` and ``orjson`` (it does not load the daemon). The formats
are in :mod:`gateways.client.nng_wire` and docs/nng.md.

Push ticks and bars to a daemon whose feed is ``kind = "nng"``::

    from gateways.client.nng_client import TickPublisher

    with TickPublisher("ipc:///run/user/1000/orchestrator/ingest.ipc") as ticks:
        ticks.send_tick("AAPL", 190.25, 100)                 # stamped on arrival
        ticks.send_tick("AAPL", 190.30, 50, timestamp=1705314600.5)
        ticks.send_ticks([("AAPL", 190.3, 10), ("MSFT", 420.1, 5, "2024-01-15T10:30:00Z")])
        ticks.send_bar("MSFT", "1m", "2024-01-15T10:29:00Z", 420.0, 421.0, 419.5, 420.5, 1200)

A send waits while the daemon is busy or not there yet (Push0 applies back
pressure rather than dropping) and raises TimeoutError after ``timeout``
seconds. Batches (``send_ticks``) are far cheaper per tick than single ticks.

Follow the daemon's events, with loss and restart detection::

    from gateways.client.nng_client import EventSubscriber

    with EventSubscriber("ipc:///run/user/1000/orchestrator/events.ipc",
                         topics=["strategy.", "risk."]) as events:
        for event in events:
            if event.restarted:
                ...  # a new daemon (epoch): re-read whatever state you keep
            if event.missed:
                print(f"lost {event.missed} message(s) before seq {event.seq}")
            print(event.topic, event.type, event.data)

NNG pub/sub drops messages for a subscriber that falls behind, by design.
Every published event carries ``seq`` (per publisher), ``topicSeq`` (per
topic) and ``epoch`` (the publisher's start); :class:`EventSubscriber` uses
``seq`` when it follows every topic and ``topicSeq`` of each topic when it
follows some, so that events it filtered out are never mistaken for losses.
What it cannot see: losses after the last message it received, and losses of
a topic before the first message of that topic it received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pynng

from gateways.client.nng_wire import (
    FrameError,
    TickRow,
    TimestampIn,
    bar_message,
    split_event_frame,
    tick_message,
    ticks_message,
)

DEFAULT_BATCH = 1_000
"""Ticks per message that ``send_ticks`` puts at most (the daemon's default limit is 10,000)."""


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, round(seconds * 1000))


class TickPublisher:
    """Pushes ticks and bars to the daemon's ingest address (a Push0 socket)."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float | None = 10.0,
        batch: int = DEFAULT_BATCH,
        send_buffer: int | None = None,
    ) -> None:
        self.address = address
        self.batch = batch
        self.sent = 0
        """Messages handed to NNG (on their way to the daemon; not an acknowledgement)."""
        # A send buffer (messages queued in this process) makes sends a little faster,
        # but closing the socket discards whatever is still in it.
        options = {} if send_buffer is None else {"send_buffer_size": send_buffer}
        self._socket: Any = pynng.Push0(send_timeout=_ms(timeout) or -1, **options)
        self._socket.dial(address, block=False)  # keeps retrying until the daemon listens

    def send_tick(
        self, symbol: str, price: float, size: float, timestamp: TimestampIn = None
    ) -> None:
        self._send(tick_message(symbol, price, size, timestamp))

    def send_ticks(self, rows: Iterable[TickRow]) -> None:
        """``(symbol, price, size)`` or ``(symbol, price, size, timestamp)`` rows, sent in
        messages of at most ``batch`` ticks."""
        chunk: list[TickRow] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.batch:
                self._send(ticks_message(chunk))
                chunk = []
        if chunk:
            self._send(ticks_message(chunk))

    def send_bar(
        self,
        symbol: str,
        resolution: str,
        timestamp: TimestampIn,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> None:
        """A closed bar starting at ``timestamp``; it enters as four ticks."""
        self._send(bar_message(symbol, resolution, timestamp, open, high, low, close, volume))

    def send_raw(self, message: bytes) -> None:
        """Any bytes, as they are (for tests of what the daemon refuses)."""
        self._send(message)

    def _send(self, message: bytes) -> None:
        try:
            self._socket.send(message)
        except pynng.Timeout:
            raise TimeoutError(f"no room at {self.address}: is the daemon running?") from None
        self.sent += 1

    def close(self) -> None:
        """Close the socket. Messages NNG has not written yet are discarded (NNG does not
        linger): with ``send_buffer`` set, give the daemon time to take them first."""
        self._socket.close()

    def __enter__(self) -> TickPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One published event, and what the subscriber learnt from its numbers."""

    topic: str
    type: str
    timestamp: str
    seq: int
    topic_seq: int
    epoch: int
    data: Any
    missed: int = 0
    """Messages lost right before this one (0 when none were). On the first message
    after a restart: the new publisher's messages sent before it."""
    restarted: bool = False
    """The publisher restarted (a new epoch) since the previous message received."""


class LossTracker:
    """Finds gaps and restarts in the numbers of received events. No socket here."""

    def __init__(self, per_topic: bool) -> None:
        self.per_topic = per_topic
        self.missed = 0
        self.gaps = 0
        self.restarts = 0
        self._epoch: int | None = None
        self._last: dict[str, int] = {}
        self._numbered_from_one = False
        """After a restart the numbers start again at 1, so anything before the first
        message received is a loss; before the first message ever, it was history."""

    def see(self, topic: str, seq: int, topic_seq: int, epoch: int) -> tuple[int, bool]:
        """(messages missed before this one, whether the publisher restarted)."""
        restarted = self._epoch is not None and epoch != self._epoch
        if restarted or self._epoch is None:
            self._epoch = epoch
            self._last.clear()
            self._numbered_from_one = restarted
        self.restarts += restarted
        key, number = (topic, topic_seq) if self.per_topic else ("", seq)
        last = self._last.get(key, 0 if self._numbered_from_one else None)
        self._last[key] = number if last is None else max(last, number)
        missed = 0 if last is None else max(0, number - last - 1)
        if missed:
            self.missed += missed
            self.gaps += 1
        return missed, restarted


class EventSubscriber:
    """Follows the daemon's events (a Sub0 socket), numbering losses and restarts.

    ``topics`` are prefixes (``"strategy."``, ``"risk.stop_loss"``); none means
    every event. ``timeout`` (seconds) bounds each wait: iteration ends when it
    passes, ``recv`` raises TimeoutError; None waits forever.
    """

    def __init__(
        self,
        address: str,
        topics: Iterable[str] = (),
        *,
        timeout: float | None = None,
        recv_buffer: int = 8192,
    ) -> None:
        self.address = address
        self.topics = tuple(topics)
        self.malformed = 0
        self.tracker = LossTracker(per_topic=bool(self.topics) and "" not in self.topics)
        self._socket: Any = pynng.Sub0(recv_buffer_size=recv_buffer)
        if timeout is not None:
            self._socket.recv_timeout = _ms(timeout)
        for topic in self.topics or ("",):
            self._socket.subscribe(topic.encode())
        self._socket.dial(address, block=False)  # keeps retrying until the daemon listens

    @property
    def missed(self) -> int:
        """Messages lost so far, as far as the numbers tell."""
        return self.tracker.missed

    @property
    def restarts(self) -> int:
        return self.tracker.restarts

    def recv(self) -> ReceivedEvent:
        """The next event; raises TimeoutError when ``timeout`` passes first."""
        while True:
            try:
                frame = self._socket.recv()
            except pynng.Timeout:
                raise TimeoutError(f"no event from {self.address} in time") from None
            event = self._decode(frame)
            if event is not None:
                return event

    async def arecv(self) -> ReceivedEvent:
        """``recv`` for asyncio (about 5,000 messages per second at most: prefer a thread
        with ``recv`` for heavy streams such as quotes)."""
        while True:
            try:
                frame = await self._socket.arecv()
            except pynng.Timeout:
                raise TimeoutError(f"no event from {self.address} in time") from None
            event = self._decode(frame)
            if event is not None:
                return event

    def _decode(self, frame: bytes) -> ReceivedEvent | None:
        try:
            topic, envelope = split_event_frame(frame)
            seq, topic_seq, epoch = envelope["seq"], envelope["topicSeq"], envelope["epoch"]
            kind, timestamp, data = envelope["type"], envelope["timestamp"], envelope["data"]
        except (FrameError, KeyError):
            self.malformed += 1
            return None
        missed, restarted = self.tracker.see(topic, seq, topic_seq, epoch)
        return ReceivedEvent(topic, kind, timestamp, seq, topic_seq, epoch, data, missed, restarted)

    def __iter__(self) -> Iterator[ReceivedEvent]:
        while True:
            try:
                yield self.recv()
            except TimeoutError:
                return

    async def __aiter__(self) -> AsyncIterator[ReceivedEvent]:
        while True:
            try:
                yield await self.arecv()
            except TimeoutError:
                return

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
