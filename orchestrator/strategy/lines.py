"""Strategies' indicator lines: the values a strategy exposes (``Strategy.indicators``)
after each bar, and the recent points of each running strategy per symbol, which a
chart draws on load (``get_indicators``) before the live ``strategy_indicators``
messages go on."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from orchestrator.model.records import record

LineValues = tuple[tuple[str, float], ...]
"""Each line's name and value, in the strategy's order."""


@record
class IndicatorPoint:
    start: float
    """The start of the bar the values were computed on."""
    values: LineValues


def line_values(values: Mapping[str, float]) -> LineValues:
    """The lines of ``values`` that a chart can draw: named, finite numbers."""
    return tuple(
        (str(name), float(value))
        for name, value in values.items()
        if isinstance(value, int | float) and math.isfinite(value)
    )


class IndicatorLines:
    """The last ``keep`` points per (strategy, symbol), oldest first."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._points: dict[tuple[str, str], deque[IndicatorPoint]] = {}
        self._resolutions: dict[str, str] = {}

    def add(self, strategy_id: str, symbol: str, resolution: str, point: IndicatorPoint) -> None:
        if self._keep == 0:
            return
        points = self._points.get((strategy_id, symbol))
        if points is None:
            points = self._points[(strategy_id, symbol)] = deque(maxlen=self._keep)
        points.append(point)
        self._resolutions[strategy_id] = resolution

    def recent(self, strategy_id: str, symbol: str, limit: int) -> list[IndicatorPoint]:
        """The last ``limit`` points of the strategy in ``symbol``, oldest first."""
        points = self._points.get((strategy_id, symbol))
        if not points or limit <= 0:
            return []
        return list(points)[-limit:]

    def resolution(self, strategy_id: str) -> str | None:
        """The resolution of the bars the strategy's points were computed on."""
        return self._resolutions.get(strategy_id)

    def forget(self, strategy_id: str) -> None:
        """Drop a strategy's points (it stopped, or starts afresh)."""
        for key in [key for key in self._points if key[0] == strategy_id]:
            del self._points[key]
        self._resolutions.pop(strategy_id, None)
