"""What a sweep optimises: one figure of the backtest report, and the constraints a
trial must meet to count.

The figure is any numeric statistic of :class:`orchestrator.backtest.statistics.Statistics`
(``sharpe_ratio``, ``sortino_ratio``, ``calmar_ratio``, ``return_pct``...; short names
``sharpe``, ``sortino``, ``calmar``, ``return`` are accepted), or
``return_over_max_drawdown``: the return over the depth of the deepest drawdown. A
trial whose figure has no value (NaN: a Sharpe ratio without trades) or that breaks
a constraint (fewer than ``min_trades`` trades, a drawdown deeper than
``max_drawdown_pct``) is *infeasible*: it is in the table, and never the best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal

from pydantic import Field, field_validator

from orchestrator.backtest.statistics import Statistics
from orchestrator.model.validation import FrozenModel

RETURN_OVER_MAX_DRAWDOWN = "return_over_max_drawdown"
ALIASES = {
    "sharpe": "sharpe_ratio",
    "sortino": "sortino_ratio",
    "calmar": "calmar_ratio",
    "return": "return_pct",
    "return_over_drawdown": RETURN_OVER_MAX_DRAWDOWN,
}
NON_FIGURES = frozenset({"start", "end"})
METRICS = frozenset(
    {field.name for field in fields(Statistics) if field.name not in NON_FIGURES}
    | {RETURN_OVER_MAX_DRAWDOWN}
)
"""Every figure a sweep can optimise."""


class Objective(FrozenModel):
    """The figure a sweep maximises (or minimises) and the constraints of a trial."""

    metric: str = Field(
        "sharpe_ratio",
        description="A statistic of the report (sharpe_ratio, sortino_ratio, calmar_ratio, "
        "return_pct, ...) or return_over_max_drawdown; sharpe, sortino, calmar, return "
        "are short names.",
    )
    direction: Literal["maximize", "minimize"] = Field(
        "maximize", description="Whether the best trial has the highest or lowest figure."
    )
    min_trades: int = Field(
        0, ge=0, le=1_000_000, description="A trial with fewer closed trades is infeasible."
    )
    max_drawdown_pct: float | None = Field(
        None,
        gt=0,
        le=100,
        description="A trial whose maximum drawdown is deeper than this percentage (25: a "
        "fall of more than 25 % from a peak) is infeasible.",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        metric = ALIASES.get(metric, metric)
        if metric not in METRICS:
            raise ValueError(
                f"unknown metric {metric!r}; use one of {', '.join(sorted(METRICS))} "
                f"(or {', '.join(ALIASES)})"
            )
        return metric

    def value(self, statistics: Mapping[str, Any]) -> float | None:
        """The figure in a trial's statistics (snake_case wire), None when it has none."""
        if self.metric == RETURN_OVER_MAX_DRAWDOWN:
            returned = _figure(statistics, "return_pct")
            drawdown = _figure(statistics, "max_drawdown_pct")
            if returned is None or drawdown is None or drawdown == 0:
                return None
            return returned / abs(drawdown)
        return _figure(statistics, self.metric)

    def violations(self, statistics: Mapping[str, Any]) -> list[str]:
        """Why a trial is infeasible, one sentence each (empty: it is feasible)."""
        found = []
        if self.value(statistics) is None:
            found.append(f"{self.metric} has no value")
        trades = statistics.get("trade_count") or 0
        if trades < self.min_trades:
            found.append(f"{trades} trades, fewer than min_trades {self.min_trades}")
        drawdown = _figure(statistics, "max_drawdown_pct")
        limit = self.max_drawdown_pct
        if limit is not None and drawdown is not None and abs(drawdown) > limit:
            found.append(f"max drawdown {drawdown:.2f} % is deeper than {limit:g} %")
        return found

    def constraint_values(self, statistics: Mapping[str, Any]) -> list[float]:
        """Optuna's constraints (a value <= 0 is met), for TPE's constrained search."""
        trades = float(statistics.get("trade_count") or 0)
        values = [float(self.min_trades) - trades]
        drawdown = _figure(statistics, "max_drawdown_pct")
        if self.max_drawdown_pct is not None:
            depth = abs(drawdown) if drawdown is not None else 100.0
            values.append(depth - self.max_drawdown_pct)
        return values

    def better(self, value: float, than: float | None) -> bool:
        if than is None:
            return True
        return value > than if self.direction == "maximize" else value < than


def _figure(statistics: Mapping[str, Any], name: str) -> float | None:
    """A finite number of the statistics, else None (NaN is None on the wire)."""
    value = statistics.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
