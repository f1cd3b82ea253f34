"""Clocks: the system clock for the daemon, a manual one for deterministic tests."""

from __future__ import annotations

import functools
import math
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, now: float) -> None:
        self._now = now


DAY_SECONDS = 86_400


def parse_iso_utc(text: str) -> float:
    """Epoch seconds of an ISO-8601 moment, UTC where it names no zone; ValueError if
    ``text`` is not ISO-8601."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_utc(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a trailing ``Z``, as every message carries.

    Four of these go into every traded tick's messages: the text up to the second is
    formatted once a second (``strftime`` is most of the cost), and the milliseconds
    are those of ``datetime.fromtimestamp(ts)``, whose rounding this repeats: the
    fraction to the nearest microsecond, ties to even."""
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    return f"{_iso_second(int(whole))}{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=64)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
