"""A sweep's parameter space, taken from the strategy's own params model.

A user names the parameters to vary and gives each a range: ``low`` and ``high``
(with an optional ``step``, or ``log`` for a log scale) or a list of ``choices``.
What kind of range it is follows from the params model's annotation: an ``int``
field gets integers, a ``float`` field floats, a ``bool`` or ``Literal`` field
choices. Bounds are checked against the field's own (``ge``, ``le``...), so that
a range the model would refuse is an error when the sweep is submitted, not 64
failed trials later. The space becomes Optuna distributions for the random and
TPE samplers, and the list of its points for a grid.
"""

from __future__ import annotations

import itertools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import annotated_types
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator
from pydantic.fields import FieldInfo

from orchestrator.model.errors import OrchestratorError
from orchestrator.model.validation import FrozenModel
from orchestrator.strategy.api import StrategyParams

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

Choice = StrictBool | StrictInt | StrictFloat | StrictStr
MAX_GRID_POINTS = 100_000
"""A grid larger than this is refused before it is enumerated."""


class InvalidSpace(OrchestratorError):
    """A parameter range the strategy's params model cannot take."""

    code = "invalid_sweep"


class ParameterRange(FrozenModel):
    """The values one parameter takes: low..high (step, log), or choices."""

    low: StrictInt | StrictFloat | None = Field(None, description="Smallest value.")
    high: StrictInt | StrictFloat | None = Field(None, description="Largest value (included).")
    step: StrictInt | StrictFloat | None = Field(
        None, gt=0, description="Distance between values; a grid of floats needs it."
    )
    log: bool = Field(False, description="Sample on a log scale (low > 0; not with step).")
    choices: tuple[Choice, ...] | None = Field(
        None, min_length=1, max_length=1000, description="The values, instead of low..high."
    )

    @model_validator(mode="after")
    def _one_form(self) -> ParameterRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("give either choices or low/high (step, log), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (or choices)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.step is not None:
            raise ValueError("a log scale takes no step")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0 (got {self.low})")
        return self


Kind = Literal["int", "float", "choice"]


@dataclass(frozen=True, slots=True)
class Dimension:
    """One varied parameter: its kind and the distribution it is sampled from."""

    name: str
    kind: Kind
    distribution: BaseDistribution
    grid: tuple[Any, ...] | None
    """Every value, in order, when the range is finite; None for a continuous one."""


@dataclass(frozen=True, slots=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dimension.name for dimension in self.dimensions)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {dimension.name: dimension.distribution for dimension in self.dimensions}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the grid, the last parameter varying fastest; InvalidSpace for a
        continuous range or a grid too large to enumerate."""
        values = []
        for dimension in self.dimensions:
            if dimension.grid is None:
                raise InvalidSpace(
                    f"a grid needs a finite range: give {dimension.name} a step or choices"
                )
            values.append(dimension.grid)
        size = math.prod(len(axis) for axis in values)
        if size > MAX_GRID_POINTS:
            raise InvalidSpace(f"the grid has {size:,} points; at most {MAX_GRID_POINTS:,}")
        return [dict(zip(self.names, point, strict=True)) for point in itertools.product(*values)]

    def grid_size(self) -> int | None:
        if any(dimension.grid is None for dimension in self.dimensions):
            return None
        return math.prod(len(dimension.grid or ()) for dimension in self.dimensions)


def search_space(model: type[StrategyParams], ranges: Mapping[str, ParameterRange]) -> SearchSpace:
    """The space of ``ranges`` over ``model``'s fields; InvalidSpace says what to fix."""
    if not ranges:
        raise InvalidSpace("name at least one parameter to vary")
    fields = model.model_fields
    dimensions = []
    for name, given in ranges.items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(fields) or "none"
            raise InvalidSpace(f"{model.__name__} has no parameter {name!r}; it has: {known}")
        dimensions.append(_dimension(name, field, given))
    return SearchSpace(tuple(dimensions))


def _dimension(name: str, field: FieldInfo, given: ParameterRange) -> Dimension:
    # Optuna is imported here and in the two below, when a sweep is checked or run:
    # at module level it would cost every start of the daemon.
    from optuna.distributions import CategoricalDistribution

    kind, literal_values = _kind(field.annotation)
    if given.choices is not None:
        choices = tuple(dict.fromkeys(given.choices))  # order kept, duplicates dropped
        for value in choices:
            _check_choice(name, kind, literal_values, field, value)
        return Dimension(name, "choice", CategoricalDistribution(choices), choices)
    if kind == "choice":
        raise InvalidSpace(f"{name} takes choices (a list of values), not low/high")
    assert given.low is not None and given.high is not None  # checked by ParameterRange
    _check_bounds(name, field, given.low)
    _check_bounds(name, field, given.high)
    if kind == "int":
        return _int_dimension(name, given)
    return _float_dimension(name, given)


def _int_dimension(name: str, given: ParameterRange) -> Dimension:
    from optuna.distributions import IntDistribution

    low, high, step = given.low, given.high, given.step if given.step is not None else 1
    if not all(isinstance(value, int) for value in (low, high, step)):
        raise InvalidSpace(f"{name} is an integer: give integer low, high and step")
    assert isinstance(low, int) and isinstance(high, int) and isinstance(step, int)
    high = low + (high - low) // step * step  # Optuna's own rule: the last value on the step
    distribution = IntDistribution(low, high, log=given.log, step=step)
    grid = None if given.log else tuple(range(low, high + 1, step))
    return Dimension(name, "int", distribution, grid)


def _float_dimension(name: str, given: ParameterRange) -> Dimension:
    from optuna.distributions import FloatDistribution

    low, high = float(given.low or 0), float(given.high or 0)
    step = float(given.step) if given.step is not None else None
    distribution = FloatDistribution(low, high, log=given.log, step=step)
    grid = None
    if step is not None:
        count = round((distribution.high - low) / step) + 1
        # Each value computed from low, not summed: no drift after many steps.
        grid = tuple(float(round(low + index * step, 12)) for index in range(count))
    return Dimension(name, "float", distribution, grid)


def _kind(annotation: Any) -> tuple[Kind, tuple[Any, ...] | None]:
    """What a field's type lets it vary as (Optional is looked through)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _kind(members[0])
        return "choice", None
    if origin is Literal:
        return "choice", typing.get_args(annotation)
    if annotation is bool:
        return "choice", (True, False)
    if annotation is int:
        return "int", None
    if annotation is float:
        return "float", None
    return "choice", None


def _check_choice(
    name: str, kind: Kind, allowed: tuple[Any, ...] | None, field: FieldInfo, value: Any
) -> None:
    if allowed is not None and value not in allowed:
        raise InvalidSpace(f"{name} takes {', '.join(map(repr, allowed))}; {value!r} is not one")
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise InvalidSpace(f"{name} is an integer; {value!r} is not")
    if kind == "float" and not isinstance(value, int | float):
        raise InvalidSpace(f"{name} is a number; {value!r} is not")
    if kind in ("int", "float"):
        _check_bounds(name, field, value)


BOUNDS: Sequence[tuple[type[Any], str, str]] = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _check_bounds(name: str, field: FieldInfo, value: float) -> None:
    for constraint in field.metadata:
        for bound_type, attribute, sign in BOUNDS:
            if isinstance(constraint, bound_type):
                bound = getattr(constraint, attribute)
                if not _holds(value, sign, bound):
                    raise InvalidSpace(f"{name} must be {sign} {bound}; the range reaches {value}")


def _holds(value: float, sign: str, bound: float) -> bool:
    if sign == ">=":
        return value >= bound
    if sign == ">":
        return value > bound
    if sign == "<=":
        return value <= bound
    return value < bound
