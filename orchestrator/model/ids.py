"""Ids of orders and trades: one counter per prefix, resumed after a restart."""

from __future__ import annotations

from collections.abc import Callable, Mapping

IdFactory = Callable[[str], str]
"""Given a prefix such as ``"trade"``, returns a fresh id such as ``"trade_000001"``."""


class SequentialIds:
    """Deterministic ids, counted per prefix: ``trade_000001``, ``trade_000002``..."""

    def __init__(self, start: Mapping[str, int] | None = None) -> None:
        # After a restart the journal says where each prefix stopped, so that
        # no id is ever given twice.
        self._counters: dict[str, int] = dict(start or {})

    def __call__(self, prefix: str) -> str:
        number = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = number
        return f"{prefix}_{number:06d}"
