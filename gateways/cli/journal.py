"""``orchestrator journal``: trades and positions from the journal, and a CSV export.

The journal is opened read-only, so this works while the daemon runs (WAL lets
readers in beside the writer) and never changes the file. Where the journal is:
``--file``, else ``--state-dir`` (with the config's file name), else the config's
``[journal]`` section (``--config``, the environment, the embedded defaults).

Keys of ``--json`` and columns of the CSV export are camelCase, as on the wire.

Exit codes: 0 done, 1 the export cannot be written (or would overwrite a file
without ``--force``), 2 no journal there, a journal that cannot be used
(corrupt, newer, foreign: the daemon exits 2 for it too), a bad config or a usage
error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from gateways.client.text import plural
from gateways.config import load_config
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import (
    Journal,
    JournalError,
    JournalNotFound,
    PositionSnapshot,
    journal_path,
)
from orchestrator.model.clock import iso_utc
from orchestrator.model.errors import ConfigError
from orchestrator.model.orders import Fill, TradeStatus
from orchestrator.trading.portfolio import PortfolioBook

EXIT_OK = 0
EXIT_EXPORT_FAILED = 1
EXIT_JOURNAL = 2
EXIT_USAGE = 2

DEFAULT_LIMIT = 50

TRADE_FIELDS = (
    "time",
    "ts",
    "id",
    "orderId",
    "strategyId",
    "symbol",
    "side",
    "quantity",
    "price",
    "commission",
    "realizedPnl",
    "status",
    "reason",
)
"""Columns of the CSV export and keys of ``trades --json``. ``realizedPnl`` is what a
fill added to realized P&L (the closed part's price move less its commission), so
a strategy's fills add up to its position's realized P&L; empty (null) for a
rejection."""

POSITION_FIELDS = (
    "strategyId",
    "symbol",
    "quantity",
    "entryPrice",
    "realizedPnl",
    "time",
    "ts",
    "fillId",
)
"""Keys of ``positions --json``; ``entryPrice`` is null for a flat position."""


def add_journal_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``journal`` and its subcommands to the ``orchestrator`` parser."""
    journal = commands.add_parser(
        "journal",
        help="show trades and positions from the journal, export trades as CSV",
        description="Read the daemon's journal (read-only; works while the daemon runs).",
    )
    _add_location_options(journal, default=None)
    # The same options after the action (`journal trades --state-dir D`): SUPPRESS keeps
    # an action's parser from resetting what was given before the action.
    location = argparse.ArgumentParser(add_help=False)
    _add_location_options(location, default=argparse.SUPPRESS)
    actions = journal.add_subparsers(dest="journal_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, description=help, parents=[location])

    trades = action("trades", "fills and rejections, oldest first")
    trades.add_argument("--strategy", metavar="ID", help="only this strategy's trades")
    trades.add_argument(
        "--limit",
        type=_non_negative,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"the last N trades (default {DEFAULT_LIMIT}; 0 for all)",
    )
    trades.add_argument("--json", action="store_true", help="a JSON array instead of a table")

    positions = action("positions", "every position after its last fill, with realized P&L")
    positions.add_argument("--strategy", metavar="ID", help="only this strategy's positions")
    positions.add_argument("--json", action="store_true", help="a JSON array instead of a table")

    export = action("export", "write every trade to a CSV file with a header")
    export.add_argument(
        "--output", type=Path, required=True, metavar="FILE", help="CSV file to write; - for stdout"
    )
    export.add_argument("--strategy", metavar="ID", help="only this strategy's trades")
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def _add_location_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML config whose [journal] section locates the journal",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-dir", type=Path, default=default, help="the daemon's state directory"
    )
    where.add_argument("--file", type=Path, default=default, help="the journal file itself")


def journal_command(args: argparse.Namespace) -> int:
    """Run ``orchestrator journal ...``; returns the exit code."""
    if args.file is not None and args.state_dir is not None:
        _error("--file and --state-dir exclude each other: give one")
        return EXIT_USAGE
    try:
        path = locate(args)
    except ConfigError as exc:
        _error(exc.message, *(p for p in exc.problems if p != exc.message))
        return EXIT_JOURNAL
    action = _ACTIONS[args.journal_command]
    try:
        with Journal.open_readonly(path) as journal:
            return action(journal, args)
    except JournalNotFound:
        _error(
            f"no journal at {path}",
            "the daemon has not run with this state directory yet; "
            "point at one with --state-dir DIR or --file PATH",
        )
        return EXIT_JOURNAL
    except JournalError as exc:
        _error(exc.message)
        return EXIT_JOURNAL
    except BrokenPipeError:
        # `orchestrator journal trades | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def locate(args: argparse.Namespace) -> Path:
    if args.file is not None:
        return Path(args.file)
    config = load_config(args.config).journal if args.config is not None else _env_config()
    if args.state_dir is not None:
        return Path(args.state_dir) / config.file_name
    return journal_path(config)


def _env_config() -> JournalConfig:
    """The embedded defaults with the environment on top, as the daemon sees them."""
    return load_config(None).journal


# ------------------------------------------------------------------ actions


def show_trades(journal: Journal, args: argparse.Namespace) -> int:
    limit = args.limit or None
    # Every fill of the strategies shown is replayed: a closing fill's P&L needs its entries.
    history = journal.fills(strategy_id=args.strategy)
    realized = realized_pnl_by_fill(history)
    fills = history[-limit:] if limit is not None else history
    if args.json:
        _print_json([_trade_row(fill, realized) for fill in fills])
        return EXIT_OK
    if not fills:
        print("no trades" + (f" for {args.strategy}" if args.strategy else ""))
        return EXIT_OK
    headers = (
        *("time", "strategy", "symbol", "side", "quantity", "price", "commission", "P&L"),
        *("status", "trade", "order", "reason"),
    )
    rows = [
        (
            iso_utc(f.ts),
            f.strategy_id,
            f.symbol,
            f.side.value,
            _number(f.quantity),
            _number(f.price) if f.status is TradeStatus.FILLED else "-",
            _money(f.commission),
            _optional_money(realized.get(f.id)),
            f.status.value,
            f.id,
            f.order_id,
            f.reason or "",
        )
        for f in fills
    ]
    print(table(headers, rows, numeric={4, 5, 6, 7}))
    if limit is not None and len(fills) == limit:
        print(f"(the last {plural(limit, 'trade')}; --limit 0 shows all)")
    return EXIT_OK


def show_positions(journal: Journal, args: argparse.Namespace) -> int:
    positions = [p for p in journal.positions() if args.strategy in (None, p.strategy_id)]
    if args.json:
        _print_json([_position_row(p) for p in positions])
        return EXIT_OK
    if not positions:
        print("no positions" + (f" for {args.strategy}" if args.strategy else ""))
        return EXIT_OK
    headers = ("strategy", "symbol", "quantity", "entry price", "realized P&L", "last fill")
    rows = [
        (
            p.strategy_id,
            p.symbol,
            _number(p.quantity),
            _number(p.entry_price) if p.quantity else "-",
            _money(p.realized_pnl),
            iso_utc(p.ts),
        )
        for p in positions
    ]
    print(table(headers, rows, numeric={2, 3, 4}))
    print(f"realized P&L: {_money(sum(p.realized_pnl for p in positions))}")
    return EXIT_OK


def export_trades(journal: Journal, args: argparse.Namespace) -> int:
    fills = journal.fills(strategy_id=args.strategy)
    if str(args.output) == "-":
        write_csv(sys.stdout, fills)
        return EXIT_OK
    try:
        mode: Literal["w", "x"] = "w" if args.force else "x"
        with Path(args.output).open(mode, newline="", encoding="utf-8") as handle:
            write_csv(handle, fills)
    except FileExistsError:
        _error(f"{args.output} exists; add --force to overwrite it")
        return EXIT_EXPORT_FAILED
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc.strerror or exc}")
        return EXIT_EXPORT_FAILED
    print(f"exported {plural(len(fills), 'trade')} to {args.output}", file=sys.stderr)
    return EXIT_OK


_ACTIONS: dict[str, Callable[[Journal, argparse.Namespace], int]] = {
    "trades": show_trades,
    "positions": show_positions,
    "export": export_trades,
}


# ------------------------------------------------------------------ formats


def realized_pnl_by_fill(fills: Sequence[Fill]) -> dict[str, float | None]:
    """What each fill added to realized P&L, replaying ``fills`` in order: the closed
    part's price move less the fill's commission (an opening fill: its commission);
    None for a rejection. ``fills`` must hold every fill of the strategies it covers."""
    book = PortfolioBook()
    realized: dict[str, float | None] = {}
    for fill in fills:
        change = book.apply_fill(fill)
        realized[fill.id] = change.realized_pnl if fill.status is TradeStatus.FILLED else None
    return realized


def write_csv(stream: TextIO, fills: Sequence[Fill]) -> None:
    """A header, then one row per trade; numbers at full precision, UTC times."""
    writer = csv.DictWriter(stream, fieldnames=TRADE_FIELDS, lineterminator="\n")
    writer.writeheader()
    realized = realized_pnl_by_fill(fills)
    for fill in fills:
        writer.writerow(_trade_row(fill, realized))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Columns under their headers: numbers right-aligned, text left-aligned."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _trade_row(fill: Fill, realized: dict[str, float | None]) -> dict[str, Any]:
    return {
        "time": iso_utc(fill.ts),
        "ts": fill.ts,
        "id": fill.id,
        "orderId": fill.order_id,
        "strategyId": fill.strategy_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": fill.price,
        "commission": fill.commission,
        "realizedPnl": realized.get(fill.id),
        "status": fill.status.value,
        "reason": fill.reason,
    }


def _position_row(position: PositionSnapshot) -> dict[str, Any]:
    return {
        "strategyId": position.strategy_id,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "entryPrice": position.entry_price if position.quantity else None,
        "realizedPnl": position.realized_pnl,
        "time": iso_utc(position.ts),
        "ts": position.ts,
        "fillId": position.fill_id,
    }


def _print_json(rows: list[dict[str, Any]]) -> None:
    print(json.dumps(rows, indent=2))


def _number(value: float) -> str:
    """Up to 8 decimals, no trailing zeros: 10, 0.5, 101.25."""
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _optional_money(value: float | None) -> str:
    return "" if value is None else _money(value)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _error(message: str, *details: str) -> None:
    print(f"orchestrator journal: {message}", file=sys.stderr)
    for detail in details:
        print(f"  {detail}", file=sys.stderr)
