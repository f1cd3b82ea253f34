"""The recorder: batched Parquet files off the loop, rotated, flushed on close, read back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.marketdata.bars import aggregate
from orchestrator.marketdata.config import RecordingConfig
from orchestrator.marketdata.history import FeedError, load_history, recorded_ticks
from orchestrator.marketdata.ohlcv import aggregated_columns
from orchestrator.marketdata.recording import MarketRecorder, write_part
from orchestrator.model.clock import ManualClock
from orchestrator.model.market import Bar, Tick

START = 1_704_067_140.0  # 2024-01-01T00:59:00Z
MIDNIGHT = 1_704_153_600.0  # 2024-01-02T00:00:00Z


def recorder(directory: Path, **overrides: Any) -> MarketRecorder:
    config = RecordingConfig(enabled=True, **overrides)
    return MarketRecorder(config, directory, ManualClock(START))


def ticks(count: int, start: float = START, symbol: str = "AAPL") -> list[Tick]:
    return [Tick(symbol, 100.0 + i % 7, 1.0 + i, start + i * 5.0) for i in range(count)]


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


async def test_ticks_are_written_in_batches_of_flush_rows(tmp_path: Path) -> None:
    recording = recorder(tmp_path, flush_rows=3)
    sent = ticks(7)
    for tick in sent:
        recording.record_tick(tick)
    await recording.close()

    written = files(tmp_path / "ticks")
    assert [pq.read_metadata(p).num_rows for p in written] == [3, 3, 1]
    assert recorded_ticks(tmp_path / "ticks", "AAPL") == sent
    assert recording.rows_written["ticks"] == 7


async def test_close_flushes_what_is_buffered(tmp_path: Path) -> None:
    recording = recorder(tmp_path)
    for tick in ticks(2):
        recording.record_tick(tick)
    assert files(tmp_path) == []  # below flush_rows: nothing written yet

    await recording.close()

    assert recorded_ticks(tmp_path / "ticks", "AAPL") == ticks(2)


async def test_files_rotate_per_utc_day_and_per_run(tmp_path: Path) -> None:
    first, second = recorder(tmp_path, flush_rows=2), recorder(tmp_path, flush_rows=2)
    for tick in ticks(2, MIDNIGHT - 10) + ticks(2, MIDNIGHT + 10):
        first.record_tick(tick)
    second.record_tick(Tick("AAPL", 1.0, 1.0, MIDNIGHT + 60))
    await first.close()
    await second.close()

    folders = sorted({p.parent.name for p in files(tmp_path / "ticks")})
    assert folders == ["date=2024-01-01", "date=2024-01-02"]
    runs = {p.name.rsplit("-", 1)[0] for p in files(tmp_path / "ticks")}
    assert runs == {first.run_id, second.run_id}
    assert len(recorded_ticks(tmp_path / "ticks", "AAPL")) == 5


async def test_no_reader_sees_a_file_before_it_is_complete(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def watching_write(path: Path, schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> int:
        written = write_part(path, schema, rows)
        seen.append(sorted(p.name for p in path.parent.iterdir()))
        return written

    recording = MarketRecorder(
        RecordingConfig(enabled=True, flush_rows=2), tmp_path, ManualClock(START), watching_write
    )
    for tick in ticks(4):
        recording.record_tick(tick)
    await recording.close()

    assert all(not name.startswith(".") for names in seen for name in names)
    assert [len(names) for names in seen] == [1, 2]


async def test_a_writer_too_far_behind_drops_a_buffer_instead_of_blocking(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_write(path: Path, schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> int:
        release.wait()
        return write_part(path, schema, rows)

    config = RecordingConfig(enabled=True, flush_rows=2, max_pending_files=1)
    recording = MarketRecorder(config, tmp_path, ManualClock(START), slow_write)
    sent = ticks(5)
    for tick in sent[:4]:  # the second full buffer finds the first still being written
        recording.record_tick(tick)
    assert recording.dropped["ticks"] == 2
    recording.record_tick(sent[4])
    recording.flush()  # the timer: a buffer with room left waits for the writer
    assert recording.dropped["ticks"] == 2
    release.set()
    await recording.close()

    assert recorded_ticks(tmp_path / "ticks", "AAPL") == [*sent[:2], sent[4]]


FIRST_FILE = """
import asyncio, json, sys
from pathlib import Path
from orchestrator.marketdata.config import RecordingConfig
from orchestrator.marketdata.recording import MarketRecorder
from orchestrator.model.clock import ManualClock
from orchestrator.model.market import Tick

async def main():
    recording = MarketRecorder(RecordingConfig(enabled=True), Path(sys.argv[1]), ManualClock(0.0))
    recording.open()
    before = set(sys.modules)
    recording.record_tick(Tick("AAPL", 100.0, 1.0, 0.0))
    await recording.close()
    print(json.dumps(sorted(set(sys.modules) - before)))

asyncio.run(main())
"""


def test_the_first_file_imports_nothing_the_open_did_not(tmp_path: Path) -> None:
    """pyarrow's first conversion imports pandas (0.4 s): on the writer thread, mid-
    session, it held the GIL against the trading loop and the first file waited."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FILE, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[3],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []  # after the log lines
    assert len(files(tmp_path / "ticks")) == 1


async def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory", "utf-8")
    recording = recorder(blocked)
    for tick in ticks(3):
        recording.record_tick(tick)

    await recording.close()

    assert recording.failed["ticks"] == 3
    assert recording.rows_written["ticks"] == 0


async def test_the_timer_flushes_every_flush_seconds(tmp_path: Path) -> None:
    written = threading.Event()

    def signalling_write(path: Path, schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> int:
        count = write_part(path, schema, rows)
        written.set()
        return count

    config = RecordingConfig(enabled=True, flush_seconds=0.01)
    recording = MarketRecorder(config, tmp_path, ManualClock(START), signalling_write)
    recording.record_tick(ticks(1)[0])
    timer = asyncio.create_task(recording.run())
    try:
        assert await asyncio.to_thread(written.wait, 5.0)
    finally:
        timer.cancel()

    assert recorded_ticks(tmp_path / "ticks", "AAPL") == ticks(1)
    await recording.close()


# ---------------------------------------------------------------- read back


async def test_recorded_bars_load_back_as_they_were(tmp_path: Path) -> None:
    recording = recorder(tmp_path)
    minute = aggregate(ticks(60), "AAPL", "1m")
    five = aggregate(ticks(60), "AAPL", "5m")
    other = aggregate(ticks(20, symbol="MSFT"), "MSFT", "1m")
    for bar in [*minute, *five, *other]:
        recording.record_bar(bar)
    await recording.close()

    assert load_history(tmp_path, "AAPL", "1m") == minute
    assert load_history(tmp_path, "AAPL", "5m") == five
    assert load_history(tmp_path, "AAPL") == minute  # the finest


async def test_recorded_ticks_are_aggregated_before_recorded_bars(tmp_path: Path) -> None:
    recording = recorder(tmp_path)
    for tick in ticks(60):
        recording.record_tick(tick)
    # A bar closed live after a subscription, later than the first ticks.
    recording.record_bar(aggregate(ticks(60), "AAPL", "1m")[-1])
    await recording.close()

    expected: list[Bar] = aggregate(ticks(60), "AAPL", "1m")
    assert load_history(tmp_path, "AAPL", "1m") == expected
    with pytest.raises(FeedError, match="no ticks and no bars at 1m of MSFT"):
        load_history(tmp_path, "MSFT", "1m")


def seeded_ticks(rng: np.random.Generator, count: int) -> list[Tick]:
    """Bursts, quiet stretches of several buckets and late ticks (a time before the last)."""
    gaps = rng.choice(
        [0.0, 0.3, 1.0, 7.0, 130.0, -5.0], size=count, p=[0.1, 0.5, 0.2, 0.1, 0.05, 0.05]
    )
    times = START + np.cumsum(gaps) + rng.random()
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    sizes = rng.random(count) * 10
    return list(map(Tick, ["AAPL"] * count, prices.tolist(), sizes.tolist(), times.tolist()))


async def test_a_recording_loads_as_the_aggregator_makes_its_bars(tmp_path: Path) -> None:
    """load_history aggregates a recording's ticks over whole columns: the bars are
    those of the live BarAggregator over the same ticks, to the last bit (quiet buckets,
    late ticks, volume sums)."""
    rng = np.random.default_rng(16)
    for trial in range(20):
        sent = seeded_ticks(rng, int(rng.integers(1, 600)))
        recording = recorder(tmp_path / str(trial))
        for tick in sent:
            recording.record_tick(tick)
        await recording.close()
        for resolution in ("1s", "5s", "1m"):
            expected = aggregate(sent, "AAPL", resolution)
            assert load_history(tmp_path / str(trial), "AAPL", resolution) == expected
    column_bars = aggregated_columns(
        *(np.array([getattr(t, name) for t in sent]) for name in ("ts", "price", "size")),
        "AAPL",
        "5s",
    )
    assert column_bars == aggregate(sent, "AAPL", "5s")
