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
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import structlog

from orchestrator.model.clock import parse_iso_utc
from orchestrator.model.errors import OrchestratorError
from orchestrator.model.market import RESOLUTION_SECONDS, SYMBOL_PATTERN, Bar, Tick, bucket_start
from orchestrator.model.records import no_cycle_collection

log = structlog.get_logger(__name__)

OHLCV_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = OHLCV_HEADER[1:]
TIME_COLUMNS = ("timestamp", "date", "datetime", "time")
"""Names the time column may have: ours, and Yahoo's and pandas' (Date, Datetime)."""
IGNORED_COLUMNS = ("adj close", "dividends", "stock splits")
"""Columns of Yahoo and yfinance files that a backtest does not read: it trades Close."""
PANDAS_INDEX_PREFIX = "__index_level_"
PANDAS_TIME_INDEX = "__index_level_0__"
"""Where pandas' ``to_parquet`` keeps an unnamed index: the time when no column is named
as one (a DataFrame indexed by time), else ignored like pandas' other index columns."""
SYMBOL_COLUMN = "symbol"
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_BAR_SECONDS = 60
"""Bar length assumed for a file with a single row, where no interval can be seen."""
TICKS_PER_OHLCV_ROW = 4
EPOCH_MILLISECONDS_THRESHOLD = 1e11
"""Epoch values above this (year 5138) are milliseconds: CSV refuses them, Parquet
takes a column whose values are all above it as milliseconds."""
RECORDED_BARS = "bars"
RECORDED_TICKS = "ticks"
"""The subdirectories of a recording (see orchestrator.marketdata.recording)."""


class FeedError(OrchestratorError, ValueError):
    """A market data source that cannot be used, with the file and line or column to fix."""

    code = "invalid_data"

    def __init__(
        self,
        path: str | Path,
        problem: str,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


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
        if path.is_dir():
            if (path / RECORDED_BARS).is_dir() or (path / RECORDED_TICKS).is_dir():
                return load_recording(path, symbol, resolution)
            return _bars_of_table(_dataset_table(path, symbol), path, symbol, sort=True)
        if is_parquet(path):
            return _parquet_file_bars(path, symbol)
        return load_ohlcv(path, symbol)


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def file_symbol(path: Path) -> str:
    """The ticker a file is named after (``aapl.csv``, ``AAPL.parquet``: AAPL), or "" when
    its name is none."""
    name = path.stem.upper()
    return name if re.fullmatch(SYMBOL_PATTERN, name) else ""


def write_parquet(bars: Sequence[Bar], path: Path) -> None:
    """Write ``bars`` (one symbol) as a Parquet history file that :func:`load_history`
    reads back as the same bars: ``timestamp`` in UTC microseconds, then
    ``open,high,low,close,volume`` as float64. The file appears whole or not at
    all (written under a dot-name, then renamed)."""
    micros = [round(bar.start * 1_000_000) for bar in bars]
    columns = {
        "timestamp": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
        **{
            name: pa.array([getattr(bar, name) for bar in bars], pa.float64())
            for name in PRICE_COLUMNS
        },
    }
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(pa.table(columns), temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the checks


FloatArray: TypeAlias = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class OhlcvColumns:
    """A file's columns as float64 arrays, one entry per row, before the checks."""

    ts: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray


Locate = Callable[[int, str, str], FeedError]
"""The error for (row index, column, problem): CSV names the line, Parquet the row."""
Name = Callable[[int], str]
"""How a row is named in a message: "line 5" or "row 4"."""


def checked_bars(
    columns: OhlcvColumns, symbol: str, path: Path, locate: Locate, name: Name
) -> list[Bar]:
    """The bars of ``columns`` once every check passed; FeedError at the first problem."""
    _check_values(columns, locate)
    _check_increasing(columns.ts, locate, name)
    seconds = _bar_seconds(columns.ts)
    resolution = _resolution_label(seconds, path)
    _check_grid(columns.ts, seconds, path, locate)
    return list(
        map(
            Bar,
            repeat(symbol),
            repeat(resolution),
            columns.ts.tolist(),
            columns.open.tolist(),
            columns.high.tolist(),
            columns.low.tolist(),
            columns.close.tolist(),
            columns.volume.tolist(),
            repeat(TICKS_PER_OHLCV_ROW),
        )
    )


def _first(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _check_values(columns: OhlcvColumns, locate: Locate) -> None:
    for column in PRICE_COLUMNS:
        values = getattr(columns, column)
        bad = _first(~np.isfinite(values) | (values < 0))
        if bad is not None:
            problem = f"{column} {float(values[bad])} must be a finite number >= 0"
            raise locate(bad, column, problem)
    bad = _first(columns.low <= 0)
    if bad is not None:
        raise locate(bad, "low", f"low {columns.low[bad]} must be above 0")
    top = np.maximum(columns.open, columns.close)
    bottom = np.minimum(columns.open, columns.close)
    bad = _first((columns.high < top) | (columns.low > bottom))
    if bad is not None:
        o, h, lo, c = (getattr(columns, n)[bad] for n in ("open", "high", "low", "close"))
        raise locate(
            bad,
            "high" if h < max(o, c) else "low",
            f"prices are inconsistent: need low <= open, close <= high "
            f"(open {o}, high {h}, low {lo}, close {c})",
        )


def _check_increasing(ts: FloatArray, locate: Locate, name: Name) -> None:
    bad = _first(np.diff(ts) <= 0)
    if bad is not None:
        raise locate(
            bad + 1,
            "timestamp",
            f"timestamp does not increase: it is not after {name(bad)}'s",
        )


def _bar_seconds(ts: FloatArray) -> float:
    return float(np.diff(ts).min()) if len(ts) > 1 else float(DEFAULT_BAR_SECONDS)


def _resolution_label(seconds: float, path: Path) -> str:
    for label, length in RESOLUTION_SECONDS.items():
        if math.isclose(seconds, length, abs_tol=1e-6):
            return label
    known = ", ".join(RESOLUTION_SECONDS)
    raise FeedError(
        path, f"rows are at least {seconds:g} s apart, which is no bar resolution ({known})"
    )


def _check_grid(ts: FloatArray, seconds: float, path: Path, locate: Locate) -> None:
    """Every row on one grid of ``seconds``, else its bars would overlap when replayed."""
    first = float(ts[0])
    steps = (ts - first) / seconds
    bad = _first(np.abs(steps - np.round(steps)) > 1e-6)
    if bad is not None:
        raise locate(
            bad,
            "timestamp",
            f"timestamp is not a whole number of {seconds:g} s bars after the first row",
        )
    if not math.isclose(bucket_start(first, int(seconds)), first, abs_tol=1e-6):
        # Still usable, but the bars that aggregation rebuilds from the replayed
        # ticks straddle the UTC-aligned buckets instead of matching the file's.
        log.warning("ohlcv_not_bucket_aligned", path=str(path), first_ts=first, seconds=seconds)


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
    found = _matched_columns(fields, path, index, line=1)
    return tuple(found[name] for name in OHLCV_HEADER)


def _matched_columns(
    names: Sequence[str], path: Path, unnamed_index: int | None, line: int | None = None
) -> dict[str, int]:
    """Where each of our columns is among the file's column ``names`` (CSV and Parquet).

    ``unnamed_index`` is the position of an index pandas saved without a name: the time
    when no column is named as one, else ignored, as pandas' other index columns are.
    A FeedError names the column at fault.
    """
    found: dict[str, int] = {}
    for position, name in enumerate(names):
        key = name.strip().lower()
        if position == unnamed_index or key.startswith(PANDAS_INDEX_PREFIX):
            continue
        if key in TIME_COLUMNS and "timestamp" in found:
            first = names[found["timestamp"]]
            raise FeedError(path, f"columns {first!r} and {name!r} are both times", line, name)
        if key in found:
            raise FeedError(path, f"column {name!r} appears twice (case aside)", line, name)
        if key in TIME_COLUMNS:
            found["timestamp"] = position
        elif key in PRICE_COLUMNS:
            found[key] = position
        elif key not in IGNORED_COLUMNS:
            expected = ",".join(OHLCV_HEADER)
            raise FeedError(path, f"column {name!r} is unknown; expected {expected}", line, name)
    if "timestamp" not in found and unnamed_index is not None:
        found["timestamp"] = unnamed_index
    for column in OHLCV_HEADER:
        if column not in found:
            problem = f"column {column!r} is missing (found {','.join(names)})"
            raise FeedError(path, problem, line, column)
    return found


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


# --------------------------------------------------------------------------- Parquet


def _parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise FeedError(path, "file not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise FeedError(path, f"cannot read the Parquet file: {exc}") from exc


def _parquet_file_bars(path: Path, symbol: str) -> list[Bar]:
    """One symbol's file, or the rows of ``symbol`` in a file with a symbol column."""
    table = _parquet_table(path)
    names = {name.lower(): name for name in table.column_names}
    if SYMBOL_COLUMN not in names:
        return _bars_of_table(table, path, symbol, sort=False)
    column = names[SYMBOL_COLUMN]
    rows = table.filter(pc.field(column) == symbol).drop_columns([column])
    return _bars_of_table(rows, path, symbol, sort=True)


def _dataset_table(path: Path, symbol: str) -> pa.Table:
    """The rows of ``symbol`` in a directory of Parquet files (partitioned or not)."""
    try:
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        names = {name.lower(): name for name in dataset.schema.names}
        if SYMBOL_COLUMN not in names:
            raise FeedError(
                path,
                "a directory of Parquet files needs symbol=... partitions or a symbol column",
                column=SYMBOL_COLUMN,
            )
        field = ds.field(names[SYMBOL_COLUMN])
        table = dataset.to_table(filter=field == symbol)
    except (OSError, pa.ArrowException) as exc:
        raise FeedError(path, f"cannot read the Parquet dataset: {exc}") from exc
    return table.drop_columns(
        [names[SYMBOL_COLUMN], *(_partition_keys(dataset, path) - {names[SYMBOL_COLUMN]})]
    )


def _partition_keys(dataset: ds.Dataset, root: Path) -> set[str]:
    """The keys of the ``key=value`` directories the dataset's files are in."""
    folders = (Path(file).relative_to(root).parts[:-1] for file in dataset.files)
    return {part.partition("=")[0] for parts in folders for part in parts if "=" in part}


def _bars_of_table(table: pa.Table, path: Path, symbol: str, *, sort: bool) -> list[Bar]:
    named = _table_columns(table, path)
    if table.num_rows == 0:
        raise FeedError(path, f"no rows of {symbol}" if sort else "no data rows")
    if sort:
        table = table.sort_by(named["timestamp"])
    columns = _parquet_columns(table, named, path)

    def locate(index: int, column: str, problem: str) -> FeedError:
        return FeedError(path, f"column {named[column]!r}, row {index}: {problem}", column=column)

    return checked_bars(columns, symbol, path, locate, lambda index: f"row {index}")


def _table_columns(table: pa.Table, path: Path) -> dict[str, str]:
    """Our column name -> the file's, matched as the CSV header is; FeedError if unusable."""
    names = table.column_names
    index = names.index(PANDAS_TIME_INDEX) if PANDAS_TIME_INDEX in names else None
    found = _matched_columns(names, path, index)
    return {column: names[position] for column, position in found.items()}


def _parquet_columns(table: pa.Table, named: dict[str, str], path: Path) -> OhlcvColumns:
    """The float64 arrays of the table's time, price and volume columns."""
    for column in OHLCV_HEADER:
        _check_no_nulls(table.column(named[column]), named[column], path)
    ts = _epoch_seconds(table.column(named["timestamp"]), named["timestamp"], path)
    prices = (_numbers(table.column(named[c]), named[c], path) for c in PRICE_COLUMNS)
    return OhlcvColumns(ts, *prices)


def _check_no_nulls(values: pa.ChunkedArray, name: str, path: Path) -> None:
    if values.null_count:
        row = int(pc.index(pc.is_null(values), True).as_py())
        raise FeedError(path, f"column {name!r}, row {row}: no value (null)", column=name)


def _numbers(values: pa.ChunkedArray, name: str, path: Path) -> np.ndarray[Any, Any]:
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        raise FeedError(path, f"column {name!r} is {kind}, not numbers", column=name)
    return np.asarray(pc.cast(values, pa.float64()).to_numpy(), dtype=np.float64)


def _epoch_seconds(values: pa.ChunkedArray, name: str, path: Path) -> np.ndarray[Any, Any]:
    """Epoch seconds of a time column: timestamps (naive = UTC), dates or epoch numbers."""
    kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_date64(kind):
        unit = "ms" if pa.types.is_date64(kind) else kind.unit
        return _scaled(pc.cast(values, pa.int64()).to_numpy(), _UNITS_PER_SECOND[unit])
    if pa.types.is_date32(kind):
        days = np.asarray(pc.cast(values, pa.int32()).to_numpy(), dtype=np.float64)
        return days * 86_400.0
    numbers = _epoch_numbers(values, name, path, kind)
    above = numbers > EPOCH_MILLISECONDS_THRESHOLD
    if above.all():
        return numbers / 1000.0
    if above.any():
        row = int(np.argmax(above != above[0]))
        raise FeedError(
            path,
            f"column {name!r}, row {row}: epoch seconds and milliseconds are mixed",
            column=name,
        )
    return numbers


def _epoch_numbers(
    values: pa.ChunkedArray, name: str, path: Path, kind: pa.DataType
) -> np.ndarray[Any, Any]:
    """A time column's epoch numbers as float64; FeedError for another type or a
    value that is no finite number."""
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numbers = np.asarray(pc.cast(values, pa.float64()).to_numpy(), dtype=np.float64)
        bad = _first(~np.isfinite(numbers))
        if bad is None:
            return numbers
        problem = f"row {bad}: timestamp {numbers[bad]} is not a finite number"
    else:
        problem = f"is {kind}; expected a timestamp, a date, or epoch seconds or milliseconds"
    raise FeedError(path, f"column {name!r} {problem}", column=name)


_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _scaled(ints: np.ndarray[Any, Any], per_second: int) -> np.ndarray[Any, Any]:
    """Integer counts of 1/per_second to float seconds, exact to the float's precision."""
    whole, part = np.divmod(ints.astype(np.int64), per_second)
    return whole.astype(np.float64) + part.astype(np.float64) / per_second


# --------------------------------------------------------------------------- recordings


def load_recording(path: Path, symbol: str, resolution: str | None) -> list[Bar]:
    """The bars of ``symbol`` in a recording: its ticks aggregated at ``resolution``,
    or, when no tick of it was recorded, the bars the daemon closed at that
    resolution (None: the finest recorded).

    Ticks come first because they are what the feed delivered: bars exist only
    while a strategy or client subscribes, ticks from the first one on. The
    ticks are aggregated as the daemon aggregates them (same buckets, same
    quiet-bucket bars, late ticks dropped), in the order the daemon received them:
    over whole columns (:func:`aggregated_columns`), the bars equal to the last bit
    those of :func:`orchestrator.marketdata.bars.aggregate` over the same ticks.
    """
    if resolution is not None:
        table = _recorded_ticks_table(path / RECORDED_TICKS, symbol)
        if table is not None:
            ts, price, size = (_float_column(table, name) for name in ("ts", "price", "size"))
            return aggregated_columns(ts, price, size, symbol, resolution)
    bars = _recorded_bars(path / RECORDED_BARS, symbol, resolution)
    if not bars:
        at = "" if resolution is None else f" at {resolution}"
        raise FeedError(path, f"the recording holds no ticks and no bars{at} of {symbol}")
    return bars


def _recorded_table(directory: Path, symbol: str) -> pa.Table | None:
    if not directory.is_dir():
        return None
    try:
        dataset = ds.dataset(directory, format="parquet", partitioning="hive")
        if dataset.count_rows() == 0:
            return None
        return dataset.to_table(filter=ds.field(SYMBOL_COLUMN) == symbol)
    except (OSError, pa.ArrowException) as exc:
        raise FeedError(directory, f"cannot read the recording: {exc}") from exc


def _recorded_bars(directory: Path, symbol: str, resolution: str | None) -> list[Bar]:
    table = _recorded_table(directory, symbol)
    if table is None or table.num_rows == 0:
        return []
    if resolution is None:
        recorded: set[str] = set(table.column("resolution").to_pylist())
        resolution = min(recorded, key=RESOLUTION_SECONDS.__getitem__)
    table = table.filter(pc.field("resolution") == resolution).sort_by("start")
    names = ("start", "open", "high", "low", "close", "volume", "ticks")
    columns = [table.column(name).to_numpy().tolist() for name in names]
    return list(map(Bar, repeat(symbol), repeat(resolution), *columns))


def recorded_ticks(directory: Path, symbol: str) -> list[Tick]:
    """The recorded ticks of ``symbol``, in the order the daemon received them."""
    table = _recorded_ticks_table(directory, symbol)
    if table is None:
        return []
    columns = [_float_column(table, name).tolist() for name in ("price", "size", "ts")]
    return list(map(Tick, repeat(symbol), *columns))


def _recorded_ticks_table(directory: Path, symbol: str) -> pa.Table | None:
    """The recorded ticks of ``symbol`` in the order of arrival; None without any."""
    table = _recorded_table(directory, symbol)
    if table is None or table.num_rows == 0:
        return None
    return table.sort_by([("run", "ascending"), ("seq", "ascending")])


def _float_column(table: pa.Table, name: str) -> FloatArray:
    return np.asarray(table.column(name).to_numpy(), dtype=np.float64)


def aggregated_columns(
    ts: FloatArray, price: FloatArray, size: FloatArray, symbol: str, resolution: str
) -> list[Bar]:
    """The bars :func:`orchestrator.marketdata.bars.aggregate` makes of these ticks (in
    the order of arrival), computed over the columns: each tick's bucket; a tick whose
    bucket is before one already seen is late and dropped, as the aggregator drops it;
    open, close, high, low, volume (summed first to last, as the aggregator adds) and
    tick count per bucket; then a flat bar at the last close for each quiet bucket."""
    seconds = RESOLUTION_SECONDS[resolution]
    buckets = np.floor_divide(ts, seconds) * seconds
    on_time = buckets >= np.maximum.accumulate(buckets)
    buckets, price, size = buckets[on_time], price[on_time], size[on_time]
    firsts = np.r_[0, np.flatnonzero(buckets[1:] != buckets[:-1]) + 1]
    lasts = np.r_[firsts[1:] - 1, len(buckets) - 1]
    first_start = buckets[0]
    slot = ((buckets[firsts] - first_start) // seconds).astype(np.int64)
    count = int(slot[-1]) + 1
    # Quiet buckets take the close of the last bucket that traded before them.
    source = np.zeros(count, dtype=np.int64)
    source[slot] = np.arange(len(slot))
    source = np.maximum.accumulate(source)
    flat = np.ones(count, dtype=bool)
    flat[slot] = False
    close = price[lasts][source]

    def per_bucket(values: FloatArray) -> FloatArray:
        return np.where(flat, close, values[source])

    volume = np.zeros(len(firsts), dtype=np.float64)
    np.add.at(volume, np.repeat(np.arange(len(firsts)), lasts - firsts + 1), size)
    ticks = np.where(flat, 0, (lasts - firsts + 1)[source])
    return list(
        map(
            Bar,
            repeat(symbol),
            repeat(resolution),
            (first_start + np.arange(count, dtype=np.float64) * seconds).tolist(),
            per_bucket(price[firsts]).tolist(),
            per_bucket(np.maximum.reduceat(price, firsts)).tolist(),
            per_bucket(np.minimum.reduceat(price, firsts)).tolist(),
            close.tolist(),
            np.where(flat, 0.0, volume[source]).tolist(),
            ticks.tolist(),
        )
    )
