"""The NNG publisher: every bus event, encoded once, to other processes.

:class:`NngPublisher` is a fan-out sink of every topic. For each event it
takes the next ``seq`` (and the next ``topicSeq`` of the event's topic) and the
clock's time, then queues the event; one task drains the queue, encodes each
event once (``<topic> SP <JSON envelope>``, see :mod:`gateways.client.nng_wire`;
the message is the one the WebSocket servers send, its data's JSON built once for
all of them, :class:`gateways.api.outbound.Outgoing`) and hands it to a Pub0
socket, which copies it to every subscriber.

Limits, and where a message can be lost (a subscriber sees each loss as a jump
in ``seq`` or ``topicSeq``, because numbers are taken before the queue):

- the queue holds ``nng.queue_size`` events. It fills only if the loop is
  busier than the events are many; when full, an event is dropped and
  counted (``dropped``) rather than block the bus, which runs on the hot path
  of every tick;
- NNG keeps ``nng.send_buffer`` messages per subscriber; pub/sub never waits
  for a reader, so a subscriber further behind loses messages;
- messages in NNG's buffers when the daemon stops may not be delivered; the
  subscriber sees the next daemon's new ``epoch``.

While no subscriber is connected the publisher is deaf on the fan-out it follows
(:meth:`NngPublisher.follow`): an idle daemon's every tick costs it nothing. When
the first subscriber connects it takes the numbers of what the fan-out handed out
meanwhile (``Fanout.published``), so ``seq`` and ``topicSeq`` still count every
event of the run: a subscriber of a restarted daemon learns what it missed.

The drain task sends with a non-blocking ``send`` rather than ``asend``: a
Pub0 send never waits for a peer (it queues or drops per subscriber), and one
``asend`` per message costs a round trip through NNG's thread and the loop,
which measured about 9,000 messages per second against about 150,000 for a
non-blocking send (bench/nng_bench.py). The task still yields to the loop
every ``YIELD_EVERY`` messages, so a burst never starves the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pynng
import structlog

from gateways.api.outbound import Outgoing
from gateways.api.outbound import nng_message as nng_message  # what NNG publishes of an event
from gateways.client.nng_wire import event_frame, topic_prefix
from gateways.config import NngBusConfig
from gateways.fanout import Fanout
from orchestrator.model.clock import Clock, iso_utc
from orchestrator.model.events import Topic

log = structlog.get_logger("gateways.nng.publisher")

YIELD_EVERY = 256
"""Messages the drain task sends before it lets other tasks run."""
DROP_LOG_INTERVAL = 10.0
"""Seconds between two log lines about the same kind of dropped message."""

_Queued = tuple[int, int, float, Outgoing]
"""(seq, topicSeq, time, event) of an event waiting for the socket."""


class NngBindError(Exception):
    """An NNG socket cannot listen at its configured address."""

    def __init__(self, role: str, address: str, reason: str) -> None:
        super().__init__(f"NNG {role} cannot listen at {address}: {reason}")
        self.role = role
        self.address = address
        self.reason = reason


def listen(socket: Any, role: str, address: str) -> None:
    """Listen at ``address``; an ipc:// socket's missing directory is made (mode 0700)."""
    if address.startswith("ipc://"):
        try:
            Path(address.removeprefix("ipc://")).parent.mkdir(
                mode=0o700, parents=True, exist_ok=True
            )
        except OSError as exc:
            raise NngBindError(role, address, exc.strerror or str(exc)) from exc
    try:
        socket.listen(address)
    except pynng.NNGException as exc:
        raise NngBindError(role, address, str(exc)) from exc


class DropLog:
    """Counts dropped messages by reason and logs each reason at most every interval."""

    def __init__(self, event: str, interval: float = DROP_LOG_INTERVAL, **context: Any) -> None:
        self.counts: dict[str, int] = {}
        self._event = event
        self._interval = interval
        self._context = context
        self._unlogged: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}

    def drop(self, reason: str, detail: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -self._interval) >= self._interval:
            log.warning(
                self._event,
                reason=reason,
                dropped=self._unlogged.pop(reason),
                total=self.counts[reason],
                detail=detail[:200],
                **self._context,
            )
            self._last_logged[reason] = now

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class NngPublisher:
    """Publishes every bus event on an NNG Pub0 socket (see the module docstring)."""

    def __init__(self, config: NngBusConfig, address: str, clock: Clock, epoch: int) -> None:
        self.address = address
        self.epoch = epoch
        self.seq = 0
        self.sent = 0
        self.dropped = 0
        """Events dropped because the queue was full (their seq is never published)."""
        self.dropped_by_topic: Counter[str] = Counter()
        self.send_failed = 0
        self.encode_failed = 0
        self.unheard = 0
        """Events numbered while no subscriber was connected, so never encoded."""
        self._subscribers = 0
        self._stamp_ms, self._stamp = -1, ""
        self._config = config
        self._clock = clock
        self._topic_seq: dict[str, int] = {}
        self._prefixes: dict[str, bytes] = {str(topic): topic_prefix(topic) for topic in Topic}
        self._queue: deque[_Queued] = deque()
        self._wakeup = asyncio.Event()
        self._socket: Any = None
        self._task: asyncio.Task[None] | None = None
        self._drops = DropLog("nng_events_dropped", address=address)
        self._fanout: Fanout | None = None
        self._hearing = True
        self._counted: dict[Topic, int] = {}
        """The fan-out's counts when this went deaf there."""
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ bus side

    def publish(self, outgoing: Outgoing) -> None:
        """Fan-out sink: number the event and queue it; never blocks, never raises.

        With no subscriber connected the event is numbered and nothing more: nobody
        could receive it, and a daemon nobody listens to should not pay for NNG on
        every tick. A subscriber's first message is its starting point, so the
        numbers it never saw are not counted as lost.
        """
        self.seq += 1
        topic = str(outgoing.event.topic)
        topic_seq = self._topic_seq.get(topic, 0) + 1
        self._topic_seq[topic] = topic_seq
        if not self._subscribers:
            self.unheard += 1
            return
        if len(self._queue) >= self._config.queue_size:
            self.dropped += 1
            self.dropped_by_topic[topic] += 1
            self._drops.drop("queue_full", topic)
            return
        self._queue.append((self.seq, topic_seq, self._clock.now(), outgoing))
        self._wakeup.set()

    def follow(self, fanout: Fanout) -> None:
        """Take ``fanout``'s events while a subscriber is connected (see the module
        docstring); deaf there until the first one is."""
        self._fanout = fanout
        fanout.add(self.publish)
        self._set_hearing(False)

    def _follow_subscribers(self) -> None:
        """On the loop, after a subscriber came or went."""
        self._set_hearing(self._subscribers > 0)

    def _set_hearing(self, hearing: bool) -> None:
        fanout = self._fanout
        if fanout is None or hearing == self._hearing:
            return
        if hearing:
            self._number_unheard(fanout.published)
        else:
            self._counted = dict(fanout.published)
        self._hearing = hearing
        fanout.hear_all(self.publish, hearing)

    def _number_unheard(self, published: dict[Topic, int]) -> None:
        """Give the events published while deaf the numbers they would have taken."""
        unheard = 0
        for topic, count in published.items():
            missed = count - self._counted.get(topic, 0)
            if missed:
                key = str(topic)
                self._topic_seq[key] = self._topic_seq.get(key, 0) + missed
                unheard += missed
        self.seq += unheard
        self.unheard += unheard

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen at the address (raises NngBindError) and start the drain task."""
        self._loop = asyncio.get_running_loop()
        socket = pynng.Pub0(send_buffer_size=self._config.send_buffer)
        socket.add_post_pipe_connect_cb(self._pipe_added)
        socket.add_post_pipe_remove_cb(self._pipe_removed)
        try:
            listen(socket, "publisher", self.address)
        except NngBindError:
            socket.close()
            raise
        self._socket = socket
        self._task = asyncio.create_task(self._drain(), name="nng-publisher")
        self._task.add_done_callback(self._on_task_done)
        log.info("nng_publisher_started", address=self.address, epoch=self.epoch)

    async def close(self) -> None:
        """Send what is queued (without waiting for anyone), then close the socket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._socket is None:
            return
        self._send_queued()
        self._socket.close()
        self._socket = None
        self._subscribers = 0
        log.info("nng_publisher_stopped", address=self.address, **self.counters())

    @property
    def subscribers(self) -> int:
        """Subscribers connected right now."""
        return self._subscribers

    def _pipe_added(self, pipe: Any) -> None:  # on an NNG thread: one int, under the GIL
        self._subscribers += 1
        self._tell_loop()

    def _pipe_removed(self, pipe: Any) -> None:
        self._subscribers = max(0, self._subscribers - 1)
        self._tell_loop()

    def _tell_loop(self) -> None:
        loop = self._loop
        if loop is None or self._fanout is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to tell
            loop.call_soon_threadsafe(self._follow_subscribers)

    def counters(self) -> dict[str, int]:
        return {
            "seq": self.seq,
            "sent": self.sent,
            "dropped": self.dropped,
            "send_failed": self.send_failed,
            "encode_failed": self.encode_failed,
            "unheard": self.unheard,
            "queued": len(self._queue),
        }

    # ------------------------------------------------------------ drain side

    async def _drain(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                self._send_queued(limit=YIELD_EVERY)
                await asyncio.sleep(0)

    def _send_queued(self, limit: int | None = None) -> None:
        sent = 0
        while self._queue and (limit is None or sent < limit):
            self._send(*self._queue.popleft())
            sent += 1

    def _send(self, seq: int, topic_seq: int, ts: float, outgoing: Outgoing) -> None:
        topic = str(outgoing.event.topic)
        try:
            kind, data = outgoing.nng_message
            prefix = self._prefixes.get(topic) or topic_prefix(topic)
            envelope = {
                "type": kind,
                "timestamp": self._iso(ts),
                "seq": seq,
                "epoch": self.epoch,
                "topicSeq": topic_seq,
                "data": data,
            }
            frame = event_frame(prefix, envelope)
        except Exception as exc:  # one bad event must not stop the others
            self.encode_failed += 1
            self._drops.drop("encode_failed", f"{topic}: {exc!r}")
            return
        try:
            self._socket.send(frame, block=False)
        except pynng.NNGException as exc:
            self.send_failed += 1
            self._drops.drop("send_failed", f"{topic}: {exc}")
            return
        self.sent += 1

    def _iso(self, ts: float) -> str:
        """iso_utc, formatted once per millisecond (a burst shares its timestamps)."""
        millisecond = int(ts * 1000)
        if millisecond != self._stamp_ms:
            self._stamp_ms, self._stamp = millisecond, iso_utc(ts)
        return self._stamp

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("nng_publisher_failed", address=self.address, exc_info=task.exception())
