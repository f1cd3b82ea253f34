"""Each connection's budget of messages it may send, on every path of every server.

A connection may send ``commands_per_second`` messages, with bursts of
``command_burst``; one over budget is dropped and answered ``rate_limited``;
``flood_close_after`` of them in a row close the connection with 1008, so that
one client cannot keep the event loop busy answering it while others wait for
their quotes.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from gateways.config import ConnectionConfig


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Admission(Enum):
    SERVE = "serve"
    """Within budget: handle the message."""
    REFUSE = "refuse"
    """Over budget: drop it and answer ``rate_limited``."""
    CLOSE = "close"
    """The flood limit is reached now: close the connection with 1008."""
    IGNORE = "ignore"
    """Over budget and already closing: drop it silently."""


class MessageBudget:
    """One connection's budget; ``log`` is its bound logger (one line per flood)."""

    def __init__(self, limits: ConnectionConfig, log: Any) -> None:
        self._bucket = TokenBucket(limits.commands_per_second, limits.command_burst)
        self._flood_after = limits.flood_close_after
        self._rate = limits.commands_per_second
        self._log = log
        self.refused_in_a_row = 0

    def admit(self) -> Admission:
        if self._bucket.take():
            self.refused_in_a_row = 0
            return Admission.SERVE
        self.refused_in_a_row += 1
        if self.refused_in_a_row == 1:
            self._log.warning("rate_limited", limit=self._rate)
        if self.refused_in_a_row < self._flood_after:
            return Admission.REFUSE
        if self.refused_in_a_row == self._flood_after:
            self._log.warning("flood_closed", in_a_row=self.refused_in_a_row)
            return Admission.CLOSE
        return Admission.IGNORE

    def refusal(self) -> str:
        """What a dropped message is answered."""
        return f"more than {self._rate:g} commands per second; this one was dropped, slow down"
