"""What a sweep searches and what it finds: the :class:`SweepSpec` a user submits (the
backtest, the space, the objective, the method, the walk-forward), the rows of its
trials table, the heatmap, the ETA.

The search itself, over an Optuna study, is :mod:`orchestrator.sweep.study`: imported
when a sweep runs, not with the daemon (this module imports no Optuna).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from orchestrator.backtest.engine import BacktestSpec
from orchestrator.model.validation import FrozenModel
from orchestrator.strategy.loader import StrategyLoadError, load_strategy_class
from orchestrator.sweep.objective import Objective
from orchestrator.sweep.space import InvalidSpace, ParameterRange, SearchSpace, search_space
from orchestrator.sweep.trial import WALK_FORWARD_ONE_SYMBOL, TrialOutcome
from orchestrator.sweep.walk_forward import WalkForwardSpec

Method = Literal["grid", "random", "tpe"]
HEADLINE = (
    "return_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown_pct",
    "win_rate_pct",
    "trade_count",
)
"""The statistics each row of the trials table shows (the best trial has them all)."""


class SweepSpec(FrozenModel):
    """Everything a sweep needs; stored beside its study, so a restart resumes it."""

    backtest: BacktestSpec = Field(
        description="The backtest every trial runs: strategy (its params the base of every "
        "trial's), source, symbol, limits."
    )
    space: dict[str, ParameterRange] = Field(
        min_length=1, max_length=16, description="The parameters varied and their ranges."
    )
    objective: Objective = Field(Objective(), description="The figure and the constraints.")
    method: Method = Field("grid", description="grid, random or tpe.")
    trials: int | None = Field(
        None,
        ge=1,
        le=20_000,
        description="Trials of a random or TPE search (per window in a walk-forward); a "
        "grid runs each of its points once.",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the random and TPE samplers.")
    heatmap: tuple[str, str] | None = Field(
        None, description="The two parameters of the heatmap; None: the first two varied."
    )
    walk_forward: WalkForwardSpec | None = Field(
        None, description="Optimise on rolling windows and judge out of sample."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        if self.method != "grid" and self.trials is None:
            raise ValueError(f"a {self.method} search needs trials (how many to run)")
        if self.walk_forward is not None and len(self.backtest.traded_symbols) > 1:
            raise ValueError(WALK_FORWARD_ONE_SYMBOL)
        if self.heatmap is not None:
            unknown = [name for name in self.heatmap if name not in self.space]
            if unknown or self.heatmap[0] == self.heatmap[1]:
                raise ValueError("heatmap names two different parameters of the space")
        return self

    @property
    def heatmap_axes(self) -> tuple[str, str] | None:
        if self.heatmap is not None:
            return self.heatmap
        names = list(self.space)
        return (names[0], names[1]) if len(names) >= 2 else None

    def search_space(self) -> SearchSpace:
        """The space over the strategy's params model; InvalidSpace says what to fix."""
        try:
            strategy_cls = load_strategy_class(self.backtest.strategy.kind)
        except StrategyLoadError as exc:
            raise InvalidSpace(f"strategy {self.backtest.strategy.id}: {exc}") from exc
        return search_space(strategy_cls.params_model, self.space)

    def trials_per_search(self, space: SearchSpace) -> int:
        """Trials of one search (one window): the grid's points or ``trials``."""
        if self.method == "grid":
            return len(space.grid_points())
        assert self.trials is not None
        return self.trials


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One row of the trials table."""

    number: int
    params: dict[str, Any]
    outcome: TrialOutcome
    value: float | None
    violations: tuple[str, ...]

    @property
    def state(self) -> str:
        return "failed" if self.outcome.error is not None else "complete"

    @property
    def feasible(self) -> bool:
        return self.outcome.error is None and not self.violations

    def to_wire(self) -> dict[str, Any]:
        statistics = self.outcome.statistics
        return {
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "value": self.value,
            "feasible": self.feasible,
            "violations": list(self.violations),
            "error": self.outcome.error,
            "total_trades": self.outcome.total_trades,
            "trades_digest": self.outcome.trades_digest,
            **{name: statistics.get(name) for name in HEADLINE},
        }


def params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


# --------------------------------------------------------------------------- results


def heatmap(
    rows: Sequence[TrialRow], axes: tuple[str, str] | None, objective: Objective
) -> dict[str, Any] | None:
    """The best feasible value at each (x, y) of two parameters, over the others: what
    backtesting.py's ``plot_heatmaps`` shows. None where no feasible trial is."""
    if axes is None:
        return None
    x_name, y_name = axes
    cells: dict[tuple[Any, Any], float] = {}
    for row in rows:
        if not row.feasible or row.value is None:
            continue
        cell = (row.params.get(x_name), row.params.get(y_name))
        if cell not in cells or objective.better(row.value, cells[cell]):
            cells[cell] = row.value
    xs = sorted({row.params.get(x_name) for row in rows}, key=_sort_key)
    ys = sorted({row.params.get(y_name) for row in rows}, key=_sort_key)
    return {
        "x": x_name,
        "y": y_name,
        "x_values": xs,
        "y_values": ys,
        "values": [[cells.get((x, y)) for x in xs] for y in ys],
        "metric": objective.metric,
    }


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def eta_seconds(started: float, now: float, computed: int, remaining: int) -> float | None:
    """Remaining trials at this run's pace so far; None before the first trial."""
    if computed == 0:
        return None
    return max(now - started, 0.0) / computed * remaining


__all__ = [
    "HEADLINE",
    "Method",
    "SweepSpec",
    "TrialRow",
    "eta_seconds",
    "heatmap",
    "params_key",
]
