"""A server's broadcast stream: sequence numbers and a bounded replay window.

Every broadcast message gets the next ``seq`` of its server and the run's
``epoch``. The last ``window`` messages are kept with their channel, so that a
client that reconnects can ask for what it missed, in order, exactly once.
A committed event's message also carries its journal ``position``, which outlives
the run: after a restart the journal replays what a client missed
(:class:`Archive`, ``gateways/api/journal_replay.py``). Pure: no sockets here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.model.events import Topic


@dataclass(frozen=True, slots=True)
class Logged:
    seq: int
    channel: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Resync:
    """Why a client cannot resume and must take a fresh snapshot instead."""

    reason: str


@dataclass(frozen=True, slots=True)
class Replayed:
    """A committed message read back from the journal: its position, topic and message."""

    position: int
    topic: Topic
    message: tuple[str, Any]


class Archive(Protocol):
    """The journal, read back by stream position (``JournalReplay``)."""

    async def replay(
        self, epoch: int, after: int, upto: int, topics: Collection[Topic], limit: int
    ) -> list[Replayed] | Resync:
        """The messages of ``topics`` after position ``after`` up to ``upto`` for a
        client of the run ``epoch``, or why not."""


def right_sized(frame: bytes) -> bytes:
    """``frame`` in an allocation of its own size (to keep; not worth it to send)."""
    return memoryview(frame).tobytes()


class StreamLog:
    def __init__(self, epoch: int, window: int) -> None:
        self.epoch = epoch
        self.seq = 0
        self._window: deque[Logged] = deque(maxlen=window) if window > 0 else deque(maxlen=0)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, seq: int, channel: str, frame: bytes) -> None:
        # A copy the size of the message: orjson's bytes keep the buffer it grew
        # (about 4 KB whatever the message), twelve times what a status message needs.
        self._window.append(Logged(seq, channel, right_sized(frame)))

    @property
    def oldest(self) -> int:
        """The oldest seq still held (``seq + 1`` when nothing is held)."""
        return self._window[0].seq if self._window else self.seq + 1

    def replay(self, epoch: int, last_seq: int, channels: Collection[str]) -> list[bytes] | Resync:
        """Frames after ``last_seq`` in ``channels``, or why that is impossible."""
        if epoch != self.epoch:
            return Resync("the daemon restarted since your last message (epoch changed)")
        if last_seq > self.seq:
            return Resync(f"lastSeq {last_seq} is ahead of this stream (at {self.seq})")
        if last_seq < self.oldest - 1:
            return Resync(
                f"messages after seq {last_seq} are no longer held (oldest is {self.oldest})"
            )
        return [
            item.frame for item in self._window if item.seq > last_seq and item.channel in channels
        ]
