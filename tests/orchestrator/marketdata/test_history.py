"""History files: CSV and Parquet (files, datasets) load as the same checked bars."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import backtesting.test
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backtesting.test import GOOG

from orchestrator.marketdata.history import (
    FeedError,
    file_symbol,
    load_history,
    load_ohlcv,
    write_parquet,
)
from orchestrator.model.market import Bar

START = 1_704_205_800  # 2024-01-02T14:30:00Z, a whole minute
HEADER = "timestamp,open,high,low,close,volume\n"


def rows(count: int = 5, start: int = START, step: int = 60) -> dict[str, list[Any]]:
    """Plausible minute bars as columns: a gentle zig-zag, volume rising."""
    opens = [100.0 + (i % 3) * 0.5 for i in range(count)]
    closes = [o + (0.25 if i % 2 else -0.25) for i, o in enumerate(opens)]
    return {
        "timestamp": [start + i * step for i in range(count)],
        "open": opens,
        "high": [max(o, c) + 0.5 for o, c in zip(opens, closes, strict=True)],
        "low": [min(o, c) - 0.5 for o, c in zip(opens, closes, strict=True)],
        "close": closes,
        "volume": [1000.0 + i for i in range(count)],
    }


def write_csv(path: Path, columns: dict[str, list[Any]]) -> Path:
    lines = [",".join(map(str, row)) for row in zip(*columns.values(), strict=True)]
    path.write_text(",".join(columns) + "\n" + "\n".join(lines) + "\n", "utf-8")
    return path


def write_table(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def expected(count: int = 5) -> list[Bar]:
    c = rows(count)
    return [
        Bar("AAPL", "1m", float(t), o, h, lo, cl, v, 4)
        for t, o, h, lo, cl, v in zip(*c.values(), strict=True)
    ]


# ---------------------------------------------------------------- the forms


def test_a_parquet_file_loads_the_same_bars_as_the_csv_file(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "aapl.csv", rows())
    parquet = write_table(tmp_path / "AAPL.parquet", rows())

    assert load_history(parquet, "AAPL") == load_history(csv, "AAPL") == expected()


def test_yahoo_column_names_in_any_case_and_order_are_matched(tmp_path: Path) -> None:
    c = rows()
    yahoo = {
        "Volume": c["volume"],
        "Date": c["timestamp"],
        "Open": c["open"],
        "HIGH": c["high"],
        "Low": c["low"],
        "Close": c["close"],
        "Adj Close": [0.0] * 5,
    }

    assert load_history(write_table(tmp_path / "y.pq", yahoo), "AAPL") == expected()


def test_a_pandas_frame_indexed_by_time_loads(tmp_path: Path) -> None:
    """``DataFrame.to_parquet`` keeps an unnamed index as ``__index_level_0__``."""
    columns: dict[str, Any] = rows()
    columns["__index_level_0__"] = pa.array(columns.pop("timestamp"), pa.timestamp("s"))

    assert load_history(write_table(tmp_path / "pd.parquet", columns), "AAPL") == expected()


def test_a_pandas_frame_indexed_by_time_and_saved_as_csv_loads(tmp_path: Path) -> None:
    """``DataFrame.to_csv`` writes an unnamed index under an empty header field."""
    columns = rows()
    frame = pd.DataFrame(
        {name.title(): values for name, values in columns.items() if name != "timestamp"},
        index=pd.to_datetime(columns["timestamp"], unit="s", utc=True),
    )
    path = tmp_path / "pd.csv"
    frame.to_csv(path)

    assert path.read_text("utf-8").startswith(",Open,High,Low,Close,Volume\n")
    assert load_history(path, "AAPL") == expected()


def test_a_pandas_frame_saved_as_csv_with_its_row_numbers_loads(tmp_path: Path) -> None:
    """An unnamed index beside a time column (``to_csv`` without ``index=False``) is ignored."""
    path = tmp_path / "numbered.csv"
    pd.DataFrame(rows()).to_csv(path)

    assert path.read_text("utf-8").startswith(",timestamp,open,")
    assert load_history(path, "AAPL") == expected()


def test_backtesting_pys_own_csv_files_load() -> None:
    """Its GOOG.csv is ``GOOG.to_csv()``: daily bars under an unnamed date index."""
    path = Path(backtesting.test.__file__).parent / "GOOG.csv"
    bars = load_history(path, "GOOG")

    assert len(bars) == len(GOOG) and {bar.resolution for bar in bars} == {"1d"}
    assert [bar.close for bar in bars] == GOOG["Close"].tolist()
    assert bars[0].start == pd.Timestamp(GOOG.index[0], tz="UTC").timestamp()


def test_a_daily_file_at_local_midnight_keeps_its_instants(tmp_path: Path) -> None:
    """Yahoo's daily bars at New York midnight: 05:00 UTC in winter, off the UTC grid."""
    columns: dict[str, Any] = rows(3, start=1_704_171_600, step=86_400)
    columns["timestamp"] = pa.array(columns["timestamp"], pa.timestamp("s", tz="America/New_York"))

    bars = load_history(write_table(tmp_path / "ny.parquet", columns), "AAPL")

    assert [b.start for b in bars] == [1_704_171_600.0, 1_704_258_000.0, 1_704_344_400.0]
    assert bars[0].resolution == "1d"


def as_type(values: list[int], kind: pa.DataType, scale: int = 1) -> pa.Array:
    return pa.array([v * scale for v in values], type=kind)


@pytest.mark.parametrize(
    "make",
    [
        lambda ts: as_type(ts, pa.timestamp("s", tz="UTC")),
        lambda ts: as_type(ts, pa.timestamp("ms", tz="America/New_York"), 1000),
        lambda ts: as_type(ts, pa.timestamp("ns", tz="Asia/Tokyo"), 10**9),
        lambda ts: as_type(ts, pa.timestamp("us"), 10**6),  # naive: taken as UTC
        lambda ts: as_type(ts, pa.int64()),  # epoch seconds
        lambda ts: as_type(ts, pa.int64(), 1000),  # epoch milliseconds
        lambda ts: as_type(ts, pa.float64()),
    ],
    ids=["s-utc", "ms-new-york", "ns-tokyo", "us-naive", "epoch-s", "epoch-ms", "epoch-float"],
)
def test_every_time_type_gives_the_same_instants(tmp_path: Path, make: Any) -> None:
    columns: dict[str, Any] = rows()
    columns["timestamp"] = make(columns["timestamp"])

    assert load_history(write_table(tmp_path / "t.parquet", columns), "AAPL") == expected()


def test_a_date_column_gives_daily_bars_at_utc_midnight(tmp_path: Path) -> None:
    columns: dict[str, Any] = rows(3)
    columns["date"] = pa.array([dt.date(2024, 1, d) for d in (2, 3, 4)], pa.date32())
    del columns["timestamp"]

    bars = load_history(write_table(tmp_path / "d.parquet", columns), "AAPL")

    assert [b.start for b in bars] == [1_704_153_600.0, 1_704_240_000.0, 1_704_326_400.0]
    assert {b.resolution for b in bars} == {"1d"}


def test_a_hive_dataset_is_filtered_by_symbol_and_sorted_by_time(tmp_path: Path) -> None:
    columns = rows(6)
    first = {name: values[3:] for name, values in columns.items()}
    second = {name: values[:3] for name, values in columns.items()}
    (tmp_path / "symbol=AAPL").mkdir()
    (tmp_path / "symbol=MSFT").mkdir()
    write_table(tmp_path / "symbol=AAPL" / "a.parquet", first)
    write_table(tmp_path / "symbol=AAPL" / "b.parquet", second)
    write_table(tmp_path / "symbol=MSFT" / "a.parquet", rows(2))

    assert load_history(tmp_path, "AAPL") == expected(6)
    assert len(load_history(tmp_path, "MSFT")) == 2


def test_a_directory_with_a_symbol_column_is_a_dataset_too(tmp_path: Path) -> None:
    columns: dict[str, Any] = rows()
    columns["Symbol"] = ["AAPL"] * 5
    write_table(tmp_path / "all.parquet", columns)

    assert load_history(tmp_path, "AAPL") == expected()
    with pytest.raises(FeedError, match="no rows of MSFT"):
        load_history(tmp_path, "MSFT")


def test_a_file_is_named_after_its_symbol() -> None:
    assert file_symbol(Path("data/aapl.parquet")) == "AAPL"
    assert file_symbol(Path("my data.csv")) == ""


def test_bars_written_as_parquet_load_back_exactly(tmp_path: Path) -> None:
    bars = load_ohlcv(write_csv(tmp_path / "aapl.csv", rows(50)), "AAPL")
    write_parquet(bars, tmp_path / "AAPL.parquet")

    assert load_history(tmp_path / "AAPL.parquet", "AAPL") == bars
    assert pq.read_schema(tmp_path / "AAPL.parquet").field("timestamp").type.tz == "UTC"


# ---------------------------------------------------------------- bad files


def broken(column: str, values: Any) -> dict[str, Any]:
    columns: dict[str, Any] = rows()
    columns[column] = values
    return columns


def without(column: str) -> dict[str, Any]:
    columns: dict[str, Any] = rows()
    del columns[column]
    return columns


@pytest.mark.parametrize(
    ("columns", "column", "problem"),
    [
        (without("volume"), "volume", "column 'volume' is missing"),
        (without("timestamp"), "timestamp", "column 'timestamp' is missing"),
        (broken("Vol", [1] * 5), "Vol", "column 'Vol' is unknown"),
        (broken("open", ["1"] * 5), "open", "column 'open' is string, not numbers"),
        (broken("timestamp", ["2024-01-02"] * 5), "timestamp", "expected a timestamp"),
        (broken("close", [1.0, None, 1.0, 1.0, 1.0]), "close", "row 1: no value (null)"),
        (broken("timestamp", [START, START + 60, START + 60, START + 180, START + 240]),
         "timestamp", "row 2: timestamp does not increase: it is not after row 1's"),
        (broken("high", [90.0] * 5), "high", "row 0: prices are inconsistent"),
        (broken("volume", [1.0, 1.0, -5.0, 1.0, 1.0]), "volume",
         "row 2: volume -5.0 must be a finite number >= 0"),
        (broken("Date", rows()["timestamp"]), "Date", "'timestamp' and 'Date' are both times"),
        (broken("OPEN", [1.0] * 5), "OPEN", "column 'OPEN' appears twice"),
        (broken("low", [0.0] * 5), "low", "row 0: low 0.0 must be above 0"),
        (broken("timestamp", [START, START + 60, 10**13, 10**13 + 60, 10**13 + 120]),
         "timestamp", "epoch seconds and milliseconds are mixed"),
        (broken("timestamp", [START, START + 60, START + 150, START + 210, START + 270]),
         "timestamp", "row 2: timestamp is not a whole number of 60 s bars"),
    ],
)  # fmt: skip
def test_a_bad_parquet_file_is_refused_naming_the_file_and_the_column(
    tmp_path: Path, columns: dict[str, Any], column: str, problem: str
) -> None:
    path = write_table(tmp_path / "bad.parquet", columns)

    with pytest.raises(FeedError) as caught:
        load_history(path, "AAPL")

    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    assert caught.value.column == column


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "AAPL.parquet"
    path.write_text(HEADER, "utf-8")

    with pytest.raises(FeedError, match=r"AAPL\.parquet: cannot read the Parquet file"):
        load_history(path, "AAPL")


def test_a_missing_parquet_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"nowhere\.parquet: file not found"):
        load_history(tmp_path / "nowhere.parquet", "AAPL")


def test_a_directory_without_symbols_is_refused(tmp_path: Path) -> None:
    write_table(tmp_path / "a.parquet", rows())

    with pytest.raises(FeedError, match=r"symbol=\.\.\. partitions or a symbol column"):
        load_history(tmp_path, "AAPL")


def test_a_bad_csv_row_names_the_line_and_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + f"{START},1,1,1,1,1\n{START + 60},1,1,1,x,1\n", "utf-8")

    with pytest.raises(FeedError) as caught:
        load_history(path, "AAPL")

    assert (caught.value.line, caught.value.column) == (3, "close")
