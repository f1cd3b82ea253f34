"""History files: OHLCV bars from CSV or Parquet, checked alike, for backtests and replays.

:func:`load_history` takes a path and the symbol it holds and returns the bars,
oldest first, whatever the form:

- a CSV file (any name but ``.parquet``/``.pq``), parsed by :func:`load_ohlcv`;
- a Parquet file, one symbol per file (``AAPL.parquet``), or several in one file with
  a ``symbol`` column, of which only the rows of the symbol are read, in time order;
- a directory of Parquet files, a dataset partitioned by symbol the Hive way
  (``symbol=AAPL/2024.parquet``) or with a ``symbol`` column, of which only the
  rows of the symbol are read, in time order;
- a recording of the daemon (a directory with ``bars/`` or ``ticks/``, see
  :mod:`orchestrator.marketdata.recording`): its ticks aggregated into bars of
  the resolution asked, or else the bars it recorded.

Columns are matched as a trader's files name them, in any order and any case:
the time is ``timestamp``, ``date``, ``datetime`` or ``time``; then ``open``,
``high``, ``low``, ``close`` and ``volume``. Yahoo's ``Adj Close``,
``Dividends`` and ``Stock Splits`` are ignored: a backtest trades Close. A
DataFrame indexed by time and saved with pandas' ``to_parquet`` or ``to_csv`` loads
too (its index is a column, named, or ``__index_level_0__`` in Parquet and an empty
first header field in CSV). In
Parquet the time is a timestamp type of any unit (with a time zone, or naive,
which is taken as UTC), a date, or numbers: epoch seconds, or epoch
milliseconds when every value is above ``EPOCH_MILLISECONDS_THRESHOLD`` (year
5138 in seconds, 1973 in milliseconds). Prices and volume are any numeric type.

Both formats then pass the same checks, over whole columns at once (numpy):
finite prices and volume >= 0, low > 0, low <= open, close <= high, strictly
increasing times on one grid of a known bar resolution. A problem raises
:class:`FeedError` naming the file and the line (CSV; line 1 and the column for a bad
header) or the column and row (Parquet; rows counted from 0, in time order for a
dataset). Bars get
``ticks=4``, the ticks a replay makes of each (see ``feeds.ohlcv_ticks``), so a
replayed and re-aggregated bar equals the loaded one.

This module picks the form and reads CSV; the columns and their checks are
:mod:`orchestrator.marketdata.ohlcv`; Parquet is read and written by
:mod:`orchestrator.marketdata.parquet`, imported at the first Parquet file: pyarrow
(and pandas under it) would cost every start of the daemon about 270 ms.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator.marketdata.ohlcv import (
    EPOCH_MILLISECONDS_THRESHOLD,
    OHLCV_HEADER,
    PRICE_COLUMNS,
    FeedError,
    OhlcvColumns,
    checked_bars,
    matched_columns,
)
from orchestrator.marketdata.recording import RECORDED_BARS, RECORDED_TICKS
from orchestrator.model.clock import parse_iso_utc
from orchestrator.model.market import SYMBOL_PATTERN, Bar, Tick
from orchestrator.model.records import no_cycle_collection

PARQUET_SUFFIXES = (".parquet", ".pq")


def load_history(path: str | Path, symbol: str, resolution: str | None = None) -> list[Bar]:
    """The bars of ``symbol`` in the file, dataset or recording at ``path``.

    ``resolution`` is what a recording's ticks are aggregated to (None: take
    its finest recorded bars); files have their own. Raises FeedError naming
    what to fix.
    """
    path = Path(path)
    # A million bars are a million acyclic records: the collector would traverse
    # them again and again while they pile up (two thirds of a Parquet load).
    with no_cycle_collection():
        if not path.is_dir() and not is_parquet(path):
            return load_ohlcv(path, symbol)
        from orchestrator.marketdata import parquet  # pyarrow at the first Parquet read

        if not path.is_dir():
            return parquet.file_bars(path, symbol)
        if (path / RECORDED_BARS).is_dir() or (path / RECORDED_TICKS).is_dir():
            return parquet.load_recording(path, symbol, resolution)
        return parquet.dataset_bars(path, symbol)


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def file_symbol(path: Path) -> str:
    """The ticker a file is named after (``aapl.csv``, ``AAPL.parquet``: AAPL), or "" when
    its name is none."""
    name = path.stem.upper()
    return name if re.fullmatch(SYMBOL_PATTERN, name) else ""


def write_parquet(bars: Sequence[Bar], path: Path) -> None:
    """Write ``bars`` (one symbol) as a Parquet history file that :func:`load_history`
    reads back as the same bars (:func:`orchestrator.marketdata.parquet.write_parquet`)."""
    from orchestrator.marketdata import parquet  # pyarrow at the first write (start-up time)

    parquet.write_parquet(bars, path)


def recorded_ticks(directory: Path, symbol: str) -> list[Tick]:
    """The recorded ticks of ``symbol``, in the order the daemon received them
    (:func:`orchestrator.marketdata.parquet.recorded_ticks`)."""
    from orchestrator.marketdata import parquet  # pyarrow at the first read (start-up time)

    return parquet.recorded_ticks(directory, symbol)


# --------------------------------------------------------------------------- CSV


def load_ohlcv(path: str | Path, symbol: str) -> list[Bar]:
    """Read an OHLCV CSV file into bars, oldest first.

    The header names the columns as the module says. Timestamps are ISO-8601
    (naive ones, and bare dates, are taken as UTC) or epoch seconds, strictly
    increasing. The resolution is the smallest gap between rows (60 s for a
    single row) and must be one of ``RESOLUTION_SECONDS``. Raises FeedError
    naming the file and line of the first problem.
    """
    path = Path(path)
    columns, lines = _read_csv(path)

    def locate(index: int, column: str, problem: str) -> FeedError:
        return FeedError(path, problem, lines[index], column)

    return checked_bars(columns, symbol, path, locate, lambda index: f"line {lines[index]}")


def _read_csv(path: Path) -> tuple[OhlcvColumns, list[int]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as text:
            reader = csv.reader(text)
            header = next(reader, None)
            positions = _header_positions(header, path)
            width = len(header or ())
            rows: list[tuple[float, ...]] = []
            lines: list[int] = []
            for fields in reader:
                if fields:
                    rows.append(_parse_row(fields, positions, width, reader.line_num, path))
                    lines.append(reader.line_num)
    except FileNotFoundError:
        raise FeedError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FeedError(path, f"cannot read the file: {exc}") from exc
    if not rows:
        raise FeedError(path, "no data rows after the header")
    table = np.array(rows, dtype=np.float64)
    return OhlcvColumns(*(table[:, i] for i in range(len(OHLCV_HEADER)))), lines


def _header_positions(fields: list[str] | None, path: Path) -> tuple[int, ...]:
    """Where the time, open, high, low, close and volume columns are in the header."""
    if fields is None:
        expected = ",".join(OHLCV_HEADER)
        raise FeedError(path, f"file is empty; expected the header {expected!r}", line=1)
    # pandas' to_csv writes an unnamed index (a DataFrame indexed by time) as an empty
    # first field, as to_parquet writes it as __index_level_0__.
    index = 0 if fields and not fields[0].strip() else None
    found = matched_columns(fields, path, index, line=1)
    return tuple(found[name] for name in OHLCV_HEADER)


def _parse_row(
    fields: list[str], positions: tuple[int, ...], width: int, line: int, path: Path
) -> tuple[float, ...]:
    if len(fields) != width:
        raise FeedError(path, f"{len(fields)} fields, expected {width} as in the header", line)
    ts = _parse_timestamp(fields[positions[0]].strip(), line, path)
    prices = zip(PRICE_COLUMNS, positions[1:], strict=True)
    return (ts, *(_parse_number(name, fields[index].strip(), line, path) for name, index in prices))


def _parse_timestamp(text: str, line: int, path: Path) -> float:
    try:
        epoch = float(text)
    except ValueError:
        return _parse_iso(text, line, path)
    if not math.isfinite(epoch):
        raise FeedError(path, f"timestamp {text!r} is not a finite number", line, "timestamp")
    if abs(epoch) > EPOCH_MILLISECONDS_THRESHOLD:
        raise FeedError(
            path, f"timestamp {text!r} looks like milliseconds; write epoch seconds", line
        )
    return epoch


def _parse_iso(text: str, line: int, path: Path) -> float:
    try:
        return parse_iso_utc(text)
    except ValueError:
        raise FeedError(
            path,
            f"timestamp {text!r} is neither ISO-8601 (2024-01-02T09:30:00Z) nor epoch seconds",
            line,
            "timestamp",
        ) from None


def _parse_number(name: str, text: str, line: int, path: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FeedError(path, f"{name} {text!r} is not a number", line, name) from None
    if not math.isfinite(value) or value < 0:
        raise FeedError(path, f"{name} {text!r} must be a finite number >= 0", line, name)
    return value


__all__ = [
    "FeedError",
    "file_symbol",
    "is_parquet",
    "load_history",
    "load_ohlcv",
    "recorded_ticks",
    "write_parquet",
]
