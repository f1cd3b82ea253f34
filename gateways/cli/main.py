"""The ``orchestrator`` command: run the daemon, check a config, talk to a running daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateways.cli.journal import add_journal_parser, journal_command
from gateways.client.commands import CLIENT_COMMANDS, add_client_parsers, client_command
from gateways.config import DaemonConfig, load_config
from gateways.logs import configure_logging
from orchestrator.model.errors import ConfigError
from orchestrator.model.validation import describe_validation_errors
from orchestrator.strategy.loader import StrategyLoadError, build_params, load_strategy_class

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Strategy orchestrator daemon and its tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the daemon (three WebSocket servers)")
    run.add_argument("--config", type=Path, help="TOML config file (default: embedded defaults)")
    check = commands.add_parser("check-config", help="validate a config and print what is wrong")
    check.add_argument("--config", type=Path, help="TOML config file (default: embedded defaults)")
    add_journal_parser(commands)
    add_client_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.config)
    if args.command == "journal":
        return journal_command(args)
    if args.command in CLIENT_COMMANDS:
        return client_command(args)
    return run_daemon(args.config)


def load_runnable_config(path: Path | None) -> DaemonConfig:
    """The config, refused if a catalog strategy cannot be loaded or has invalid params,
    so that a typo there is an error at start rather than at the first start_strategy."""
    config = load_config(path)
    problems = catalog_problems(config)
    if problems:
        where = str(path) if path is not None else "the embedded defaults"
        raise ConfigError(f"invalid strategy catalog in {where}", problems)
    return config


def catalog_problems(config: DaemonConfig) -> list[str]:
    problems = []
    for index, entry in enumerate(config.strategies):
        where = f"strategies.{index}"
        try:
            cls = load_strategy_class(entry.kind)
        except StrategyLoadError as exc:
            problems.append(f"{where}.kind: {exc}")
            continue
        try:
            build_params(cls, entry.params)
        except ValidationError as exc:
            for line in describe_validation_errors(exc):
                loc, _, problem = line.partition(": ")
                field = "" if loc == "(top level)" else f".{loc}"
                problems.append(f"{where}.params{field}: {problem}")
    return problems


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
