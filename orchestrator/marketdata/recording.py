"""Recording: the ticks and closed bars the daemon sees, to Parquet, for exact replays.

:class:`MarketRecorder` is handed every tick after the market data path has
used it (``MarketData.on_tick``: the feed's ticks, NNG input included) and
every bar the daemon closes (``MarketData.on_bar``). The tick path only
appends a tuple to a buffer; a full buffer (``flush_rows``), the timer
(``flush_seconds``) and :meth:`MarketRecorder.close` hand the buffer to one
writer thread, which turns it into a Parquet file. If the disk falls so far
behind that ``max_pending_files`` files are waiting, the buffer keeps filling
and, once full, is dropped, counted in :attr:`MarketRecorder.dropped` and
logged: the tick path never waits for the disk.

Each handed-over buffer becomes one complete file, written under a dot-name
(which Parquet readers skip) and renamed when closed, so a reader never sees
a half-written file::

    DIR/ticks/date=2026-12-02/20261202T230000Z-ab12cd34-000001.parquet
    DIR/bars/date=2026-12-02/...

Files rotate per run (the run id starts the name) and per UTC day (of the
file's first row). A file per hand-over, not one long file per day, because a
Parquet file is only readable once its footer is written: a crash of the
daemon then loses only the rows still in the buffer (at most ``flush_seconds``
or ``flush_rows`` of them) and the file being renamed, never a whole day.

Columns: ticks ``symbol, ts, price, size, run, seq`` (``ts`` epoch seconds as
float64, exactly the daemon's; ``run, seq`` the order of arrival);
bars ``symbol, resolution, start, open, high, low, close, volume, ticks``.
:func:`orchestrator.marketdata.parquet.load_recording` reads them back (through
:func:`orchestrator.marketdata.history.load_history`). pyarrow is imported when the
first recorder opens (with what pyarrow imports at its first conversion): a daemon
that does not record never loads it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog

from orchestrator.marketdata.config import RecordingConfig
from orchestrator.model.clock import Clock
from orchestrator.model.errors import OrchestratorError
from orchestrator.model.market import Bar, Tick

if TYPE_CHECKING:
    import pyarrow as pa

log = structlog.get_logger("orchestrator.marketdata.recording")

RECORDED_BARS = "bars"
RECORDED_TICKS = "ticks"
"""The subdirectories of a recording, one per kind of row."""
RECORDED_KINDS = (RECORDED_TICKS, RECORDED_BARS)
_TIME_COLUMN = {RECORDED_TICKS: 1, RECORDED_BARS: 2}
"""Where each kind's time is in a row: the first row's UTC day names the file's folder."""


WritePart: TypeAlias = Callable[[Path, "pa.Schema", Sequence[tuple[Any, ...]]], int]
"""Writes one file of rows (run on the writer thread); :func:`write_part` unless a test
needs a slower disk."""


@functools.cache
def recorded_schema(kind: str) -> pa.Schema:
    """The columns of a recording's files of ``kind`` (``ticks`` or ``bars``). Built at
    first use: pyarrow is imported only by a daemon that records (start-up time)."""
    import pyarrow as pa

    columns = {
        RECORDED_TICKS: [
            ("symbol", pa.string()),
            ("ts", pa.float64()),
            ("price", pa.float64()),
            ("size", pa.float64()),
            ("run", pa.string()),
            ("seq", pa.int64()),
        ],
        RECORDED_BARS: [
            ("symbol", pa.string()),
            ("resolution", pa.string()),
            ("start", pa.float64()),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("ticks", pa.int64()),
        ],
    }
    return pa.schema(columns[kind])


class RecordingUnavailable(OrchestratorError):
    """The recording directory cannot be created or written: the daemon does not start."""

    code = "recording_unavailable"


class _Buffer:
    """The rows of one kind waiting to be written."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.schema = recorded_schema(kind)
        self.rows: list[tuple[Any, ...]] = []
        self.files = 0

    def take(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows


class MarketRecorder:
    """Buffers ticks and bars and writes them as Parquet files off the event loop."""

    def __init__(
        self,
        config: RecordingConfig,
        directory: Path,
        clock: Clock,
        write: WritePart | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.run_id = f"{_compact_utc(clock.now())}-{uuid.uuid4().hex[:8]}"
        self.rows_written: Counter[str] = Counter()
        """Rows in complete files, by kind."""
        self.dropped: Counter[str] = Counter()
        """Rows dropped by kind because the writer was too far behind."""
        self.failed: Counter[str] = Counter()
        """Rows lost by kind because their file could not be written."""
        self._ticks = _Buffer(RECORDED_TICKS)
        self._bars = _Buffer(RECORDED_BARS)
        self._seq = 0
        self._pending: list[Future[int]] = []
        self._count_lock = threading.Lock()
        self._write = write or write_part
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")

    def open(self) -> None:
        """Create the directory and check it is writable, so that a recording that
        cannot work stops the daemon at start instead of failing every file."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = exc.strerror or str(exc)
            raise RecordingUnavailable(f"{self.directory}: cannot create it: {problem}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise RecordingUnavailable(f"{self.directory}: not writable by this user")
        _load_the_writers_imports()

    def record_tick(self, tick: Tick) -> None:
        """On the tick path: one append, and a hand-over when the buffer is full."""
        self._seq += 1
        rows = self._ticks.rows
        rows.append((tick.symbol, tick.ts, tick.price, tick.size, self.run_id, self._seq))
        if len(rows) >= self.config.flush_rows:
            self._hand_over(self._ticks)

    def record_bar(self, bar: Bar) -> None:
        rows = self._bars.rows
        rows.append(
            (bar.symbol, bar.resolution, bar.start, bar.open, bar.high, bar.low, bar.close,
             bar.volume, bar.ticks)
        )  # fmt: skip
        if len(rows) >= self.config.flush_rows:
            self._hand_over(self._bars)

    def flush(self) -> None:
        """Hand every buffered row to the writer thread (the timer and close do)."""
        self._hand_over(self._ticks)
        self._hand_over(self._bars)

    async def run(self) -> None:
        """Flush every ``flush_seconds`` until cancelled."""
        log.info("recording_started", directory=str(self.directory), run=self.run_id)
        while True:
            await asyncio.sleep(self.config.flush_seconds)
            self.flush()

    async def close(self) -> None:
        """Write what is buffered, wait for every file, and stop the writer thread."""
        await self._written()  # first, so that the writer has room for the last buffers
        self.flush()
        await self._written()
        self._executor.shutdown(wait=True)
        log.info(
            "recording_closed", run=self.run_id, rows=dict(self.rows_written),
            dropped=dict(self.dropped), failed=dict(self.failed),
        )  # fmt: skip

    async def _written(self) -> None:
        """Until every file handed over is written (or failed: counted, not raised)."""
        waiting = [asyncio.wrap_future(future) for future in self._pending]
        await asyncio.gather(*waiting, return_exceptions=True)
        self._pending = []

    def _hand_over(self, buffer: _Buffer) -> None:
        self._pending = [future for future in self._pending if not future.done()]
        if not buffer.rows:
            return
        if len(self._pending) >= self.config.max_pending_files:
            if len(buffer.rows) < self.config.flush_rows:
                return  # room left in the buffer: the next hand-over tries again
            self.dropped[buffer.kind] += len(buffer.take())
            log.warning("recording_behind", kind=buffer.kind, dropped_rows=self.config.flush_rows)
            return
        rows = buffer.take()
        buffer.files += 1
        path = self.directory / buffer.kind / _file_name(self.run_id, buffer, rows)
        future = self._executor.submit(self._write, path, buffer.schema, rows)
        future.add_done_callback(lambda done: self._count(done, buffer.kind, len(rows)))
        self._pending.append(future)

    def _count(self, future: Future[int], kind: str, rows: int) -> None:
        """Count a file done: on the writer thread, or on the loop's if it was done before
        the callback was added; hence the lock."""
        problem = future.exception()
        with self._count_lock:
            counter = self.rows_written if problem is None else self.failed
            counter[kind] += rows
        if problem is not None:
            log.error("recording_write_failed", kind=kind, rows=rows, error=str(problem))


def _load_the_writers_imports() -> None:
    """Import what the first file would: the start pays it, not the first flush.

    pyarrow imports pandas at its first conversion of Python values (0.4 s here), and
    on the writer thread that import held the GIL in slices of up to 35 ms while the
    daemon traded, and kept the first file waiting long enough for a fast timer's
    hand-overs to pass ``max_pending_files``.
    """
    import pyarrow as pa
    import pyarrow.parquet

    pa.array([], type=pa.int64())


def write_part(path: Path, schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> int:
    """Write ``rows`` as one Parquet file at ``path``, visible only once complete."""
    import pyarrow as pa  # in here: only a daemon that records loads it (its open did)
    import pyarrow.parquet as pq

    columns = zip(*rows, strict=True)
    typed = zip(columns, schema, strict=True)
    arrays = [pa.array(column, type=field.type) for column, field in typed]
    table = pa.Table.from_arrays(arrays, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # a write that failed half way leaves nothing
    return len(rows)


def _file_name(run_id: str, buffer: _Buffer, rows: Sequence[tuple[Any, ...]]) -> str:
    day = _compact_utc(rows[0][_TIME_COLUMN[buffer.kind]])
    return f"date={day[:4]}-{day[4:6]}-{day[6:8]}/{run_id}-{buffer.files:06d}.parquet"


def _compact_utc(ts: float) -> str:
    """20261202T230000Z: sortable, and valid in a file name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))
