"""The ``orchestrator`` command: run the daemon, check a config, read its journal, convert
history files, talk to a running daemon."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateways.cli.data import add_data_parser, data_command
from gateways.cli.journal import add_journal_parser, journal_command
from gateways.cli.runnable import load_runnable_config
from gateways.client.commands import CLIENT_COMMANDS, add_client_parsers, client_command
from gateways.config import DaemonConfig
from gateways.logs import configure_logging
from orchestrator.marketdata.config import NngFeedConfig
from orchestrator.model.errors import ConfigError

if TYPE_CHECKING:
    from gateways.venues.check import VenueCheck

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
    add_data_parser(commands)
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
    if args.command == "data":
        return data_command(args)
    if args.command in CLIENT_COMMANDS:
        return client_command(args)
    return run_daemon(args.config)


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
    if config.recording.enabled:
        print(f"  recording     {config.recording_directory()}")
    return check_venues(config)


def check_venues(config: DaemonConfig) -> int:
    """Connect to every venue (markets, clock, balance; no order) and report each."""
    if not config.venues:
        return EXIT_OK
    checks = asyncio.run(_check_all(config))
    for check in checks:
        print_venue_check(check)
    return EXIT_OK if all(check.ok for check in checks) else EXIT_CONFIG


async def _check_all(config: DaemonConfig) -> list[VenueCheck]:
    from gateways.venues.check import check_venue  # ccxt: only when a venue is configured

    return list(
        await asyncio.gather(
            *(
                check_venue(name, venue, config.venue_symbols(name))
                for name, venue in config.venues.items()
            )
        )
    )


def print_venue_check(check: VenueCheck) -> None:
    if not check.ok:
        print(f"  venue {check.name:<7} ({check.exchange}) FAILED:", file=sys.stderr)
        for problem in check.problems:
            print(f"    {problem}", file=sys.stderr)
        return
    held = ", ".join(
        f"{amount:g} {currency}" for currency, amount in sorted(check.balances.items())
    )
    print(
        f"  venue {check.name:<7} ({check.exchange}) OK: {check.markets} markets, "
        f"clock skew {check.skew_ms} ms, balance {held or 'empty'}"
    )
    for symbol in sorted(check.native_stops):
        print(f"    {symbol}: {check.where_stops_rest(symbol)}")


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
