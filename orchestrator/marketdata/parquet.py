"""History in Parquet, through pyarrow: files, datasets and the daemon's recordings read
into checked bars (:func:`file_bars`, :func:`dataset_bars`, :func:`load_recording`), and
bars written as a Parquet history file (:func:`write_parquet`).

What each form holds and how its columns are matched is in
:mod:`orchestrator.marketdata.history`, the one reader of history, which imports this
module at the first Parquet file it is asked for: pyarrow, and pandas under
``pyarrow.dataset``, cost every start of the daemon about 270 ms otherwise, and most
runs never read a Parquet file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from orchestrator.marketdata.ohlcv import (
    EPOCH_MILLISECONDS_THRESHOLD,
    OHLCV_HEADER,
    PANDAS_TIME_INDEX,
    PRICE_COLUMNS,
    FeedError,
    FloatArray,
    OhlcvColumns,
    aggregated_columns,
    checked_bars,
    first_true,
    matched_columns,
)
from orchestrator.marketdata.recording import RECORDED_BARS, RECORDED_TICKS
from orchestrator.model.market import RESOLUTION_SECONDS, Bar, Tick

SYMBOL_COLUMN = "symbol"


def write_parquet(bars: Sequence[Bar], path: Path) -> None:
    """Write ``bars`` (one symbol) as a Parquet history file that
    :func:`~orchestrator.marketdata.history.load_history` reads back as the same bars:
    ``timestamp`` in UTC microseconds, then ``open,high,low,close,volume`` as float64.
    The file appears whole or not at all (written under a dot-name, then renamed)."""
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


# --------------------------------------------------------------------------- files and datasets


def _parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise FeedError(path, "file not found") from None
    except (OSError, pa.ArrowException) as exc:
        raise FeedError(path, f"cannot read the Parquet file: {exc}") from exc


def file_bars(path: Path, symbol: str) -> list[Bar]:
    """One symbol's file, or the rows of ``symbol`` in a file with a symbol column."""
    table = _parquet_table(path)
    names = {name.lower(): name for name in table.column_names}
    if SYMBOL_COLUMN not in names:
        return _bars_of_table(table, path, symbol, sort=False)
    column = names[SYMBOL_COLUMN]
    rows = table.filter(pc.field(column) == symbol).drop_columns([column])
    return _bars_of_table(rows, path, symbol, sort=True)


def dataset_bars(path: Path, symbol: str) -> list[Bar]:
    """The rows of ``symbol`` in a directory of Parquet files, in time order."""
    return _bars_of_table(_dataset_table(path, symbol), path, symbol, sort=True)


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
    found = matched_columns(names, path, index)
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
        bad = first_true(~np.isfinite(numbers))
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
