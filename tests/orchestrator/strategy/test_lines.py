"""IndicatorLines keeps the recent points of each strategy's lines, bounded."""

from __future__ import annotations

import math

from orchestrator.strategy.lines import IndicatorLines, IndicatorPoint, line_values


def point(start: float, value: float) -> IndicatorPoint:
    return IndicatorPoint(start, (("SMA 3", value),))


def test_keeps_the_last_points_per_strategy_and_symbol() -> None:
    lines = IndicatorLines(keep=3)
    for n in range(5):
        lines.add("s1", "AAPL", "1s", point(float(n), 100.0 + n))
    lines.add("s1", "MSFT", "1s", point(0.0, 200.0))
    assert [p.start for p in lines.recent("s1", "AAPL", 10)] == [2.0, 3.0, 4.0]
    assert [p.start for p in lines.recent("s1", "AAPL", 2)] == [3.0, 4.0]
    assert lines.recent("s1", "GOOG", 10) == [] and lines.recent("s2", "AAPL", 10) == []
    assert lines.resolution("s1") == "1s"
    lines.forget("s1")
    assert lines.recent("s1", "AAPL", 10) == [] and lines.recent("s1", "MSFT", 10) == []
    assert lines.resolution("s1") is None


def test_keeps_nothing_when_told_to() -> None:
    lines = IndicatorLines(keep=0)
    lines.add("s1", "AAPL", "1s", point(0.0, 1.0))
    assert lines.recent("s1", "AAPL", 10) == []


def test_only_finite_numbers_are_drawn() -> None:
    values = {"a": 1.5, "b": math.nan, "c": math.inf, "d": 2}
    assert line_values(values) == (("a", 1.5), ("d", 2.0))
