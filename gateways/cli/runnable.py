"""The config ``orchestrator run`` accepts: valid, and with a catalog whose strategies can
start (their code loads, their params are valid, the feed carries their symbols).

A typo in the catalog is an error at start rather than at the first
start_strategy, and ``check-config`` reports it with every other problem of the
file and the environment, in one pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateways.config import DaemonConfig, config_from_source, read_config_source
from gateways.config_problems import ConfigSource, Loc, error_text, toml_line
from orchestrator.marketdata.config import (
    CsvReplayFeedConfig,
    FeedConfig,
    MarketDataConfig,
    SyntheticFeedConfig,
)
from orchestrator.model.errors import ConfigError
from orchestrator.strategy.config import CatalogEntry, default_catalog
from orchestrator.strategy.loader import StrategyLoadError, build_params, load_strategy_class


def load_runnable_config(path: Path | None) -> DaemonConfig:
    """The config at ``path`` (or the embedded defaults), refused with every problem of
    the config and of its catalog when there is any."""
    source = read_config_source(path)
    try:
        config = config_from_source(source, path)
    except ConfigError as exc:
        entries, feed = _valid_parts(source)
        more = catalog_problems(entries, feed, source)
        raise ConfigError(exc.message, [*exc.problems, *more]) from exc
    problems = catalog_problems(config.strategies, config.market_data.feed, source)
    if problems:
        where = str(path) if path is not None else "the embedded defaults"
        raise ConfigError(f"invalid strategy catalog in {where}", problems)
    return config


def _valid_parts(source: ConfigSource) -> tuple[list[CatalogEntry], FeedConfig | None]:
    """The catalog entries and the feed of a config that failed validation, where they are
    valid on their own: their deeper problems belong in the same report."""
    raw_entries = source.data.get("strategies")
    entries: list[CatalogEntry] = []
    if isinstance(raw_entries, list):
        for raw in raw_entries:
            with contextlib.suppress(ValidationError, TypeError):
                entries.append(CatalogEntry.model_validate(raw))
    elif raw_entries is None:
        entries = list(default_catalog())
    try:
        feed = MarketDataConfig.model_validate(source.data.get("market_data", {})).feed
    except (ValidationError, TypeError):
        feed = None
    return entries, feed


def catalog_problems(
    entries: Sequence[CatalogEntry], feed: FeedConfig | None, source: ConfigSource
) -> list[str]:
    """What stops a catalog strategy from starting: its symbols, its code, its params."""
    problems: list[str] = []
    for index, entry in enumerate(entries):
        at = _Entry(entry, _entry_index(source, entry, index), source)
        if feed is not None:
            problems.extend(at.describe(loc, what) for loc, what in _symbol_problems(entry, feed))
        problems.extend(at.describe(loc, what) for loc, what in _code_problems(entry))
    return problems


class _Entry:
    """Where a catalog entry's problem is: ``strategies.<id>...`` and its TOML line."""

    def __init__(self, entry: CatalogEntry, index: int, source: ConfigSource) -> None:
        self.entry = entry
        self.index = index
        self.source = source

    def describe(self, loc: Loc, what: str) -> str:
        text = self.source.text
        line = toml_line(text, ("strategies", self.index, *loc)) if text else None
        where = ".".join(["strategies", self.entry.id, *map(str, loc)])
        return f"{where}: {what}" + (f" (line {line})" if line is not None else "")


def _entry_index(source: ConfigSource, entry: CatalogEntry, fallback: int) -> int:
    """The entry's index in the file (for its line), found by id."""
    raw = source.data.get("strategies")
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            if isinstance(item, dict) and item.get("id") == entry.id:
                return index
    return fallback


def _symbol_problems(entry: CatalogEntry, feed: FeedConfig) -> list[tuple[Loc, str]]:
    provided = feed_symbols(feed)
    missing = [symbol for symbol in entry.defaults.symbols if symbol not in provided]
    if not missing:
        return []
    return [
        (
            ("defaults", "symbols"),
            f"the feed ({feed.kind}) does not provide {', '.join(missing)} (it provides "
            f"{', '.join(sorted(provided))}): add it to market_data.feed or change the "
            "strategy's defaults.symbols",
        )
    ]


def _code_problems(entry: CatalogEntry) -> list[tuple[Loc, str]]:
    try:
        cls = load_strategy_class(entry.kind)
    except StrategyLoadError as exc:
        return [(("kind",), str(exc))]
    try:
        build_params(cls, entry.params)
    except ValidationError as exc:
        fields = sorted(cls.params_model.model_fields)
        return [
            (("params", *error["loc"]), error_text(error, fields))
            for error in exc.errors(include_url=False)
        ]
    return []


def feed_symbols(feed: FeedConfig) -> frozenset[str]:
    """The symbols a feed carries."""
    if isinstance(feed, SyntheticFeedConfig):
        return frozenset(feed.symbols)
    if isinstance(feed, CsvReplayFeedConfig):
        return frozenset(feed.files)
    return frozenset(feed.symbols)
