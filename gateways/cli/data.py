"""``orchestrator data import CSV... --to DIR``: CSV history files to Parquet.

Each CSV file is read and checked exactly as a backtest reads it
(:func:`orchestrator.marketdata.history.load_ohlcv`) and written as
``DIR/SYMBOL.parquet``, one file per symbol, which a backtest then loads as
the same bars (:func:`orchestrator.marketdata.history.write_parquet`). The
symbol is ``--symbol`` (one file only) or the file's name (``aapl.csv``: AAPL).
Every file is checked, and every target looked at, before anything is
written: a bad file or an existing target without ``--force`` writes nothing.

Exit codes: 0 done, 1 a target exists (without ``--force``) or cannot be
written, 2 a CSV file is unusable (the message names its file and line) or a
usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateways.client.text import plural
from orchestrator.model.clock import iso_utc
from orchestrator.model.market import RESOLUTION_SECONDS, Bar

EXIT_OK = 0
EXIT_WRITE_FAILED = 1
EXIT_BAD_INPUT = 2


def add_data_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``data`` and its subcommands to the ``orchestrator`` parser."""
    data = commands.add_parser("data", help="history files: convert CSV to Parquet")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    help = "convert OHLCV CSV files to Parquet, one file per symbol"
    convert = actions.add_parser("import", help=help, description=help)
    convert.add_argument("csv", nargs="+", type=Path, metavar="CSV", help="OHLCV CSV files")
    convert.add_argument(
        "--to", required=True, type=Path, metavar="DIR", help="directory of the Parquet files"
    )
    convert.add_argument(
        "--symbol", help="the symbol of the one CSV file (default: each file's name)"
    )
    convert.add_argument("--force", action="store_true", help="overwrite existing files")


def data_command(args: argparse.Namespace) -> int:
    """Run ``orchestrator data import ...``; returns the exit code."""
    # Imported here: pyarrow takes about half a second to load, and the other
    # commands of `orchestrator` (status, journal, ...) should not wait for it.
    from orchestrator.marketdata import history

    plan = _plan(args.csv, args.symbol, args.to, history.file_symbol)
    if isinstance(plan, str):
        _error(plan)
        return EXIT_BAD_INPUT
    try:
        loaded = [(history.load_ohlcv(path, symbol), target) for path, symbol, target in plan]
    except history.FeedError as exc:
        _error(f"cannot import {exc}")
        return EXIT_BAD_INPUT
    existing = [target for _, target in loaded if target.exists()]
    if existing and not args.force:
        _error(f"{', '.join(map(str, existing))} exists; add --force to overwrite")
        return EXIT_WRITE_FAILED
    return _write(loaded, args.to, history.write_parquet)


def _plan(
    sources: Sequence[Path], symbol: str | None, to: Path, file_symbol: Callable[[Path], str]
) -> list[tuple[Path, str, Path]] | str:
    """(CSV, symbol, target) per file, or what is wrong with the command."""
    if symbol is not None and len(sources) > 1:
        return "--symbol names the symbol of one file; give one CSV file, or name them AAPL.csv"
    plan: list[tuple[Path, str, Path]] = []
    for source in sources:
        chosen = symbol.upper() if symbol is not None else file_symbol(source)
        if not chosen:
            return f"{source}: the file name is no ticker; give --symbol"
        plan.append((source, chosen, to / f"{chosen}.parquet"))
    symbols = [chosen for _, chosen, _ in plan]
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        return f"two files hold {', '.join(repeated)}: import them one at a time"
    return plan


def _write(
    loaded: Sequence[tuple[list[Bar], Path]],
    to: Path,
    write_parquet: Callable[[Sequence[Bar], Path], None],
) -> int:
    try:
        to.mkdir(parents=True, exist_ok=True)
        for bars, target in loaded:
            write_parquet(bars, target)
            print(_summary(bars, target))
    except OSError as exc:
        _error(f"cannot write into {to}: {exc.strerror or exc}")
        return EXIT_WRITE_FAILED
    return EXIT_OK


def _summary(bars: Sequence[Bar], target: Path) -> str:
    first, last = bars[0], bars[-1]
    end = last.start + RESOLUTION_SECONDS[last.resolution]
    return (
        f"{target}: {plural(len(bars), 'row')} of {first.symbol} {first.resolution}, "
        f"{iso_utc(first.start)} to {iso_utc(end)}"
    )


def _error(message: str) -> None:
    print(f"orchestrator data import: {message}", file=sys.stderr)
