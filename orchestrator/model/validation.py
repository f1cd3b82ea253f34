"""The base of every component config, and validation errors in words a person reads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def describe_validation_errors(exc: ValidationError) -> list[str]:
    """One line per problem: where it is, what is wrong, and what was given."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = error.get("input")
        shown = "" if error["type"] == "missing" or isinstance(given, dict) else f" (got {given!r})"
        # A validator's own sentence, without pydantic's "Value error, " before it.
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}{shown}")
    return lines
