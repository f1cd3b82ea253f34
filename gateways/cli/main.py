"""The ``orchestrator`` command: run the daemon, check a config, talk to a running daemon."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateways.cli.journal import add_journal_parser, journal_command
from gateways.client.commands import CLIENT_COMMANDS, add_client_parsers, client_command
from gateways.config import DaemonConfig, config_from_source, read_config_source
from gateways.config_problems import ConfigSource, toml_line, toml_words, unknown_key_message
from gateways.logs import configure_logging
from orchestrator.marketdata.config import (
    CsvReplayFeedConfig,
    FeedConfig,
    MarketDataConfig,
    NngFeedConfig,
    SyntheticFeedConfig,
)
from orchestrator.model.errors import ConfigError
from orchestrator.strategy.config import CatalogEntry, default_catalog
from orchestrator.strategy.loader import StrategyLoadError, build_params, load_strategy_class

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

PACKAGE = "strategy-orchestrator"
"""The distribution whose version ``orchestrator --version`` prints."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Strategy orchestrator daemon and its tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon (three WebSocket servers)")
    run.add_argument("--config", type=Path, help="TOML config file (default: embedded defaults)")
    check = commands.add_parser("check-config", help="validate a config and print what is wrong")
    check.add_argument("--config", type=Path, help="TOML config file (default: embedded defaults)")
    add_journal_parser(commands)
    add_client_parsers(commands)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but an unknown option is reported with the usage of the command
    it was given to (``orchestrator journal trades --bogus``), not the top-level one."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The innermost subcommand's parser that ``args`` went through."""
    while True:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subparsers[0].dest, None) if subparsers else None
        if not subparsers or name not in subparsers[0].choices:
            return parser
        parser = subparsers[0].choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "journal":
        return journal_command(args)
    if args.command in CLIENT_COMMANDS:
        return client_command(args)
    return run_daemon(args.config)


def load_runnable_config(path: Path | None) -> DaemonConfig:
    """The config, refused if a catalog strategy cannot be loaded, has invalid params or
    trades a symbol the feed does not carry, so that a typo there is an error at start
    rather than at the first start_strategy. Every problem, config and catalog, is
    reported in one pass."""
    source = read_config_source(path)
    where = str(path) if path is not None else "the embedded defaults"
    try:
        config = config_from_source(source, path)
    except ConfigError as exc:
        entries, feed = _valid_parts(source)
        more = catalog_problems(entries, feed, source)
        raise ConfigError(exc.message, [*exc.problems, *more]) from exc
    problems = catalog_problems(config.strategies, config.market_data.feed, source)
    if problems:
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
    market_data = source.data.get("market_data", {})
    try:
        feed = MarketDataConfig.model_validate(market_data).feed
    except (ValidationError, TypeError):
        feed = None
    return entries, feed


def catalog_problems(
    entries: Sequence[CatalogEntry], feed: FeedConfig | None, source: ConfigSource
) -> list[str]:
    """What stops a catalog strategy from starting: its code, its params, its symbols."""
    problems: list[str] = []
    for index, entry in enumerate(entries):
        problems.extend(_entry_problems(entry, _entry_index(source, entry, index), feed, source))
    return problems


def _entry_index(source: ConfigSource, entry: CatalogEntry, fallback: int) -> int:
    raw = source.data.get("strategies")
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            if isinstance(item, dict) and item.get("id") == entry.id:
                return index
    return fallback


def _entry_problems(
    entry: CatalogEntry, index: int, feed: FeedConfig | None, source: ConfigSource
) -> list[str]:
    where = f"strategies.{entry.id}"
    problems = []

    def add(loc: tuple[int | str, ...], what: str) -> None:
        line = toml_line(source.text, ("strategies", index, *loc)) if source.text else None
        at = f" (line {line})" if line is not None else ""
        problems.append(f"{'.'.join([where, *map(str, loc)])}: {what}{at}")

    if feed is not None:
        provided = feed_symbols(feed)
        missing = [symbol for symbol in entry.defaults.symbols if symbol not in provided]
        if missing:
            add(
                ("defaults", "symbols"),
                f"the feed ({feed.kind}) does not provide {', '.join(missing)} (it provides "
                f"{', '.join(sorted(provided))}): add it to market_data.feed or change the "
                "strategy's defaults.symbols",
            )
    try:
        cls = load_strategy_class(entry.kind)
    except StrategyLoadError as exc:
        add(("kind",), str(exc))
        return problems
    try:
        build_params(cls, entry.params)
    except ValidationError as exc:
        fields = sorted(cls.params_model.model_fields)
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                what = unknown_key_message(loc[-1], fields)
            else:
                given = error.get("input")
                shown = "" if error["type"] == "missing" or isinstance(given, dict) else given
                what = toml_words(error["msg"].removeprefix("Value error, "))
                what += f" (got {shown!r})" if shown != "" else ""
            add(("params", *loc), what)
    return problems


def feed_symbols(feed: FeedConfig) -> frozenset[str]:
    """The symbols a feed carries."""
    if isinstance(feed, SyntheticFeedConfig):
        return frozenset(feed.symbols)
    if isinstance(feed, CsvReplayFeedConfig):
        return frozenset(feed.files)
    return frozenset(feed.symbols)


def check_config(path: Path | None) -> int:
    try:
        config = load_runnable_config(path)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    servers = config.servers
    print(f"{path or 'embedded defaults'}: OK")
    for name in ("orchestrator", "market_data", "risk"):
        server = getattr(servers, name)
        print(f"  {name:<13} ws://{server.host}:{server.port}{server.path}")
    print(f"  strategies    {', '.join(entry.id for entry in config.strategies)}")
    if config.nng.enabled:
        print(f"  nng publish   {config.nng_publish_address()}")
    if isinstance(config.market_data.feed, NngFeedConfig):
        print(f"  nng ingest    {config.nng_ingest_address()}")
    return EXIT_OK


def print_config_error(exc: ConfigError) -> None:
    """The message alone when it is the whole story, else a header and one line per problem."""
    if exc.problems == [exc.message]:
        print(exc.message, file=sys.stderr)
        return
    print(f"{exc.message}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def run_daemon(path: Path | None) -> int:
    try:
        config = load_runnable_config(path)
    except ConfigError as exc:
        configure_logging(DaemonConfig.model_construct().logging)
        print_config_error(exc)
        return EXIT_CONFIG
    configure_logging(config.logging)
    # The edge is imported only here: the core stays free of WebSocket code.
    from gateways.daemon import run

    return run(config, reload=lambda: load_runnable_config(path))


if __name__ == "__main__":
    sys.exit(main())
