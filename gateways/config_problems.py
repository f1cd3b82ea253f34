"""Config validation errors in the words of the person who wrote the TOML.

pydantic reports ``strategies.0.params.fats: Extra inputs are not permitted``
and ``Input should be a valid tuple``; someone editing a TOML file wants to
read ``strategies.strategy-123.params.fats: unknown key; did you mean fast?
(line 12)`` and ``an array``, and to be told which environment variable holds a
bad value rather than blame the file or the embedded defaults.

The functions here take the root model as an argument, so that this module
needs nothing of the config it describes (no import cycle).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

ENV_PREFIX = "ORCHESTRATOR_"

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """What a config was read from: the parsed TOML and its text (None: no file)."""

    data: Mapping[str, Any]
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: its readable location, what is wrong, and where it came from."""

    where: str
    what: str
    env_var: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.env_var} ({self.where})" if self.env_var else self.where
        line = f" (line {self.line})" if self.line is not None else ""
        return f"{where}: {self.what}{line}"


def describe_config_errors(
    exc: ValidationError,
    root: type[BaseModel],
    source: ConfigSource,
    environ: Mapping[str, str],
) -> list[Problem]:
    """One :class:`Problem` per pydantic error of validating ``root``."""
    return [_problem(error, root, source, environ) for error in exc.errors(include_url=False)]


def _problem(
    error: ErrorDetails, root: type[BaseModel], source: ConfigSource, environ: Mapping[str, str]
) -> Problem:
    raw_loc = tuple(error["loc"])
    loc = _without_tags(root, raw_loc)
    what = error_text(error, _field_names(root, raw_loc[:-1]))
    env_var = environment_variable_for(loc, environ)
    line = None if env_var or source.text is None else toml_line(source.text, loc)
    return Problem(readable_location(loc, source.data), what, env_var, line)


def error_text(error: ErrorDetails, known: Sequence[str]) -> str:
    """What is wrong, in TOML's words and with what was given; an unknown key gets a
    did-you-mean among ``known`` (the fields of the model it was given to)."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
        return unknown_key_message(loc[-1], known)
    what = toml_words(error["msg"].removeprefix("Value error, "))
    given = error.get("input")
    if error["type"] != "missing" and not isinstance(given, dict):
        what += f" (got {given!r})"
    return what


# ------------------------------------------------------------------ words


_TOML_WORDS = (
    (re.compile(r"a valid dictionary( or instance of \w+)?"), "a table"),
    (re.compile(r"a valid (tuple|list|array)"), "an array"),
    (re.compile(r"\b(Tuple|List)\b"), "Array"),
    (re.compile(r"\bDictionary\b"), "Table"),
    (re.compile(r"\b(tuple|list)\b"), "array"),
    (re.compile(r"\b(dictionary|dict)\b"), "table"),
)


def toml_words(message: str) -> str:
    """pydantic's Python words for types (tuple, dict) replaced by TOML's (array, table)."""
    for pattern, word in _TOML_WORDS:
        message = pattern.sub(word, message)
    return message


def unknown_key_message(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    if known:
        return f"unknown key; expected one of {', '.join(sorted(known))}"
    return "unknown key"


def readable_location(loc: Loc, data: Mapping[str, Any]) -> str:
    """``strategies.<id>`` instead of ``strategies.<index>`` when the entry has an id."""
    parts = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "strategies" and isinstance(loc[1], int):
        entry_id = strategy_id_at(data, loc[1])
        if entry_id is not None:
            parts[1] = entry_id
    return ".".join(parts) or "(top level)"


def strategy_id_at(data: Mapping[str, Any], index: int) -> str | None:
    entries = data.get("strategies")
    if not isinstance(entries, list) or not 0 <= index < len(entries):
        return None
    entry = entries[index]
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    return entry_id if isinstance(entry_id, str) and entry_id else None


# ------------------------------------------------------------------ the model


def _without_tags(root: type[BaseModel], loc: Loc) -> Loc:
    """``market_data.feed.synthetic.x`` is ``market_data.feed.x`` in the TOML: pydantic
    adds the tag of a discriminated union (the feed's ``kind``) to the location."""
    return _walk(root, loc)[0]


def _field_names(root: type[BaseModel], loc: Loc) -> list[str]:
    """The fields of the model at ``loc`` (pydantic's, tags included), for a did-you-mean."""
    models = _walk(root, loc)[1]
    return sorted({name for model in models for name in model.model_fields})


def _walk(root: type[BaseModel], loc: Loc) -> tuple[Loc, list[type[BaseModel]]]:
    """``loc`` without union tags, and the models that can be at its end."""
    kept: list[int | str] = []
    models: list[type[BaseModel]] = [root]
    for part in loc:
        if isinstance(part, str):
            tagged = _member_with_tag(models, part)
            if tagged is not None:
                models = [tagged]
                continue
            fields = [m.model_fields[part] for m in models if part in m.model_fields]
            models = [m for f in fields for m in _models_in(f.annotation)]
        kept.append(part)
    return tuple(kept), models


def _member_with_tag(models: Sequence[type[BaseModel]], tag: str) -> type[BaseModel] | None:
    if len(models) < 2:
        return None
    for model in models:
        kind = model.model_fields.get("kind")
        if kind is not None and typing.get_args(kind.annotation) == (tag,):
            return model
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, its union members, its items' type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    if origin in (typing.Union, types.UnionType, tuple, list):
        return [m for arg in args if arg is not Ellipsis for m in _models_in(arg)]
    if origin is dict and len(args) == 2:
        return _models_in(args[1])
    return []


# ------------------------------------------------------------------ sources


def environment_variable_for(loc: Loc, environ: Mapping[str, str]) -> str | None:
    """The ORCHESTRATOR_* variable that set the value at ``loc`` (or a section above it):
    the environment wins over the file, so a bad value there is the variable's."""
    names = {name.upper(): name for name in environ}
    parts = [str(part).upper() for part in loc]
    for length in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:length])
        if name in names:
            return names[name]
    return None


def toml_line(text: str, loc: Loc) -> int | None:
    """The line of ``loc``'s key in the file, found by searching the text: the line
    of the innermost table header of ``loc``, then the first ``key =`` after it."""
    lines = text.splitlines()
    start = _table_start(lines, loc[:-1]) if len(loc) > 1 else 0
    key = next((part for part in reversed(loc) if isinstance(part, str)), None)
    if key is None:
        return start + 1 if start else None
    assignment = re.compile(rf"(^|[\s{{,.]){re.escape(key)}\s*=")
    for number in range(start, len(lines)):
        if assignment.search(_without_comment(lines[number])):
            return number + 1
    table = _table_start(lines, loc)  # a key that is a table: [brokr]
    if table:
        return table + 1
    return start + 1 if start else None


def _table_start(lines: Sequence[str], table: Loc) -> int:
    """The index of the header line of ``table`` (the n-th ``[[...]]`` for an index), or 0."""
    best = 0
    path: list[str] = []
    for part in table:
        if isinstance(part, int):
            header = re.compile(rf"^\s*\[\[\s*{re.escape('.'.join(path))}\s*\]\]")
            found = [i for i, line in enumerate(lines) if header.match(line)]
            if part < len(found):
                best = found[part]
            continue
        path.append(part)
        header = re.compile(rf"^\s*\[\[?\s*{re.escape('.'.join(path))}\s*\]\]?")
        found = [i for i, line in enumerate(lines) if i >= best and header.match(line)]
        if found:
            best = found[0]
    return best


def _without_comment(line: str) -> str:
    return line.split("#", 1)[0]
