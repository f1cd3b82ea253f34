"""``orchestrator status|start|stop|pause|watch|risk|halt|resume|venue``: a running daemon
from a terminal or a script, through :mod:`gateways.client.ws_client`.

Output is for people (aligned tables; colour when stdout is a terminal and
``NO_COLOR`` is unset) or, with ``--json``, for scripts (one JSON document;
``watch --json`` one JSON line per message). Errors go to stderr.

Exit codes: 0 done; 1 the daemon answered with an error (or refused the
connection, e.g. HTTP 401 for a bad token); 2 usage error; 3 no daemon answers
at the URL (or the connection dropped before the reply); 4 timeout; 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import structlog

from gateways.client.backtest_text import ProgressBar, statistics_table, symbols_table
from gateways.client.sweep_text import TrialsBar, best_lines, parameter_range, trials_table
from gateways.client.text import percent, plural, printable_message
from gateways.client.ws_client import (
    CommandError,
    ConnectionLost,
    HandshakeRejected,
    Message,
    MessageStream,
    OrchestratorClient,
    Unreachable,
)

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

DEFAULT_URL = "ws://localhost:8082"
RISK_PORT = 3002
RISK_PATH = "/ws"
DEFAULT_RISK_URL = f"ws://localhost:{RISK_PORT}{RISK_PATH}"
DEFAULT_TIMEOUT = 10.0
TOKEN_ENV = "ORCH_TOKEN"
"""Not ORCHESTRATOR_TOKEN: every ORCHESTRATOR_* variable is a daemon setting, and
the daemon refuses unknown ones."""

SIGNALS = ("strategy_signal",)
TRADES = ("strategy_trade",)
STATUS = (
    "strategy_started",
    "strategy_paused",
    "strategy_stopped",
    "strategy_error",
    "execution_service_status",
)
RISK_EVENTS = (
    "order_rejected",
    "order_reduced",
    "stop_loss_triggered",
    "limit_breach",
    "kill_switch",
)
ORDERS = (
    "order_accepted",
    "order_triggered",
    "order_cancelled",
    "order_replaced",
    "order_expired",
    "order_partially_filled",
)
WATCH_GROUPS = {
    "signals": SIGNALS,
    "trades": TRADES,
    "status": STATUS,
    "orders": ORDERS,
    "risk": RISK_EVENTS,
}
ORCHESTRATOR_TYPES = frozenset((*SIGNALS, *TRADES, *STATUS, *ORDERS))
RISK_TYPES = frozenset(RISK_EVENTS)
WATCH_TYPES = ORCHESTRATOR_TYPES | RISK_TYPES

RISK_COMMANDS = frozenset({"risk", "halt", "resume"})
"""The commands for the risk guardian (3002), not the orchestrator server."""

CLIENT_COMMANDS = frozenset(
    {
        "status",
        "start",
        "stop",
        "pause",
        "orders",
        "cancel-order",
        "watch",
        "risk",
        "halt",
        "resume",
        "backtest",
        "sweep",
        "venue",
    }
)


# ------------------------------------------------------------------ parsers


def add_client_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the commands that talk to a running daemon to the ``orchestrator`` parser."""
    status = _command(commands, "status", "execution status and the strategies with their P&L")
    status.add_argument(
        "--all", action="store_true", help="every strategy of the catalog, STOPPED ones included"
    )
    status.add_argument(
        "--risk-url",
        type=_ws_url,
        help=f"risk guardian for P&L (default: --url's host, port {RISK_PORT}, path {RISK_PATH})",
    )

    start = _command(commands, "start", "start (or resume a paused) strategy")
    start.add_argument("id", help="strategy id, e.g. strategy-123")
    start.add_argument("--symbols", type=_symbols, help="comma-separated, e.g. AAPL,MSFT")
    start.add_argument("--resolution", help="bar resolution, e.g. 1m")
    start.add_argument(
        "--max-position-value", type=float, metavar="VALUE", help="notional per symbol"
    )
    start.add_argument("--max-orders-per-minute", type=int, metavar="N")
    start.add_argument(
        "--stop-loss",
        type=_fraction,
        metavar="FRACTION",
        help="0.02 or 2%% of the entry price; 0 disables",
    )
    start.add_argument(
        "--param",
        dest="strategy_params",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="a strategy parameter over the catalog's (repeat for several; JSON value), "
        "e.g. a sweep's best: --param fast=5 --param slow=30",
    )
    stop = _command(commands, "stop", "stop a strategy (closing its positions)")
    stop.add_argument("id", help="strategy id")
    _command(commands, "pause", "pause a strategy").add_argument("id", help="strategy id")
    orders = _command(commands, "orders", "the resting orders: limits, stops, bracket exits")
    orders.add_argument("--strategy", metavar="ID", help="only this strategy's")
    cancel = _command(commands, "cancel-order", "cancel a resting order")
    cancel.add_argument(
        "order_id", metavar="ORDER_ID", help="as `orders` lists it (a filled entry's: its exits)"
    )

    watch = _command(commands, "watch", "a live stream of signals, trades and risk events")
    watch.add_argument(
        "--type",
        dest="types",
        action="append",
        type=_watch_types,
        metavar="TYPE",
        help="signals, trades, status, risk or a message type; comma-separated or repeated",
    )
    watch.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        type=_comma_list,
        metavar="ID",
        help="only these strategies (events that name none, e.g. the kill switch, still show)",
    )
    watch.add_argument(
        "--risk-url", type=_ws_url, help="risk guardian for risk events (default: as status)"
    )
    watch.add_argument("--no-risk", action="store_true", help="do not connect to the risk guardian")
    watch.add_argument("--count", type=int, metavar="N", help="exit after N messages")

    _command(commands, "risk", "the risk guardian's status: limits, usage, P&L", DEFAULT_RISK_URL)
    halt = _command(commands, "halt", "engage the kill switch (reduce-only)", DEFAULT_RISK_URL)
    halt.add_argument(
        "--reason", default="halted from the command line", help="shown to every client"
    )
    halt.add_argument("--block-all", action="store_true", help="block every order, exits included")
    halt.add_argument(
        "--flatten",
        action="store_true",
        help="block every order and close every position with market orders (on the venue)",
    )
    resume = _command(commands, "resume", "release the kill switch", DEFAULT_RISK_URL)
    resume.add_argument("--reason", help="why trading resumes")
    venue = _command(commands, "venue", "live venues: status, or acknowledge a position mismatch")
    venue.add_argument("action", choices=("status", "acknowledge"))
    venue.add_argument("name", nargs="?", help="the venue (acknowledge: required)")
    venue.add_argument("--asset", help="acknowledge only this asset's mismatch (e.g. BTC)")
    _add_backtest_parser(commands)
    _add_sweep_parser(commands)


def _add_backtest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backtest = _command(commands, "backtest", "backtest a catalog strategy as a job of the daemon")
    _add_source_arguments(backtest)
    backtest.add_argument(
        "--param",
        dest="strategy_params",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="a strategy parameter for this run, over the catalog's (repeat for several), "
        "e.g. --param fast=5 --param slow=30",
    )
    backtest.add_argument(
        "--report",
        metavar="FILE.html",
        help="save the job's HTML report (charts, statistics, trades) to this file",
    )
    backtest.add_argument(
        "--force", action="store_true", help="let --report overwrite an existing file"
    )


def _add_sweep_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = _command(
        commands, "sweep", "search a catalog strategy's parameters (grid, random, TPE) on Dask"
    )
    _add_source_arguments(sweep)
    sweep.add_argument(
        "--param",
        "-p",
        dest="params",
        action="append",
        type=parameter_range,
        required=True,
        metavar="NAME=RANGE",
        help="a parameter to vary: NAME=LOW:HIGH[:STEP], NAME=LOW:HIGH:log or NAME=A,B,C "
        "(repeat for each)",
    )
    sweep.add_argument(
        "--objective",
        default="sharpe",
        help="the statistic to optimise: sharpe, sortino, calmar, return, "
        "return_over_max_drawdown or any of the report's (default sharpe)",
    )
    sweep.add_argument("--minimize", action="store_true", help="lowest is best")
    sweep.add_argument("--min-trades", type=int, default=0, help="fewer trades: infeasible")
    sweep.add_argument(
        "--max-drawdown", type=_positive, metavar="PCT", help="a deeper drawdown: infeasible"
    )
    sweep.add_argument("--method", choices=("grid", "random", "tpe"), default="grid")
    sweep.add_argument("--trials", type=int, help="trials of a random or TPE search")
    sweep.add_argument("--sampler-seed", type=int, default=0, help="seed of random and TPE")
    sweep.add_argument(
        "--heatmap", type=_comma_list, metavar="X,Y", help="the heatmap's two parameters"
    )
    sweep.add_argument(
        "--walk-forward", type=int, metavar="WINDOWS", help="walk-forward with this many windows"
    )
    sweep.add_argument(
        "--train-ratio", type=_positive, default=3.0, help="training over test length (3)"
    )
    sweep.add_argument("--anchored", action="store_true", help="training always from the start")
    sweep.add_argument("--top", type=int, default=10, help="best trials shown (default 10)")
    sweep.add_argument(
        "--report",
        metavar="FILE.html",
        help="save the sweep's HTML report (best trial, heatmaps, every trial) to this file",
    )
    sweep.add_argument(
        "--force", action="store_true", help="let --report overwrite an existing file"
    )


def _add_source_arguments(backtest: argparse.ArgumentParser) -> None:
    """What a backtest and a sweep run over: the strategy and the history."""
    backtest.add_argument("id", help="strategy id of the catalog, e.g. strategy-123")
    backtest.add_argument(
        "--file",
        "--csv",
        dest="file",
        metavar="PATH",
        help="history inside the daemon's jobs.data_dir: a CSV or Parquet file, a Parquet "
        "dataset or a recording directory",
    )
    backtest.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="synthetic feed: how much market time to simulate (default: the daemon's, one day)",
    )
    backtest.add_argument("--symbol", help="the symbol to trade (default: the strategy's first)")
    backtest.add_argument(
        "--symbols",
        type=_symbols,
        help="several symbols on one account, comma-separated, e.g. AAPL,MSFT (each one's "
        "bars from the synthetic feed or from --file: a dataset, a recording or a Parquet "
        "file with a symbol column)",
    )
    backtest.add_argument(
        "--files",
        type=_symbol_files,
        metavar="SYMBOL=PATH,...",
        help="one history file per symbol inside jobs.data_dir, e.g. AAPL=aapl.csv,MSFT=msft.csv: "
        "those symbols on one account",
    )
    backtest.add_argument(
        "--capital",
        type=_positive,
        metavar="VALUE",
        help="the account's initial capital (default: maxPositionValue times the symbols)",
    )
    backtest.add_argument(
        "--partial-fills",
        action="store_true",
        help="fill each order at most a bar's volume per bar, the rest in the next bars",
    )
    backtest.add_argument(
        "--max-volume-fraction",
        type=_positive,
        metavar="FRACTION",
        help="with --partial-fills: the share of a bar's volume one order may fill (default 1)",
    )
    backtest.add_argument("--resolution", help="bar resolution (default: the strategy's)")
    backtest.add_argument("--seed", type=int, help="synthetic feed seed (default: the daemon's, 7)")
    backtest.add_argument(
        "--no-wait", action="store_true", help="print the job id and return without waiting"
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    what: str,
    default_url: str = DEFAULT_URL,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=what, description=f"{what[0].upper()}{what[1:]}.")
    parser.add_argument(
        "--url",
        type=_ws_url,
        default=default_url,
        help=f"the daemon's server (default {default_url})",
    )
    parser.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="JSON for scripts instead of text")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for connecting and for each reply (default {DEFAULT_TIMEOUT:g})",
    )
    return parser


def _ws_url(text: str) -> str:
    if urlsplit(text).scheme not in ("ws", "wss"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a ws:// or wss:// URL")
    return text


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _symbols(text: str) -> list[str]:
    return [symbol.upper() for symbol in _comma_list(text)]


def _symbol_files(text: str) -> dict[str, str]:
    """``AAPL=aapl.csv,MSFT=msft.csv`` as {symbol: path}."""
    files: dict[str, str] = {}
    for item in _comma_list(text):
        symbol, equals, path = item.partition("=")
        if not equals or not symbol.strip() or not path.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not SYMBOL=PATH")
        files[symbol.strip().upper()] = path.strip()
    return files


def _watch_types(text: str) -> list[str]:
    types: list[str] = []
    for item in _comma_list(text):
        if item in WATCH_GROUPS:
            types.extend(WATCH_GROUPS[item])
        elif item in WATCH_TYPES:
            types.append(item)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown type {item!r}; use {', '.join(WATCH_GROUPS)} or one of "
                + ", ".join(sorted(WATCH_TYPES))
            )
    return types


def _fraction(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0.02 or 2%)") from None
    return value


def _param(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``, the value read as JSON (5, 2.5, true) or else kept as text."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


# ------------------------------------------------------------------ running


def client_command(args: argparse.Namespace) -> int:
    """Run one of :data:`CLIENT_COMMANDS` (the sync entry used by ``orchestrator``)."""
    try:
        return asyncio.run(run_client_command(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_client_parser() -> argparse.ArgumentParser:
    """A parser of the client commands alone, as ``orchestrator`` parses them."""
    parser = argparse.ArgumentParser(prog="orchestrator")
    add_client_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


async def main_async(argv: Sequence[str]) -> int:
    """``orchestrator ARGV`` for a command of this module, in the running loop (tests)."""
    args = build_client_parser().parse_args(argv)
    return await run_client_command(args)


async def run_client_command(args: argparse.Namespace) -> int:
    out = Output(sys.stdout, color=_wants_color(sys.stdout))
    command = _COMMANDS[args.command]
    try:
        return await command(args, out)
    except Unreachable as exc:
        _error(args, f"{exc} — is `orchestrator run` running?")
        return EXIT_UNREACHABLE
    except HandshakeRejected as exc:
        _error(args, str(exc))
        return EXIT_DAEMON_ERROR
    except CommandError as exc:
        if args.command in RISK_COMMANDS and exc.code == "unknown_type":
            _error(args, _not_the_risk_guardian(args))
            return EXIT_USAGE
        message = _in_flag_words(args.command, exc.message)
        _error(args, f"the daemon refused {exc.request_type}: {message} ({exc.code})")
        return EXIT_DAEMON_ERROR
    except ConnectionLost as exc:
        _error(args, f"{exc} — did the daemon stop?")
        return EXIT_UNREACHABLE
    except TimeoutError as exc:
        _error(args, str(exc) or f"timed out after {args.timeout:g} s")
        return EXIT_TIMEOUT
    except BrokenPipeError:
        # `orchestrator watch | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


_SOURCE_FLAGS = {
    "source.durationSeconds": "--duration",
    "source.resolution": "--resolution",
    "source.seed": "--seed",
    "source.path": "--file",
    "durationSeconds": "--duration",
    "symbol": "--symbol",
}
FLAGS_OF_FIELDS = {
    "sweep": {**_SOURCE_FLAGS, "trials": "--trials", "minTrades": "--min-trades"},
    "backtest": {
        "source.durationSeconds": "--duration",
        "source.resolution": "--resolution",
        "source.seed": "--seed",
        "source.path": "--file",
        "durationSeconds": "--duration",
        "symbol": "--symbol",
        "symbols": "--symbols",
        "source.paths": "--files",
        "initialCapital": "--capital",
        "partialFills": "--partial-fills",
        "maxVolumeFraction": "--max-volume-fraction",
    },
}
"""The wire's field names as the user typed them: the flags of each command."""


def _in_flag_words(command: str, message: str) -> str:
    for name, flag in FLAGS_OF_FIELDS.get(command, {}).items():
        message = re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", flag, message)
    return message


def _not_the_risk_guardian(args: argparse.Namespace) -> str:
    """Why ``halt --url ws://host:8082`` failed: the server there has no risk commands."""
    return (
        f"{args.command} talks to the risk guardian, and {args.url} is not it (that server "
        f"does not take risk commands); use --url {risk_url_for(args.url)} or leave --url out"
    )


def _error(args: argparse.Namespace, message: str) -> None:
    print(f"orchestrator {args.command}: {message}", file=sys.stderr)


def make_client(
    args: argparse.Namespace, url: str, *, reconnect: bool = False, level: int = logging.WARNING
) -> OrchestratorClient:
    """A client with the command's token and timeout, logging readable lines to stderr."""
    logger = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=_wants_color(sys.stderr)),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )
    return OrchestratorClient(
        url,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        reconnect=reconnect,
        request_timeout=args.timeout,
        open_timeout=args.timeout,
        logger=logger,
        # Text for a terminal: a string from the wire must not steer it (JSON output
        # escapes control characters itself, and keeps the data as sent).
        prepare=None if getattr(args, "json", False) else printable_message,
    )


def risk_url_for(url: str) -> str:
    """The risk guardian beside the orchestrator server at ``url``: same host, port 3002."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{RISK_PORT}", RISK_PATH, "", ""))


# ------------------------------------------------------------------ output


@dataclass(frozen=True, slots=True)
class Output:
    stream: TextIO
    color: bool
    price_decimals: dict[str, int] = field(default_factory=dict)
    """Decimals of each symbol's prices, from the daemon's ``instruments``."""

    def price(self, value: Any, symbol: Any) -> str:
        """A price to its instrument's decimals: 101.25 for AAPL, 1.08345 for EURUSD;
        up to 8 decimals for a symbol the daemon did not describe."""
        decimals = self.price_decimals.get(str(symbol))
        if decimals is None or not isinstance(value, int | float):
            return number(value)
        return f"{value:,.{decimals}f}"

    async def learn_prices(self, client: OrchestratorClient) -> None:
        """Ask the daemon how each symbol is quoted; without an answer (a daemon that
        predates ``get_instruments``) prices keep up to 8 decimals."""
        try:
            reply = await client.get_instruments()
        except CommandError:
            return
        for entry in reply.get("data") or []:
            if isinstance(entry, dict) and isinstance(entry.get("priceDecimals"), int):
                self.price_decimals[str(entry.get("symbol"))] = entry["priceDecimals"]

    def print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def json(self, value: Any, *, lines: bool = False) -> None:
        text = json.dumps(value, separators=(",", ":")) if lines else json.dumps(value, indent=2)
        self.print(text)

    def paint(self, text: str, style: str | None) -> str:
        if not self.color or style is None or style not in _STYLES:
            return text
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


_STYLES = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2", "bold": "1"}
_STATUS_STYLES = {"ACTIVE": "green", "PAUSED": "yellow", "ERROR": "red", "STOPPED": "dim"}
_EXECUTION_STYLES = {"RUNNING": "green", "STOPPED": "red"}


def _wants_color(stream: TextIO) -> bool:
    return not os.environ.get("NO_COLOR") and stream.isatty()


Cell = str | tuple[str, str | None]
"""Text, or text and a style applied after padding (so colours keep columns aligned)."""


def table(
    out: Output, headers: Sequence[str], rows: Sequence[Sequence[Cell]], numeric: set[int]
) -> str:
    """Columns under their headers: numbers right-aligned, text left-aligned."""
    texts = [[cell if isinstance(cell, str) else cell[0] for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in texts)) for i, h in enumerate(headers)]

    def line(cells: Sequence[Cell]) -> str:
        parts = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            text, style = (cell, None) if isinstance(cell, str) else cell
            padded = text.rjust(width) if i in numeric else text.ljust(width)
            parts.append(out.paint(padded, style))
        return "  ".join(parts).rstrip()

    header = line([(h, "bold") for h in headers])
    return "\n".join([header, line(["-" * w for w in widths]), *map(line, rows)])


def number(value: Any) -> str:
    """Up to 8 decimals, no trailing zeros: 10, 0.5, 101.25."""
    if not isinstance(value, int | float):
        return "-" if value is None else str(value)
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def money(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) else "-"


def _pnl_cell(value: Any) -> Cell:
    if not isinstance(value, int | float):
        return "-"
    return money(value), "green" if value > 0 else "red" if value < 0 else None


def _status_cell(status: Any) -> Cell:
    text = str(status)
    return text, _STATUS_STYLES.get(text)


def positions_text(out: Output, positions: Iterable[dict[str, Any]]) -> str:
    parts = [
        f"{p.get('symbol')} {number(p.get('quantity'))} @ "
        f"{out.price(p.get('entryPrice'), p.get('symbol'))}"
        for p in positions
    ]
    return ", ".join(parts) or "-"


def unrealized_from_positions(positions: Iterable[dict[str, Any]]) -> float:
    """currentValue - quantity x entryPrice, summed: the P&L the positions carry."""
    total = 0.0
    for p in positions:
        value, quantity, entry = p.get("currentValue"), p.get("quantity"), p.get("entryPrice")
        if (
            isinstance(value, int | float)
            and isinstance(quantity, int | float)
            and isinstance(entry, int | float)
        ):
            total += value - quantity * entry
    return total


# ------------------------------------------------------------------ status


async def show_status(args: argparse.Namespace, out: Output) -> int:
    client = make_client(args, args.url)
    execution = client.messages("execution_service_status", maxsize=10)
    async with client:
        reply = await (client.get_strategies() if args.all else client.get_active_strategies())
        account = await _account(client)
        await out.learn_prices(client)
        async with asyncio.timeout(args.timeout):
            # The snapshot's execution_service_status came before any reply.
            status_message = await anext(execution)
    risk_url = args.risk_url or risk_url_for(args.url)
    risk, risk_problem = await _risk_status(args, risk_url)
    strategies = [_with_pnl(entry, risk) for entry in reply["data"]]
    execution_data = status_message["data"]
    kill_switch = risk["killSwitch"] if risk is not None else None
    if args.json:
        out.json(
            {
                "executionStatus": execution_data.get("status"),
                "killSwitch": kill_switch,
                "pnlSource": _pnl_source(reply["data"], risk),
                "account": account,
                "strategies": strategies,
            }
        )
        return EXIT_OK
    status = str(execution_data.get("status"))
    headline = f"execution  {out.paint(status, _EXECUTION_STYLES.get(status))}"
    if kill_switch is not None and kill_switch.get("engaged"):
        headline += "  " + out.paint(f"kill switch engaged: {kill_switch.get('reason')}", "red")
    out.print(headline)
    if account is not None:
        out.print(account_text(account))
    out.print()
    if not strategies:
        out.print("no strategies running (orchestrator status --all lists the catalog)")
    else:
        _print_strategies(out, strategies)
    if risk is None and _pnl_source(reply["data"], risk) == "positions":
        note = f"(risk guardian: {risk_problem}; realized P&L unknown, unrealized from positions)"
        out.print(out.paint(note, "dim"))
    return EXIT_OK


PNL_FIELDS = ("realizedPnlToday", "realizedPnlSinceStart", "unrealizedPnl")
"""The three P&L figures of a strategy entry, a risk status entry and the account."""


def _has_pnl(entry: dict[str, Any]) -> bool:
    return all(isinstance(entry.get(name), int | float) for name in PNL_FIELDS)


def _pnl_source(entries: list[dict[str, Any]], risk: dict[str, Any] | None) -> str:
    """Where status took the P&L from: the risk guardian, the strategy entries
    themselves (the same committed book), or the positions alone (an older daemon)."""
    if risk is not None:
        return "risk_guardian"
    return "strategies" if all(_has_pnl(e) for e in entries) else "positions"


async def _account(client: OrchestratorClient) -> dict[str, Any] | None:
    """The daemon's ``account``, or None from a daemon that predates it."""
    try:
        reply = await client.get_account()
    except CommandError:
        return None
    data = reply.get("data")
    return data if isinstance(data, dict) else None


def account_text(account: dict[str, Any]) -> str:
    """One line: equity, cash, exposure and the P&L totals, each named for its period."""
    return (
        f"account    equity {money(account.get('equity'))}, cash {money(account.get('cash'))}, "
        f"exposure {money(account.get('exposure'))}; realized P&L today "
        f"{money(account.get('realizedPnlToday'))}, since start "
        f"{money(account.get('realizedPnlSinceStart'))}; unrealized "
        f"{money(account.get('unrealizedPnl'))}"
    )


async def _risk_status(args: argparse.Namespace, url: str) -> tuple[dict[str, Any] | None, str]:
    """The risk guardian's status, or None and why (status still works without it)."""
    try:
        async with make_client(args, url, level=logging.ERROR) as risk:
            reply = await risk.get_risk_status()
    except (ConnectionError, TimeoutError, CommandError) as exc:
        return None, str(exc)
    data = reply.get("data")
    return (data, "") if isinstance(data, dict) else (None, f"{url} sent no risk status")


def _with_pnl(entry: dict[str, Any], risk: dict[str, Any] | None) -> dict[str, Any]:
    """``entry`` with its three P&L figures and ``realizedPnl`` (since start)."""
    found = next(
        (s for s in (risk or {}).get("strategies", []) if s.get("strategyId") == entry.get("id")),
        None,
    )
    source = found if found is not None and _has_pnl(found) else entry
    if _has_pnl(source):
        figures = {name: source[name] for name in PNL_FIELDS}
        return {**entry, **figures, "realizedPnl": figures["realizedPnlSinceStart"]}
    positions = entry.get("positions") or []
    realized = found.get("realizedPnl") if found is not None else None
    return {
        **entry,
        "realizedPnlToday": None,
        "realizedPnlSinceStart": realized,
        "unrealizedPnl": unrealized_from_positions(positions),
        "realizedPnl": realized,
    }


def _print_strategies(out: Output, strategies: list[dict[str, Any]]) -> None:
    headers = (
        *("id", "name", "status", "symbols", "positions"),
        *("realized today", "realized since start", "unrealized"),
    )
    rows: list[list[Cell]] = [
        [
            str(s.get("id")),
            str(s.get("name")),
            _status_cell(s.get("status")),
            ",".join(s.get("symbols") or []) or "-",
            positions_text(out, s.get("positions") or []),
            *(_pnl_cell(s.get(name)) for name in PNL_FIELDS),
        ]
        for s in strategies
    ]
    out.print(table(out, headers, rows, numeric={5, 6, 7}))
    totals = [
        money(sum(s[name] for s in strategies if isinstance(s.get(name), int | float)))
        if any(isinstance(s.get(name), int | float) for s in strategies)
        else "-"
        for name in PNL_FIELDS
    ]
    out.print(
        f"total P&L: realized today {totals[0]}, realized since start {totals[1]}, "
        f"unrealized {totals[2]}"
    )


# ------------------------------------------------------------------ start, stop, pause


async def start_strategy(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.start_strategy(
            args.id,
            symbols=args.symbols,
            data_resolution=args.resolution,
            max_position_value=args.max_position_value,
            max_orders_per_minute=args.max_orders_per_minute,
            stop_loss_percentage=args.stop_loss,
            params=dict(args.strategy_params) if args.strategy_params else None,
        )
    return _lifecycle_reply(out, args, reply, "started")


async def stop_strategy(args: argparse.Namespace, out: Output) -> int:
    """Stop a strategy and say what its closing trades did: the daemon sends them
    before the reply, each with what it realized."""
    async with make_client(args, args.url) as client:
        trades = client.messages("strategy_trade", strategy_id=args.id)
        reply = await client.stop_strategy(args.id)
        await trades.aclose()
        await out.learn_prices(client)
        closes = [m["data"] async for m in trades if _closed_by_the_stop(m["data"])]
    if args.json:
        return _lifecycle_reply(out, args, reply, "stopped")
    data = reply.get("data") or {}
    stopped = f"stopped {data.get('strategyId', args.id)} ({data.get('name')})"
    out.print(f"{stopped}: {_closed_text(out, closes)}")
    return EXIT_OK


def _closed_by_the_stop(trade: dict[str, Any]) -> bool:
    """A fill of the stop's own closing orders: the strategy's other fills (its signals,
    its stop-loss) can land while the command is on its way. A daemon older than
    ``purpose`` sends none; then every fill counts."""
    purpose = trade.get("purpose", "strategy_stop")
    return trade.get("status") == "FILLED" and purpose == "strategy_stop"


def _closed_text(out: Output, closes: list[dict[str, Any]]) -> str:
    if not closes:
        return "no position to close"
    parts = [
        f"{'long' if c.get('side') == 'SELL' else 'short'} {number(c.get('quantity'))} "
        f"{c.get('symbol')} at {out.price(c.get('entryPrice'), c.get('symbol'))}"
        for c in closes
    ]
    text = f"closed {', '.join(parts)}"
    realized = [c["realizedPnl"] for c in closes if isinstance(c.get("realizedPnl"), int | float)]
    if len(realized) == len(closes):  # a daemon older than realizedPnl: no figure
        made = sum(realized)
        text += f"; realized P&L {'+' if made > 0 else ''}{money(made)}"
    return text


async def pause_strategy(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.pause_strategy(args.id)
    return _lifecycle_reply(out, args, reply, "paused")


def _lifecycle_reply(out: Output, args: argparse.Namespace, reply: Message, verb: str) -> int:
    if args.json:
        out.json(reply)
        return EXIT_OK
    data = reply.get("data") or {}
    text = f"{verb} {data.get('strategyId', args.id)} ({data.get('name')})"
    if data.get("symbols"):
        text += f" on {', '.join(data['symbols'])}"
    out.print(text)
    return EXIT_OK


# ------------------------------------------------------------------ resting orders


async def show_orders(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.get_open_orders(args.strategy)
        await out.learn_prices(client)
    if args.json:
        out.json(reply)
        return EXIT_OK
    orders = (reply.get("data") or {}).get("orders") or []
    if not orders:
        whose = f" of {args.strategy}" if args.strategy else ""
        out.print(f"no resting orders{whose}")
        return EXIT_OK
    # QTY is what rests; FILLED what its parts filled so far (partial fills), "-": none.
    headers = ["ORDER", "STRATEGY", "SYMBOL", "SIDE", "QTY", "FILLED", "TYPE", "PRICES", "TIF"]
    rows = [_order_row(out, order) for order in orders]
    out.print(table(out, [*headers, "FOR"], rows, numeric={4, 5}))
    return EXIT_OK


def _order_row(out: Output, order: dict[str, Any]) -> list[Cell]:
    side = str(order.get("side"))
    return [
        str(order.get("orderId")),
        str(order.get("strategyId")),
        str(order.get("symbol")),
        (side, _SIDE_STYLES.get(side)),
        number(order.get("quantity")),
        number(order["filled"]) if order.get("filled") else "-",
        str(order.get("orderType")),
        order_prices(out, order),
        str(order.get("timeInForce")),
        _order_purpose(order),
    ]


def order_prices(out: Output, order: dict[str, Any]) -> str:
    """An order's prices in words: "stop 101, limit 101.5; bracket 95 / 110"."""
    symbol = order.get("symbol")
    parts = [
        f"{word} {out.price(order[key], symbol)}"
        for word, key in (("stop", "stopPrice"), ("limit", "limitPrice"))
        if order.get(key) is not None
    ]
    trailing = order.get("trailing")
    if trailing:
        amount = trailing.get("amount")
        parts.append(f"trailing {percent(amount) if trailing.get('fraction') else number(amount)}")
    text = ", ".join(parts) or "-"
    if order.get("stopLoss") is not None or order.get("takeProfit") is not None:
        loss, target = order.get("stopLoss"), order.get("takeProfit")
        text += (
            f"; bracket {out.price(loss, symbol) if loss is not None else '-'} / "
            f"{out.price(target, symbol) if target is not None else '-'}"
        )
    return text


def _order_purpose(order: dict[str, Any]) -> str:
    """What the order is for: an entry, or which exit of which entry."""
    purpose = str(order.get("purpose"))
    if order.get("parentId"):
        return f"{purpose} of {order['parentId']}"
    return "entry" if purpose == "signal" else purpose


async def cancel_order(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.cancel_order(args.order_id)
        await out.learn_prices(client)
    if args.json:
        out.json(reply)
        return EXIT_OK
    data = reply.get("data") or {}
    side = str(data.get("side"))
    out.print(
        f"cancelled {data.get('orderId')}: {out.paint(side, _SIDE_STYLES.get(side))} "
        f"{number(data.get('quantity'))} {data.get('symbol')} {data.get('orderType')} "
        f"({order_prices(out, data)}) of {data.get('strategyId')}"
    )
    return EXIT_OK


# ------------------------------------------------------------------ risk, halt, resume


async def show_risk(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.get_risk_status()
        await out.learn_prices(client)
    if args.json:
        out.json(reply)
        return EXIT_OK
    data = reply["data"]
    limits, usage = data.get("limits") or {}, data.get("usage") or {}
    status = str(data.get("executionStatus"))
    facts = [
        ("execution", out.paint(status, _EXECUTION_STYLES.get(status))),
        ("kill switch", _kill_switch_text(out, data.get("killSwitch") or {})),
        (
            "gross exposure",
            f"{money(usage.get('grossExposure'))} of {money(limits.get('maxGrossExposure'))}",
        ),
        (
            "orders",
            f"{usage.get('ordersLastSecond')} in the last second "
            f"(max {limits.get('maxOrdersPerSecond')})",
        ),
        (
            "daily P&L",
            f"{money(usage.get('dailyPnl'))} since {usage.get('dayStart')} "
            f"(max daily loss {money(limits.get('maxDailyLoss'))})",
        ),
        ("position limit", str(limits.get("positionLimitMode"))),
    ]
    width = max(len(name) for name, _ in facts)
    for name, value in facts:
        out.print(f"{name.ljust(width)}  {value}")
    strategies = data.get("strategies") or []
    out.print()
    if not strategies:
        out.print("no strategies with limits or positions")
        return EXIT_OK
    headers = (
        *("strategy", "status", "exposure", "orders/min", "max position", "stop-loss"),
        *("realized P&L", "unrealized P&L", "positions"),
    )
    rows: list[list[Cell]] = []
    for s in strategies:
        own = s.get("limits") or {}
        stop = own.get("stopLossPercentage")
        rows.append(
            [
                str(s.get("strategyId")),
                _status_cell(s.get("status")),
                money(s.get("exposure")),
                f"{s.get('ordersLastMinute')}/{own.get('maxOrdersPerMinute', '-')}",
                money(own.get("maxPositionValue")),
                f"{stop * 100:g}%" if isinstance(stop, int | float) and stop else "off",
                _pnl_cell(s.get("realizedPnl")),
                _pnl_cell(s.get("unrealizedPnl")),
                positions_text(out, s.get("positions") or []),
            ]
        )
    out.print(table(out, headers, rows, numeric={2, 3, 4, 5, 6, 7}))
    return EXIT_OK


def _kill_switch_text(out: Output, switch: dict[str, Any]) -> str:
    if not switch.get("engaged"):
        return "off"
    scope = "every order blocked" if switch.get("blockAll") else "reduce-only"
    since, source, reason = switch.get("since"), switch.get("source"), switch.get("reason")
    return out.paint(f"ENGAGED ({scope}) since {since} by {source}: {reason}", "red")


async def halt_trading(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.halt_trading(args.reason, args.block_all or args.flatten, args.flatten)
    if args.json:
        out.json(reply)
        return EXIT_OK
    out.print(f"trading halted: {_kill_switch_text(out, reply.get('data') or {})}")
    return EXIT_OK


async def resume_trading(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args, args.url) as client:
        reply = await client.resume_trading(args.reason)
    if args.json:
        out.json(reply)
        return EXIT_OK
    out.print("trading resumed")
    return EXIT_OK


# ------------------------------------------------------------------ venue


async def venue_command(args: argparse.Namespace, out: Output) -> int:
    """``venue status [NAME]`` or ``venue acknowledge NAME [--asset A]``."""
    if args.action == "acknowledge" and not args.name:
        _error(args, "acknowledge needs the venue's name: orchestrator venue acknowledge NAME")
        return EXIT_USAGE
    async with make_client(args, args.url) as client:
        if args.action == "acknowledge":
            request: dict[str, Any] = {"type": "acknowledge_mismatch", "venue": args.name}
            if args.asset:
                request["asset"] = args.asset
            reply = await client.request(request)
        else:
            reply = await client.request({"type": "get_venue_status"})
    if args.json:
        out.json(reply)
        return EXIT_OK
    data = reply.get("data") or {}
    if args.action == "acknowledge":
        for mismatch in data.get("acknowledged") or []:
            out.print(
                f"acknowledged {data.get('venue')} {mismatch.get('asset')}: the venue's "
                f"{number(mismatch.get('actual'))} is the truth from now on (the journal said "
                f"{number(mismatch.get('expected'))})"
            )
        return EXIT_OK
    venues = [v for v in data.get("venues") or [] if not args.name or v.get("name") == args.name]
    if not venues:
        out.print("no such venue" if args.name else "no venue is configured")
        return EXIT_DAEMON_ERROR if args.name else EXIT_OK
    for venue in venues:
        out.print(venue_text(out, venue))
    return EXIT_OK


def venue_text(out: Output, venue: dict[str, Any]) -> str:
    """One venue's connection, last reconciliation and mismatches, for a terminal."""
    sandbox = ", sandbox" if venue.get("sandbox") else ""
    name = f"{venue.get('name')} ({venue.get('exchange')}{sandbox})"
    if not venue.get("connected"):
        state = out.paint(f"DISCONNECTED: {venue.get('reason')}", "red")
    elif venue.get("unreconciled"):
        state = out.paint(f"connected, takes no order: {venue.get('unreconciled')}", "yellow")
    else:
        state = out.paint("connected, takes orders", "green")
    lines = [f"venue {name}: {state}"]
    last = venue.get("lastReconciliation")
    if last:
        lines.append(
            f"  reconciled {last.get('timestamp')}{' (at start)' if last.get('atStart') else ''}: "
            f"{plural(last.get('ordersChecked', 0), 'order')} in flight checked, "
            f"{plural(last.get('fillsRecovered', 0), 'fill')} recovered, "
            f"{last.get('ordersResolved', 0)} resolved, "
            f"{plural(last.get('orphansCancelled', 0), 'orphan')} cancelled"
        )
    else:
        lines.append("  not reconciled yet")
    if venue.get("lastProblem"):
        lines.append(f"  last attempt failed: {venue.get('lastProblem')}")
    for asset, held in (venue.get("positions") or {}).items():
        baseline = (venue.get("baselines") or {}).get(asset)
        lines.append(f"  {asset}: {number(held)} by the journal, baseline {number(baseline)}")
    mismatches = venue.get("mismatches") or []
    for m in mismatches:
        lines.append(
            out.paint(
                f"  MISMATCH {m.get('asset')} since {m.get('since')}: the venue holds "
                f"{number(m.get('actual'))}, the journal says {number(m.get('expected'))}; "
                f"reduce-only: {', '.join(m.get('strategies') or []) or 'no strategy'}",
                "red",
            )
        )
    if not mismatches:
        lines.append("  no position mismatch")
    return "\n".join(lines)


# ------------------------------------------------------------------ watch


async def watch(args: argparse.Namespace, out: Output) -> int:
    types = frozenset(t for group in args.types for t in group) if args.types else WATCH_TYPES
    strategies = {s for group in args.strategies for s in group} if args.strategies else None
    from_8082 = types & ORCHESTRATOR_TYPES
    # execution_service_status comes from 8082, or from 3002 when only risk events are asked.
    from_3002 = types & RISK_TYPES if from_8082 else types & (RISK_TYPES | frozenset(STATUS))
    sources = [(args.url, from_8082)]
    if not args.no_risk:
        sources.append((args.risk_url or risk_url_for(args.url), from_3002))
    merged: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=1000)
    async with AsyncExitStack() as stack:
        streams: list[MessageStream] = []
        clients: list[OrchestratorClient] = []
        for url, wanted in sources:
            if wanted:
                client = make_client(args, url, reconnect=True)
                streams.append(client.messages(wanted | {"resync_required"}))
                clients.append(await stack.enter_async_context(client))
        if not streams:
            _error(args, "nothing to watch: --no-risk leaves none of the types asked for")
            return EXIT_USAGE
        await out.learn_prices(clients[0])
        if strategies is not None:
            # Every server answers strategy commands: ask the first one for the catalog.
            problem = await _unknown_strategies(clients[0], strategies)
            if problem:
                _error(args, problem)
                return EXIT_USAGE
        print(_watch_banner(types, strategies, [c.url for c in clients]), file=sys.stderr)
        forwarders = [asyncio.create_task(_forward(stream, merged)) for stream in streams]
        stack.callback(lambda: [task.cancel() for task in forwarders])
        shown, open_streams = 0, len(streams)
        folder = RepeatedRefusals()
        try:
            while args.count is None or shown < args.count:
                message = await merged.get()
                if message is None:
                    open_streams -= 1
                    if not open_streams:
                        return EXIT_UNREACHABLE
                    continue
                if _show(message, strategies):
                    shown += _print_event(out, args.json, folder, message)
        finally:
            for line in folder.flush():
                out.print(line)
    return EXIT_OK


def _print_event(out: Output, as_json: bool, folder: RepeatedRefusals, message: Message) -> int:
    """Print one event (JSON lines are never folded); how many events it counts as."""
    if as_json:
        out.json(message, lines=True)
        return 1
    lines = folder.lines(message, watch_line(out, message))
    for line in lines:
        out.print(line)
    return 1 if lines else 0


@dataclass
class RepeatedRefusals:
    """Folds a refusal that repeats its strategy's last one, as syslog folds "last message
    repeated N times": a strategy refused on every bar shows one line, then a count
    once something other than a signal happens to it (or the watch ends), not a line
    a bar."""

    _last: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def lines(self, message: Message, line: str) -> list[str]:
        raw = message.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        strategy = str(data.get("strategyId") or "-")
        if not _is_refusal(message):
            # A signal is what each refusal answers: it does not end the repetition.
            ended = message.get("type") != "strategy_signal"
            return [*(self._flush(strategy) if ended else []), line]
        key, what = (str(message.get("type")), strategy), line.split("  ", 1)[-1]
        seen, count = self._last.get(key, ("", 0))
        if seen == what:
            self._last[key] = (what, count + 1)
            return []
        summary = self._summary(key) if count > 1 else []
        self._last[key] = (what, 1)
        return [*summary, line]

    def flush(self) -> list[str]:
        return [line for key in list(self._last) for line in self._summary(key)]

    def _flush(self, strategy: str) -> list[str]:
        return [
            line for key in list(self._last) if key[1] == strategy for line in self._summary(key)
        ]

    def _summary(self, key: tuple[str, str]) -> list[str]:
        _, count = self._last.pop(key)
        if count < 2:
            return []
        return [f"{'':12}  {'':{_LABEL_WIDTH}}  {key[1]:<18}  the refusal above x{count} in all"]


def _is_refusal(message: Message) -> bool:
    data = message.get("data")
    rejected = isinstance(data, dict) and data.get("status") == "REJECTED"
    kind = message.get("type")
    return kind == "order_rejected" or (kind == "strategy_trade" and rejected)


async def _unknown_strategies(client: OrchestratorClient, wanted: set[str]) -> str:
    """What is wrong with ``--strategy``: ids the catalog does not have ('' if none)."""
    catalog = (await client.get_strategies()).get("data") or []
    known = sorted(str(entry.get("id")) for entry in catalog if isinstance(entry, dict))
    unknown = sorted(wanted - set(known))
    if not unknown:
        return ""
    what = "no strategy" if len(unknown) == 1 else "no strategies"
    return f"{what} {', '.join(map(repr, unknown))}; known ids: {', '.join(known) or 'none'}"


def _watch_banner(types: frozenset[str], strategies: set[str] | None, urls: list[str]) -> str:
    """The first line of ``watch``: what it shows, from where, and how to stop it."""
    groups = [name for name, members in WATCH_GROUPS.items() if set(members) <= types]
    grouped = {t for name in groups for t in WATCH_GROUPS[name]}
    what = _and_list([*(_GROUP_WORDS[g] for g in groups), *sorted(types - grouped)])
    whose = f"strategies {', '.join(sorted(strategies))}" if strategies else "every strategy"
    return f"watching {what} of {whose} on {' and '.join(urls)}; Ctrl-C to stop"


_GROUP_WORDS = {
    "signals": "signals",
    "trades": "trades",
    "status": "status changes",
    "orders": "resting orders",
    "risk": "risk events",
}


def _and_list(items: Sequence[str]) -> str:
    """a, b and c."""
    return items[0] if len(items) < 2 else f"{', '.join(items[:-1])} and {items[-1]}"


async def _forward(stream: MessageStream, merged: asyncio.Queue[Message | None]) -> None:
    async for message in stream:
        await merged.put(message)
    await merged.put(None)  # the client closed for good


def _show(message: Message, strategies: set[str] | None) -> bool:
    if message.get("snapshot") is True:
        return False  # the state at connection time, not an event
    if message["type"] == "resync_required":
        data = message.get("data") or {}
        print(f"orchestrator watch: messages were missed: {data.get('reason')}", file=sys.stderr)
        return False
    data = message.get("data")
    strategy = data.get("strategyId") if isinstance(data, dict) else None
    return strategies is None or strategy is None or strategy in strategies


_LABELS = {
    "strategy_signal": ("signal", "cyan"),
    "strategy_trade": ("trade", "bold"),
    "strategy_started": ("started", "green"),
    "strategy_paused": ("paused", "yellow"),
    "strategy_stopped": ("stopped", "yellow"),
    "strategy_error": ("error", "red"),
    "execution_service_status": ("execution", "yellow"),
    "order_rejected": ("rejected", "red"),
    "order_reduced": ("reduced", "yellow"),
    "stop_loss_triggered": ("stop-loss", "red"),
    "limit_breach": ("breach", "red"),
    "kill_switch": ("kill switch", "red"),
}
_LABEL_WIDTH = max(len(label) for label, _ in _LABELS.values())
_SIDE_STYLES = {"BUY": "green", "SELL": "red"}


def watch_line(out: Output, message: Message) -> str:
    """One readable line: time, kind, strategy, what happened."""
    kind = str(message.get("type"))
    raw = message.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    label, style = _LABELS.get(kind, (kind, None))
    stamp = str(message.get("timestamp", ""))
    time_part = stamp[11:23] if len(stamp) >= 23 else stamp
    strategy = str(data.get("strategyId") or "-")
    return "  ".join(
        [
            out.paint(time_part, "dim"),
            out.paint(label.ljust(_LABEL_WIDTH), style),
            strategy.ljust(18),
            _describe(out, kind, data),
        ]
    ).rstrip()


def _describe(out: Output, kind: str, d: dict[str, Any]) -> str:
    side = d.get("side") or d.get("action")
    painted = out.paint(str(side), _SIDE_STYLES.get(str(side)))
    symbol = d.get("symbol")

    def price(key: str) -> str:
        return out.price(d.get(key), symbol)

    order = f"{painted} {number(d.get('quantity'))} {d.get('symbol')}"
    if kind == "strategy_signal":
        reason = (d.get("metadata") or {}).get("reason")
        text = f"{order} @ {price('price')}  confidence {number(d.get('confidence'))}"
        return f"{text}  ({reason})" if reason else text
    if kind == "strategy_trade":
        if d.get("status") == "REJECTED":
            return f"{order} {out.paint('REJECTED', 'red')}: {d.get('reason')}"
        return f"{order} @ {price('entryPrice')}  {d.get('status')}  {d.get('orderId')}"
    if kind == "strategy_started":
        return f"{d.get('name')} on {', '.join(d.get('symbols') or [])}"
    if kind in ("strategy_paused", "strategy_stopped"):
        return str(d.get("name"))
    if kind == "strategy_error":
        return f"{d.get('name')}: {d.get('error')}"
    if kind == "execution_service_status":
        status = str(d.get("status"))
        text = out.paint(status, _EXECUTION_STYLES.get(status))
        return f"{text}: {d['reason']}" if d.get("reason") else text
    if kind in ORDERS:
        return _order_event_text(out, kind, order, d)
    if kind == "order_rejected":
        return f"{order}: {d.get('reason')}"
    if kind == "order_reduced":
        return f"{order} sent as {number(d.get('reducedQuantity'))}: {d.get('reason')}"
    if kind == "stop_loss_triggered":
        return (
            f"{order} at {price('triggerPrice')} (entry {price('entryPrice')}, "
            f"stop {price('stopPrice')}, P&L {money(d.get('unrealizedPnl'))})"
        )
    if kind == "limit_breach":
        return f"{d.get('limit')}: {d.get('reason')} (action {d.get('action')})"
    if kind == "kill_switch":
        return _kill_switch_text(out, d) if d.get("engaged") else out.paint("released", "green")
    return json.dumps(d, separators=(",", ":"))


def _order_event_text(out: Output, kind: str, order: str, d: dict[str, Any]) -> str:
    text = f"{order} {d.get('orderType')} ({order_prices(out, d)})  {d.get('orderId')}"
    if kind == "order_triggered":
        return f"{text} at {out.price(d.get('triggerPrice'), d.get('symbol'))}"
    if kind in ("order_cancelled", "order_expired"):
        return f"{text}: {d.get('reason')}"
    if kind == "order_partially_filled":
        part = (
            f"{number(d.get('filledQuantity'))} at {out.price(d.get('fillPrice'), d.get('symbol'))}"
        )
        return f"{text} filled {part}, {number(d.get('quantity'))} rest"
    return text


# ------------------------------------------------------------------ backtest


async def run_backtest(args: argparse.Namespace, out: Output) -> int:
    """Submit a backtest job and follow its states until it completes or fails; a
    progress bar meanwhile on a terminal."""
    if args.report and _taken(args.report) and not args.force:
        _error(args, f"{args.report} exists; add --force to overwrite it")
        return EXIT_USAGE
    async with make_client(args, args.url) as client:
        # Subscribed before submitting: nothing is missed.
        states = client.messages(("backtest_job", "backtest_progress"))
        reply = await client.request(_backtest_command(args))
        job_id = reply["data"]["jobId"]
        if args.no_wait:
            return _job_line(out, args, reply["data"])
        bar = ProgressBar(out.stream) if not args.json else None
        async for message in states:
            data = message["data"]
            if data.get("jobId") != job_id:
                continue
            if message["type"] == "backtest_progress":
                if bar is not None:
                    bar.show(data.get("fraction", 0.0), data["barsDone"], data["barsTotal"])
            elif data["status"] in ("completed", "failed"):
                if bar is not None:
                    bar.clear()
                code = _job_line(out, args, data)
                if code == EXIT_OK and args.report:
                    code = await _save_report(args, out, job_id)
                return code
    raise ConnectionLost("the connection closed before the job finished")


async def run_sweep(args: argparse.Namespace, out: Output) -> int:
    """Submit a sweep and follow it to its end: a progress bar on a terminal, then the
    best trial and the table of the best ones."""
    if args.report and _taken(args.report) and not args.force:
        _error(args, f"{args.report} exists; add --force to overwrite it")
        return EXIT_USAGE
    async with make_client(args, args.url) as client:
        states = client.messages(("sweep_job", "sweep_progress"))
        reply = await client.request(_sweep_command(args))
        job_id = reply["data"]["jobId"]
        if args.no_wait:
            return _sweep_line(out, args, reply["data"])
        bar = TrialsBar(out.stream) if not args.json else None
        async for message in states:
            data = message["data"]
            if data.get("jobId") != job_id:
                continue
            if message["type"] == "sweep_progress":
                if bar is not None:
                    bar.show(data)
            elif data["status"] in ("completed", "failed"):
                if bar is not None:
                    bar.clear()
                code = _sweep_line(out, args, data)
                if code == EXIT_OK and args.report:
                    code = await _save_report(args, out, job_id, "sweeps")
                return code
    raise ConnectionLost("the connection closed before the sweep finished")


def _sweep_command(args: argparse.Namespace) -> dict[str, Any]:
    command = _backtest_command(args)
    objective: dict[str, Any] = {
        "metric": args.objective,
        "direction": "minimize" if args.minimize else "maximize",
        "minTrades": args.min_trades,
    }
    if args.max_drawdown is not None:
        objective["maxDrawdownPct"] = args.max_drawdown
    command |= {
        "type": "run_sweep",
        "parameters": dict(args.params),
        "objective": objective,
        "method": args.method,
        "seed": args.sampler_seed,
    }
    if args.trials is not None:
        command["trials"] = args.trials
    if args.heatmap:
        command["heatmap"] = args.heatmap
    if args.walk_forward:
        command["walkForward"] = {
            "windows": args.walk_forward,
            "trainRatio": args.train_ratio,
            "anchored": args.anchored,
        }
    return command


def _sweep_line(out: Output, args: argparse.Namespace, data: dict[str, Any]) -> int:
    status = data["status"]
    if args.json:
        out.json(data)
    elif status == "failed":
        out.print(f"sweep {data['jobId']} failed: {data.get('error')}")
    elif status != "completed":
        out.print(f"sweep {data['jobId']} {status}")
    else:
        result = data.get("result") or {}
        out.print(
            f"sweep {data['jobId']} completed: {plural(result.get('trials_total', 0), 'trial')}"
            f" ({result.get('trials_computed', 0):,} computed now)"
        )
        for line in _sweep_summary(result, args):
            out.print(line)
    return EXIT_DAEMON_ERROR if status == "failed" else EXIT_OK


def _sweep_summary(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    minimize = (result.get("objective") or {}).get("direction") == "minimize"
    windows = result.get("windows")
    if isinstance(windows, list):
        lines = [
            f"window {w.get('index')}: {', '.join(best_lines(w)[1:]) or 'no feasible trial'}"
            for w in windows
        ]
        oos = (result.get("out_of_sample") or {}).get("statistics")
        if isinstance(oos, dict):
            lines += ["", "out of sample, stitched:", *statistics_table(oos)]
        return lines
    return [*best_lines(result), "", *trials_table(result.get("trials") or [], args.top, minimize)]


def _backtest_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.files:
        source: dict[str, Any] = {"kind": "files", "paths": args.files}
    elif args.file:
        source = {"kind": "file", "path": args.file}
    else:
        # What is not given is left to the daemon, so that the CLI runs its defaults.
        given = {
            "durationSeconds": args.duration,
            "seed": args.seed,
            "resolution": args.resolution or None,
        }
        source = {"kind": "synthetic"} | {k: v for k, v in given.items() if v is not None}
    command: dict[str, Any] = {"type": "run_backtest", "strategyId": args.id, "source": source}
    if args.symbol:
        command["symbol"] = args.symbol.upper()
    strategy_params = getattr(args, "strategy_params", None)  # a sweep's --param are ranges
    if strategy_params:
        command["params"] = dict(strategy_params)
    if args.symbols:
        command["symbols"] = args.symbols
    if args.capital is not None:
        command["initialCapital"] = args.capital
    if args.partial_fills:
        command["partialFills"] = True
    if args.max_volume_fraction is not None:
        command["maxVolumeFraction"] = args.max_volume_fraction
    return command


def report_url(ws_url: str, job_id: str, jobs: str = "backtests") -> str:
    """The HTTP address of a job's HTML report (``jobs``: backtests or sweeps) on the
    server of ``ws_url``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}/api/{jobs}/{job_id}/report.html"


async def _save_report(
    args: argparse.Namespace, out: Output, job_id: str, jobs: str = "backtests"
) -> int:
    url = report_url(args.url, job_id, jobs)
    token = args.token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        size = await asyncio.to_thread(_fetch_to, request, args.timeout, Path(args.report))
    except urllib.error.HTTPError as refusal:
        why = refusal.read().decode(errors="replace").strip()
        _error(args, f"{url} answered {refusal.code}: {why}")
        return EXIT_DAEMON_ERROR
    except (OSError, TimeoutError) as exc:
        _error(args, f"could not fetch the report from {url} into {args.report}: {exc}")
        return EXIT_UNREACHABLE
    if not args.json:
        out.print(f"report saved to {args.report} ({size:,} bytes; it needs no network)")
    return EXIT_OK


def _taken(path: str) -> bool:
    return Path(path).exists()


def _fetch_to(request: urllib.request.Request, timeout: float, path: Path) -> int:
    """Fetch ``request``'s body into ``path``; its size."""
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
    path.write_bytes(body)
    return len(body)


def _job_line(out: Output, args: argparse.Namespace, data: dict[str, Any]) -> int:
    failed = data["status"] == "failed"
    if args.json:
        out.json(data)
    elif failed:
        out.print(f"backtest {data['jobId']} failed: {data.get('error')}")
    elif data["status"] != "completed":
        out.print(f"backtest {data['jobId']} {data['status']}")
    else:
        result = data.get("result") or {}
        trades = result.get("total_trades")
        out.print(
            f"backtest {data['jobId']} completed: "
            f"{plural(trades, 'trade') if isinstance(trades, int) else '? trades'}, "
            f"win rate {percent(result.get('win_rate'))}, "
            f"return {percent(result.get('total_return'), signed=True)}"
        )
        statistics = result.get("statistics")
        if isinstance(statistics, dict):
            out.print()
            for line in statistics_table(statistics):
                out.print(line)
        per_symbol = result.get("per_symbol")
        if isinstance(per_symbol, list) and per_symbol:
            out.print()
            for line in symbols_table(per_symbol):
                out.print(line)
    return EXIT_DAEMON_ERROR if failed else EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Awaitable[int]]] = {
    "status": show_status,
    "start": start_strategy,
    "stop": stop_strategy,
    "pause": pause_strategy,
    "orders": show_orders,
    "cancel-order": cancel_order,
    "watch": watch,
    "risk": show_risk,
    "halt": halt_trading,
    "resume": resume_trading,
    "backtest": run_backtest,
    "sweep": run_sweep,
    "venue": venue_command,
}
