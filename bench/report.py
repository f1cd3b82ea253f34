"""Printing for the benchmarks: aligned tables, percentiles, verdicts and their summary."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted, non-empty sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A title, then columns right-aligned under their headers."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(header), *(len(row[i]) for row in cells)) if cells else len(header)
        for i, header in enumerate(headers)
    ]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    """One line saying where the figures were measured."""
    cores = os.cpu_count() or 0
    load = os.getloadavg()[0]
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {cores} CPU cores, "
        f"load {load:.2f}"
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """One figure of a benchmark against its target: what each ``main()`` returns, a
    list of them, for the summary ``python -m bench`` prints after every benchmark ran."""

    name: str
    """What was measured, e.g. "backtest sma_crossover, 1,000,000 bars"."""
    figure: str
    """The figure, e.g. "5.3x backtesting.py"."""
    target: str
    """The target it is held to, e.g. ">= 5x, same trades"; "none" when there is none."""
    passed: bool | None
    """None when there is no target (the figure is for reading)."""

    def line(self) -> str:
        """The verdict as one line, as a benchmark prints it under its table."""
        return f"{self.name}: {self.figure} (target {self.target}): {_mark(self.passed)}"


def summary(results: Sequence[tuple[str, Sequence[Verdict] | None]]) -> str:
    """One table of every benchmark's verdicts; ``None``: the benchmark failed to run."""
    rows: list[tuple[str, str, str, str, str]] = []
    for bench, verdicts in results:
        if verdicts is None:
            rows.append((bench, "-", "did not finish", "-", "FAILED"))
        elif not verdicts:
            rows.append((bench, "-", "returned no verdict", "-", "-"))
        rows.extend((bench, v.name, v.figure, v.target, _mark(v.passed)) for v in verdicts or ())
    headers = ("benchmark", "measured", "figure", "target", "verdict")
    return _left_table("summary: every benchmark's figure against its target", headers, rows)


def _mark(passed: bool | None) -> str:
    return "-" if passed is None else "met" if passed else "MISSED"


def _left_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Like ``table``, but text reads better left-aligned."""
    widths = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)
    ]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)
