"""OHLCV columns, checked into bars: what every history format shares.

Each format of :mod:`orchestrator.marketdata.history` only turns its file into columns,
:class:`OhlcvColumns` (float64 arrays: the CSV reader row by row, the Parquet reader of
:mod:`orchestrator.marketdata.parquet` with pyarrow); :func:`checked_bars` then runs the
same checks over whole columns for both and builds the bars, each format naming a
problem its own way (CSV: file and line; Parquet: file, column and row) through the
:class:`FeedError` it raises. The columns are matched by name the same way for both
(:func:`matched_columns`), and a recording's ticks are aggregated into bars over their
columns (:func:`aggregated_columns`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import structlog

from orchestrator.model.errors import OrchestratorError
from orchestrator.model.market import RESOLUTION_SECONDS, Bar, bucket_start

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
DEFAULT_BAR_SECONDS = 60
"""Bar length assumed for a file with a single row, where no interval can be seen."""
TICKS_PER_OHLCV_ROW = 4
EPOCH_MILLISECONDS_THRESHOLD = 1e11
"""Epoch values above this (year 5138) are milliseconds: CSV refuses them, Parquet
takes a column whose values are all above it as milliseconds."""


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


def first_true(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _check_values(columns: OhlcvColumns, locate: Locate) -> None:
    for column in PRICE_COLUMNS:
        values = getattr(columns, column)
        bad = first_true(~np.isfinite(values) | (values < 0))
        if bad is not None:
            problem = f"{column} {float(values[bad])} must be a finite number >= 0"
            raise locate(bad, column, problem)
    bad = first_true(columns.low <= 0)
    if bad is not None:
        raise locate(bad, "low", f"low {columns.low[bad]} must be above 0")
    top = np.maximum(columns.open, columns.close)
    bottom = np.minimum(columns.open, columns.close)
    bad = first_true((columns.high < top) | (columns.low > bottom))
    if bad is not None:
        o, h, lo, c = (getattr(columns, n)[bad] for n in ("open", "high", "low", "close"))
        raise locate(
            bad,
            "high" if h < max(o, c) else "low",
            f"prices are inconsistent: need low <= open, close <= high "
            f"(open {o}, high {h}, low {lo}, close {c})",
        )


def _check_increasing(ts: FloatArray, locate: Locate, name: Name) -> None:
    bad = first_true(np.diff(ts) <= 0)
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
    bad = first_true(np.abs(steps - np.round(steps)) > 1e-6)
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


# --------------------------------------------------------------------------- the columns


def matched_columns(
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


# --------------------------------------------------------------------------- ticks into bars


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
