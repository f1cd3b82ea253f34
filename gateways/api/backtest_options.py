"""What a client's backtest form needs to check what ``run_backtest`` will check.

``get_backtest_options`` (8082) answers ``backtest_options``: each catalog strategy with
its parameters, their values in the catalog and their bounds (from the strategy's own
params model), the synthetic source's fields and the starting capital with the bounds
of the core's models, the history files a file backtest can name, and the statistics
table's rows (label, key, unit: the CLI's and the HTML report's). The bounds are
read from the models that enforce them, so a form never disagrees with the daemon.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from gateways.client.backtest_text import STATISTICS_ROWS
from orchestrator.backtest.engine import BacktestSpec, SyntheticSource
from orchestrator.model.errors import OrchestratorError
from orchestrator.strategy.config import CatalogEntry
from orchestrator.strategy.loader import load_strategy_class

BOUND_KEYS = (
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "default",
    "description",
)
"""What a form needs of a field's JSON schema to check a value and explain it."""

SYNTHETIC_FIELDS = ("duration_seconds", "seed", "initial_price", "drift", "volatility")
"""The synthetic source's fields a form offers (wire names are their camelCase)."""

HISTORY_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_LISTED_FILES = 200
"""Most entries of ``jobs.data_dir`` listed: a form's suggestions, not an inventory."""


def bounds(field: dict[str, Any]) -> dict[str, Any]:
    """A field's type, bounds, default and description from its JSON schema; an
    optional field (``anyOf`` with null) is bounded as its other type is."""
    merged = dict(field)
    for branch in field.get("anyOf", ()):
        if branch.get("type") != "null":
            merged = {**branch, **field}
            break
    return {key: merged[key] for key in BOUND_KEYS if key in merged}


def field_bounds(model: type[BaseModel], names: Iterable[str]) -> dict[str, Any]:
    """The named fields' bounds, by their camelCase (wire) names."""
    properties = model.model_json_schema()["properties"]
    return {to_camel(name): bounds(properties[name]) for name in names}


def strategy_options(entry: CatalogEntry) -> dict[str, Any]:
    """One catalog strategy: its params' values and bounds (none when its code does not
    load: ``error`` says why, as a start would)."""
    defaults = entry.defaults
    option: dict[str, Any] = {
        "id": entry.id,
        "name": entry.name,
        "symbols": list(defaults.symbols),
        "dataResolution": defaults.data_resolution,
        "params": dict(entry.params),
        "paramBounds": {},
    }
    try:
        params_model = load_strategy_class(entry.kind).params_model
    except OrchestratorError as exc:
        option["error"] = exc.message
        return option
    schema = params_model.model_json_schema()["properties"]
    option["paramBounds"] = {name: bounds(field) for name, field in schema.items()}
    return option


def history_files(data_dir: Path | None) -> list[str] | None:
    """The files and directories at the top of ``data_dir`` a backtest can name; None
    when file backtests are off."""
    if data_dir is None:
        return None
    try:
        entries = sorted(data_dir.iterdir())
    except OSError:
        return []
    named = [
        entry.name
        for entry in entries
        if entry.is_dir() or entry.suffix.lower() in HISTORY_SUFFIXES
    ]
    return named[:MAX_LISTED_FILES]


def backtest_options(
    entries: Iterable[CatalogEntry], symbols: Collection[str], data_dir: Path | None
) -> dict[str, Any]:
    """The ``backtest_options`` reply's data."""
    return {
        "strategies": [strategy_options(entry) for entry in entries],
        "symbols": sorted(symbols),
        "synthetic": field_bounds(SyntheticSource, SYNTHETIC_FIELDS),
        "initialCapital": field_bounds(BacktestSpec, ("initial_capital",))["initialCapital"],
        "files": history_files(data_dir),
        # The CLI's and the HTML report's table: the same labels, order and units.
        "statistics": [
            {"label": label, "key": key, "unit": unit} for label, key, unit in STATISTICS_ROWS
        ],
    }
