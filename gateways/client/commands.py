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

from gateways.client.backtest_text import ProgressBar, statistics_table
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
WATCH_GROUPS = {"signals": SIGNALS, "trades": TRADES, "status": STATUS, "risk": RISK_EVENTS}
ORCHESTRATOR_TYPES = frozenset((*SIGNALS, *TRADES, *STATUS))
RISK_TYPES = frozenset(RISK_EVENTS)
WATCH_TYPES = ORCHESTRATOR_TYPES | RISK_TYPES

RISK_COMMANDS = frozenset({"risk", "halt", "resume"})
"""The commands for the risk guardian (3002), not the orchestrator server."""

CLIENT_COMMANDS = frozenset(
    {"status", "start", "stop", "pause", "watch", "risk", "halt", "resume", "backtest", "venue"}
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
    stop = _command(commands, "stop", "stop a strategy (closing its positions)")
    stop.add_argument("id", help="strategy id")
    stop.add_argument(
        "--risk-url",
        type=_ws_url,
        help="risk guardian for the P&L of the closing trades (default: as for status)",
    )
    _command(commands, "pause", "pause a strategy").add_argument("id", help="strategy id")

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
    resume = _command(commands, "resume", "release the kill switch", DEFAULT_RISK_URL)
    resume.add_argument("--reason", help="why trading resumes")
    venue = _command(commands, "venue", "live venues: status, or acknowledge a position mismatch")
    venue.add_argument("action", choices=("status", "acknowledge"))
    venue.add_argument("name", nargs="?", help="the venue (acknowledge: required)")
    venue.add_argument("--asset", help="acknowledge only this asset's mismatch (e.g. BTC)")
    _add_backtest_parser(commands)


def _add_backtest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backtest = _command(commands, "backtest", "backtest a catalog strategy as a job of the daemon")
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
    backtest.add_argument("--resolution", help="bar resolution (default: the strategy's)")
    backtest.add_argument("--seed", type=int, help="synthetic feed seed (default: the daemon's, 7)")
    backtest.add_argument(
        "--no-wait", action="store_true", help="print the job id and return without waiting"
    )
    backtest.add_argument(
        "--report",
        metavar="FILE.html",
        help="save the job's HTML report (charts, statistics, trades) to this file",
    )
    backtest.add_argument(
        "--force", action="store_true", help="let --report overwrite an existing file"
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


FLAGS_OF_FIELDS = {
    "backtest": {
        "source.durationSeconds": "--duration",
        "source.resolution": "--resolution",
        "source.seed": "--seed",
        "source.path": "--file",
        "durationSeconds": "--duration",
        "symbol": "--symbol",
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
                "pnlSource": "risk_guardian" if risk is not None else "positions",
                "strategies": strategies,
            }
        )
        return EXIT_OK
    status = str(execution_data.get("status"))
    headline = f"execution  {out.paint(status, _EXECUTION_STYLES.get(status))}"
    if kill_switch is not None and kill_switch.get("engaged"):
        headline += "  " + out.paint(f"kill switch engaged: {kill_switch.get('reason')}", "red")
    out.print(headline)
    out.print()
    if not strategies:
        out.print("no strategies running (orchestrator status --all lists the catalog)")
    else:
        _print_strategies(out, strategies)
    if risk is None:
        note = f"(risk guardian: {risk_problem}; realized P&L unknown, unrealized from positions)"
        out.print(out.paint(note, "dim"))
    return EXIT_OK


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
    positions = entry.get("positions") or []
    if risk is None:
        return {**entry, "realizedPnl": None, "unrealizedPnl": unrealized_from_positions(positions)}
    found = next(
        (s for s in risk.get("strategies", []) if s.get("strategyId") == entry.get("id")), None
    )
    if found is None:
        return {**entry, "realizedPnl": None, "unrealizedPnl": unrealized_from_positions(positions)}
    return {
        **entry,
        "realizedPnl": found.get("realizedPnl"),
        "unrealizedPnl": found.get("unrealizedPnl"),
    }


def _print_strategies(out: Output, strategies: list[dict[str, Any]]) -> None:
    headers = ("id", "name", "status", "symbols", "positions", "realized P&L", "unrealized P&L")
    rows: list[list[Cell]] = [
        [
            str(s.get("id")),
            str(s.get("name")),
            _status_cell(s.get("status")),
            ",".join(s.get("symbols") or []) or "-",
            positions_text(out, s.get("positions") or []),
            _pnl_cell(s.get("realizedPnl")),
            _pnl_cell(s.get("unrealizedPnl")),
        ]
        for s in strategies
    ]
    out.print(table(out, headers, rows, numeric={5, 6}))
    realized = [
        s["realizedPnl"] for s in strategies if isinstance(s.get("realizedPnl"), int | float)
    ]
    unrealized = sum(
        s["unrealizedPnl"] for s in strategies if isinstance(s.get("unrealizedPnl"), int | float)
    )
    total = f"total: unrealized P&L {money(unrealized)}"
    if realized:
        total = f"total: realized P&L {money(sum(realized))}, unrealized P&L {money(unrealized)}"
    out.print(total)


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
        )
    return _lifecycle_reply(out, args, reply, "started")


async def stop_strategy(args: argparse.Namespace, out: Output) -> int:
    """Stop a strategy and say what its closing trades did: the daemon sends them
    before the reply, and the risk guardian's realized P&L tells what they made."""
    before = await _realized_pnl(args, args.id)
    async with make_client(args, args.url) as client:
        trades = client.messages("strategy_trade", strategy_id=args.id)
        reply = await client.stop_strategy(args.id)
        await trades.aclose()
        await out.learn_prices(client)
        closes = [m["data"] async for m in trades if m["data"].get("status") == "FILLED"]
    if args.json:
        return _lifecycle_reply(out, args, reply, "stopped")
    after = await _realized_pnl(args, args.id) if closes else None
    data = reply.get("data") or {}
    stopped = f"stopped {data.get('strategyId', args.id)} ({data.get('name')})"
    out.print(f"{stopped}: {_closed_text(out, closes, before, after)}")
    return EXIT_OK


async def _realized_pnl(args: argparse.Namespace, strategy_id: str) -> float | None:
    """The strategy's realized P&L by the risk guardian; None when it does not answer."""
    risk, _ = await _risk_status(args, args.risk_url or risk_url_for(args.url))
    strategies = risk.get("strategies", []) if risk is not None else []
    found = next((s for s in strategies if s.get("strategyId") == strategy_id), None)
    value = found.get("realizedPnl") if found is not None else (0.0 if risk else None)
    return float(value) if isinstance(value, int | float) else None


def _closed_text(
    out: Output, closes: list[dict[str, Any]], before: float | None, after: float | None
) -> str:
    if not closes:
        return "no position to close"
    parts = [
        f"{'long' if c.get('side') == 'SELL' else 'short'} {number(c.get('quantity'))} "
        f"{c.get('symbol')} at {out.price(c.get('entryPrice'), c.get('symbol'))}"
        for c in closes
    ]
    text = f"closed {', '.join(parts)}"
    if before is not None and after is not None:
        made = after - before
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
        reply = await client.halt_trading(args.reason, args.block_all)
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


def _backtest_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        source: dict[str, Any] = {"kind": "file", "path": args.file}
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
    return command


def report_url(ws_url: str, job_id: str) -> str:
    """The HTTP address of a job's HTML report on the server of ``ws_url``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}/api/backtests/{job_id}/report.html"


async def _save_report(args: argparse.Namespace, out: Output, job_id: str) -> int:
    url = report_url(args.url, job_id)
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
    return EXIT_DAEMON_ERROR if failed else EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace, Output], Awaitable[int]]] = {
    "status": show_status,
    "start": start_strategy,
    "stop": stop_strategy,
    "pause": pause_strategy,
    "watch": watch,
    "risk": show_risk,
    "halt": halt_trading,
    "resume": resume_trading,
    "backtest": run_backtest,
    "venue": venue_command,
}
