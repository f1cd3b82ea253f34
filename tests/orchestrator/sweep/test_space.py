"""The parameter space from a strategy's params model: kinds, bounds, grids, refusals."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import ValidationError

from orchestrator.strategy.builtin.bollinger_breakout import BollingerBreakoutParams
from orchestrator.strategy.builtin.sma_crossover import SmaCrossoverParams
from orchestrator.sweep.objective import Objective
from orchestrator.sweep.space import InvalidSpace, ParameterRange, search_space


def space(model: type, **ranges: dict) -> object:  # type: ignore[type-arg]
    return search_space(model, {k: ParameterRange(**v) for k, v in ranges.items()})


def test_ints_floats_and_choices_follow_the_params_model() -> None:
    found = search_space(
        BollingerBreakoutParams,
        {
            "period": ParameterRange(low=10, high=30, step=5),
            "num_std": ParameterRange(low=1.0, high=3.0, step=0.5),
        },
    )
    period, num_std = found.dimensions
    assert isinstance(period.distribution, IntDistribution) and period.grid == (10, 15, 20, 25, 30)
    assert isinstance(num_std.distribution, FloatDistribution)
    assert num_std.grid == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert len(found.grid_points()) == 25
    logged = search_space(
        BollingerBreakoutParams, {"num_std": ParameterRange(low=0.5, high=4, log=True)}
    )
    assert logged.dimensions[0].grid is None and logged.dimensions[0].distribution.log  # type: ignore[attr-defined]
    with pytest.raises(InvalidSpace, match="a grid needs a finite range"):
        logged.grid_points()
    short = search_space(SmaCrossoverParams, {"allow_short": ParameterRange(choices=(True, False))})
    assert isinstance(short.dimensions[0].distribution, CategoricalDistribution)


@pytest.mark.parametrize(
    ("ranges", "problem"),
    [
        ({"fsat": ParameterRange(low=1, high=5)}, "has no parameter 'fsat'; it has: fast, slow"),
        ({"fast": ParameterRange(low=0, high=5)}, "fast must be >= 1"),
        ({"fast": ParameterRange(low=1.5, high=5)}, "fast is an integer"),
        ({"allow_short": ParameterRange(low=0, high=1)}, "takes choices"),
        ({"fast": ParameterRange(choices=("a",))}, "fast is an integer; 'a' is not"),
        ({}, "at least one parameter"),
    ],
)
def test_a_range_the_model_cannot_take_is_refused_saying_why(ranges: dict, problem: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidSpace, match=problem):
        search_space(SmaCrossoverParams, ranges)


def test_a_range_must_be_one_form() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ParameterRange(low=1, high=2, choices=(1,))
    with pytest.raises(ValidationError, match="above high"):
        ParameterRange(low=3, high=2)
    with pytest.raises(ValidationError, match="log scale needs low > 0"):
        ParameterRange(low=0, high=2, log=True)


def test_objectives_and_constraints() -> None:
    stats = {"sharpe_ratio": 1.5, "return_pct": 30.0, "max_drawdown_pct": -15.0, "trade_count": 4}
    assert Objective(metric="sharpe").value(stats) == 1.5
    assert Objective(metric="return_over_max_drawdown").value(stats) == 2.0
    strict = Objective(min_trades=5, max_drawdown_pct=10)
    assert strict.violations(stats) == [
        "4 trades, fewer than min_trades 5",
        "max drawdown -15.00 % is deeper than 10 %",
    ]
    assert strict.constraint_values(stats) == [1.0, 5.0]
    assert Objective().violations({"sharpe_ratio": None}) == ["sharpe_ratio has no value"]
    with pytest.raises(ValidationError, match="unknown metric 'sharp'"):
        Objective(metric="sharp")
