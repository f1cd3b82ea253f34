"""The redo log (``journal.synchronous = "NORMAL"``): signals, orders, fills and
order events are told once appended to it, SQLite commits them behind the tell,
and the next open writes in what a crash left only in the log."""

from __future__ import annotations

import asyncio
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import structlog

from orchestrator.journal import writer as writer_module
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.redo import RedoLog, encode_frame, read_redo, redo_path
from orchestrator.journal.store import (
    RESTART_FILL_PREFIX,
    GroupRows,
    Journal,
    JournalError,
    Record,
)
from orchestrator.journal.writer import Deliver, JournalWriter, told_when_logged
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    QuoteUpdated,
    StrategyStatus,
    TradeExecuted,
)
from orchestrator.model.market import Tick
from orchestrator.model.orders import Side
from tests.orchestrator.journal.journal_support import (
    DEADLINE,
    T0,
    BlockingJournal,
    Trading,
)


class Told:
    """A client: what it was told, at which positions, in how many deliveries."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.positions: list[int | None] = []
        self.batches = 0

    def __call__(self, events: Sequence[Event], positions: Sequence[int | None]) -> None:
        self.batches += 1
        self.events.extend(events)
        self.positions.extend(positions)


def normal_writer(journal: Journal, told: Deliver) -> JournalWriter:
    return JournalWriter.from_config(journal, told, JournalConfig(synchronous="NORMAL"))


@asynccontextmanager
async def running(writer: JournalWriter) -> AsyncIterator[JournalWriter]:
    """The writer's thread, run as the daemon runs it; closed (and joined) at the end."""
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        await writer.close()
        await task


async def one_pass() -> None:
    """Let the event loop finish its pass: what the writer scheduled with call_soon runs."""
    await asyncio.sleep(0)


def record_commits(journal: Journal) -> list[list[int | None]]:
    """The positions of each transaction ``journal`` commits from now on, in order."""
    committed: list[list[int | None]] = []
    write_rows = journal.write_rows

    def recorded(rows: GroupRows) -> list[int | None]:
        committed.append(rows.positions)
        return write_rows(rows)

    journal.write_rows = recorded  # type: ignore[method-assign]
    return committed


def committed_fills(path: Path) -> list[str]:
    with Journal.open_readonly(path) as reader:
        return [fill.id for fill in reader.fills()]


@pytest.fixture
def blocking(tmp_path: Path) -> BlockingJournal:
    return BlockingJournal.opened(tmp_path / "journal.sqlite3", "NORMAL")


async def test_a_trade_is_told_from_the_redo_log_before_sqlite_commits_it(
    blocking: BlockingJournal,
) -> None:
    told = Told()
    writer = normal_writer(blocking, told)
    async with running(writer):
        trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
        for record in trade:
            writer.submit(record)
        assert told.events == trade[:1]  # the first of the pass at once
        await one_pass()
        assert told.events == trade and told.batches == 2  # the rest at the pass's end
        assert told.positions == [1, 2, 3]
        await asyncio.to_thread(blocking.writing.wait, DEADLINE)  # the commit has begun, and waits
        assert committed_fills(blocking.path) == []  # told, yet only in the redo log
        first, rest = map(GroupRows.from_state, read_redo(redo_path(blocking.path)))
        assert (first.positions, rest.positions) == ([1], [2, 3])
        blocking.release.set()
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert committed_fills(blocking.path) == [trade[2].fill.id]  # type: ignore[union-attr]
    assert not redo_path(blocking.path).exists()  # a clean close leaves no log


def lagging_writer(journal: Journal, told: Deliver, max_events: int = 500) -> JournalWriter:
    """A writer whose told frames lag for an hour: only a count, a flush or a record
    that waits for its commit hands them to the thread."""
    return JournalWriter(journal, told, max_events=max_events, redo=journal.redo_log(),
                         commit_lag=3600.0)  # fmt: skip


@pytest.mark.parametrize("make_writer", [normal_writer, lagging_writer])
async def test_a_status_change_waits_for_its_commit_and_what_follows_it_too(
    blocking: BlockingJournal, make_writer: Callable[[Journal, Deliver], JournalWriter]
) -> None:
    committed = record_commits(blocking)
    told = Told()
    writer = make_writer(blocking, told)
    async with running(writer):
        trading = Trading()
        signal = trading.signal("sma", "AAPL", Side.BUY, 100.0)
        [stopped] = trading.status("sma", StrategyStatus.PAUSED)
        order = trading.order("sma", "AAPL", Side.BUY, 1)
        writer.submit(signal)
        writer.submit(stopped)  # ends the pass: the signal is told now, ahead of it
        writer.submit(order)  # behind a status change: waits for that commit
        assert told.events == [signal]
        await asyncio.to_thread(blocking.writing.wait, DEADLINE)
        await one_pass()
        assert told.events == [signal]
        blocking.release.set()
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert told.events == [signal, stopped, order]
        assert told.positions == [1, 2, 3]
    # The signal's frame, lagging or not, is committed ahead of the status change.
    assert [position for rows in committed for position in rows] == [1, 2, 3]


async def test_what_the_journal_ignores_is_told_after_the_pass_it_followed(
    tmp_path: Path,
) -> None:
    told = Told()
    writer = normal_writer(Journal.open(tmp_path / "journal.sqlite3", "NORMAL"), told)
    trading = Trading()
    signal = trading.signal("sma", "AAPL", Side.BUY, 100.0)
    order = trading.order("sma", "AAPL", Side.BUY, 1, signal_id=signal.signal.id)
    halted = ExecutionStatusChanged(ExecutionStatus.STOPPED, T0, reason="kill switch")
    quote = QuoteUpdated(Tick("AAPL", 100.0, 1.0, T0))
    for record in (signal, order, halted, quote):
        writer.submit(record)
    assert told.events == [signal, quote]  # the pass's first, and market data, at once
    await one_pass()
    assert told.events == [signal, quote, order, halted]
    assert told.positions == [1, None, 2, None]
    await writer.close()


class FailingJournal(Journal):
    """A journal on a disk that fails every commit."""

    def write_rows(self, rows: GroupRows) -> list[int | None]:
        raise sqlite3.OperationalError("disk I/O error")


async def test_a_told_trade_whose_commit_failed_is_redone_at_the_next_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    told = Told()
    writer = normal_writer(FailingJournal.open(path, "NORMAL"), told)
    trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    for record in trade:
        writer.submit(record)
    with pytest.raises(JournalError, match="disk I/O error"):
        async with asyncio.timeout(DEADLINE):
            await writer.run()
    assert told.events == trade  # told from the redo log before the commit failed
    await writer.close()
    assert redo_path(path).exists()  # kept: it holds what SQLite does not
    with structlog.testing.capture_logs() as logs, Journal.open(path, "NORMAL") as journal:
        [fill] = journal.fills()
        assert journal.last_position == 3
    assert fill.id == trade[2].fill.id  # type: ignore[union-attr]
    assert "journal_redone" in {entry["event"] for entry in logs}
    assert not redo_path(path).exists()


def logged_trade(path: Path, trading: Trading) -> tuple[Journal, GroupRows]:
    """A journal whose redo log holds one round trip that SQLite has not committed."""
    journal = Journal.open(path, "NORMAL")
    rows = journal.encode(trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
    redo = journal.redo_log()
    redo.append(encode_frame(rows.state()))
    redo.close(remove=False)
    return journal, rows


def test_what_sqlite_committed_already_is_skipped_by_the_redo(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal, rows = logged_trade(path, Trading())
    journal.write_rows(rows)  # the commit came through before the crash
    journal.close()
    with Journal.open(path, "NORMAL") as journal:
        counts = journal.counts()
        assert journal.last_position == 3
    assert (counts["signals"], counts["orders"], counts["fills"]) == (1, 1, 1)
    assert counts["position_snapshots"] == 1


def append_frames(path: Path, *payloads: bytes) -> None:
    """Append frames to the journal's redo log as the writer does."""
    redo = RedoLog.open(redo_path(path))
    for payload in payloads:
        redo.append(payload)
    redo.close(remove=False)


@pytest.mark.parametrize("damage", ["cut short", "a byte flipped"])
def test_a_torn_last_frame_is_dropped_and_the_whole_ones_redone(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "journal.sqlite3"
    trading = Trading()
    journal, _ = logged_trade(path, trading)
    torn = journal.encode(trading.round_trip("sma", "AAPL", Side.SELL, 1, 101.0))
    journal.close()
    append_frames(path, encode_frame(torn.state()))
    redo_log = redo_path(path)
    data = bytearray(redo_log.read_bytes())
    end = len(data.rstrip(b"\0"))  # the last frame's end: the log is allocated ahead
    if damage == "cut short":  # the crash came during the copy into the map
        data[end - 5 : end] = bytes(5)
    else:
        data[end - 1] ^= 0xFF
    redo_log.write_bytes(bytes(data))
    with structlog.testing.capture_logs() as logs, Journal.open(path, "NORMAL") as journal:
        assert journal.counts()["fills"] == 1
        assert journal.last_position == 3
    assert "journal_redo_torn_tail" in {entry["event"] for entry in logs}


def test_a_redo_log_naming_a_class_not_the_journals_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path, "NORMAL").close()
    append_frames(path, pickle.dumps(OrderedDict()))
    with pytest.raises(JournalError, match=r"redo log .* collections\.OrderedDict"):
        Journal.open(path, "NORMAL")
    assert redo_path(path).exists()  # refused, not lost


async def test_the_log_is_emptied_once_sqlite_has_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "REDO_EMPTY_AT", 0)
    path = tmp_path / "journal.sqlite3"
    writer = normal_writer(Journal.open(path, "NORMAL"), Told())
    async with running(writer):
        for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
            writer.submit(record)
        await one_pass()
        assert read_redo(redo_path(path)) != []
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert read_redo(redo_path(path)) == []


async def test_full_keeps_no_redo_log_and_tells_after_the_commit(
    blocking: BlockingJournal,
) -> None:
    told = Told()
    writer = JournalWriter.from_config(blocking, told, JournalConfig(synchronous="FULL"))
    async with running(writer):
        trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
        for record in trade:
            writer.submit(record)
        await asyncio.to_thread(blocking.writing.wait, DEADLINE)
        await one_pass()
        assert told.events == []
        assert not redo_path(blocking.path).exists()
        blocking.release.set()
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert told.events == trade


def test_only_fresh_trades_are_told_from_the_log() -> None:
    trading = Trading()
    order = trading.order("sma", "AAPL", Side.BUY, 1)
    fill = trading.reject(order, "daemon restarted before the order filled")
    restarted = replace(fill.fill, id=RESTART_FILL_PREFIX + order.order.id)
    [status] = trading.status("sma", StrategyStatus.ACTIVE)
    records: list[Record] = [order, fill, TradeExecuted(restarted, None), status]
    assert [told_when_logged(r) for r in records] == [True, True, False, False]


async def test_a_pass_bigger_than_a_batch_is_committed_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, "NORMAL")
    committed = record_commits(journal)
    told = Told()
    config = JournalConfig(synchronous="NORMAL", batch_max_events=3)
    writer = JournalWriter.from_config(journal, told, config)
    trading = Trading()
    records = [r for _ in range(3) for r in trading.round_trip("sma", "AAPL", Side.BUY, 1, 1.0)]
    for record in records[:7]:
        writer.submit(record)
    await one_pass()  # the first at once, then one write: frames of 3 and 3
    frames = map(GroupRows.from_state, read_redo(redo_path(path)))
    assert [len(rows.positions) for rows in frames] == [1, 3, 3]
    assert told.events == records[:7] and told.batches == 2
    async with running(writer):
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        sizes = [len(positions) for positions in committed]
        assert sizes and max(sizes) <= 3 and sum(sizes) == 7


async def test_what_a_receiver_submits_while_told_is_committed_after_what_it_was_told(
    tmp_path: Path,
) -> None:
    trading = Trading()
    signal = trading.signal("sma", "AAPL", Side.BUY, 100.0)
    order = trading.order("sma", "AAPL", Side.BUY, 1, signal_id=signal.signal.id)
    [paused] = trading.status("sma", StrategyStatus.PAUSED)
    told = Told()

    def deliver(events: Sequence[Event], positions: Sequence[int | None]) -> None:
        told(events, positions)
        if signal in events:
            writer.submit(order)  # logged: this pass's end
            writer.submit(paused)  # waits for its commit, so ends the pass first

    writer = normal_writer(Journal.open(tmp_path / "journal.sqlite3", "NORMAL"), deliver)
    async with running(writer):
        writer.submit(signal)
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert told.events == [signal, order, paused]
        assert told.positions == [1, 2, 3]
    with Journal.open_readonly(tmp_path / "journal.sqlite3") as journal:
        [entry] = journal.history("sma")
        assert journal.counts()["orders"] == 1 and entry.status is StrategyStatus.PAUSED


class GatedJournal(Journal):
    """A journal whose every commit waits for its own gate, and says when it began."""

    began: list[threading.Event]
    gates: list[threading.Event]

    @classmethod
    def gated(cls, path: Path) -> GatedJournal:
        journal = cls.open(path, "NORMAL")
        assert isinstance(journal, GatedJournal)
        journal.began = [threading.Event() for _ in range(10)]
        journal.gates = [threading.Event() for _ in range(10)]
        journal.commits = 0
        return journal

    commits: int

    def write_rows(self, rows: GroupRows) -> list[int | None]:
        number, self.commits = self.commits, self.commits + 1
        self.began[number].set()
        if not self.gates[number].wait(DEADLINE):
            raise AssertionError("the test never released the commit")
        return super().write_rows(rows)


async def test_a_flush_waits_for_the_commits_of_what_was_told_before_it(tmp_path: Path) -> None:
    """Events the journal ignores are done once told, ahead of the logged records'
    commits: a flush must not take that for the commits (a replay read too early)."""
    journal = GatedJournal.gated(tmp_path / "journal.sqlite3")
    writer = normal_writer(journal, Told())
    async with running(writer):
        trading = Trading()
        first, second, third, fourth = (
            trading.signal("sma", "AAPL", Side.BUY, 1.0) for _ in range(4)
        )
        writer.submit(first)
        await asyncio.to_thread(journal.began[0].wait, DEADLINE)  # its commit waits, alone
        writer.submit(second)
        flushed = asyncio.create_task(writer.flush())
        await one_pass()
        writer.submit(third)
        writer.submit(fourth)
        for _ in range(2):  # told with the fourth, at the pass's end: done then
            writer.submit(ExecutionStatusChanged(ExecutionStatus.RUNNING, T0))
        await one_pass()
        journal.gates[0].set()  # the first is committed, the second not yet
        await asyncio.to_thread(journal.began[1].wait, DEADLINE)
        await one_pass()  # the loop has heard of the first commit
        assert not flushed.done()
        for gate in journal.gates:
            gate.set()
        async with asyncio.timeout(DEADLINE):
            await flushed
        assert len(committed_signals(journal.path)) >= 2


def committed_signals(path: Path) -> list[str]:
    with Journal.open_readonly(path) as reader:
        return [signal.id for signal in reader.signals()]


async def test_a_record_that_cannot_be_encoded_fails_the_writer_and_is_never_told(
    tmp_path: Path,
) -> None:
    told = Told()
    writer = normal_writer(Journal.open(tmp_path / "journal.sqlite3", "NORMAL"), told)
    signal = Trading().signal("sma", "AAPL", Side.BUY, 100.0)
    unwritable = replace(signal, signal=replace(signal.signal, metadata={"n": 2**70}))
    writer.submit(unwritable)  # orjson takes no integer past 64 bits
    assert told.events == []
    assert writer.failure is not None and "cannot be written" in writer.failure.message
    with pytest.raises(JournalError):
        await writer.flush()  # fails at once: it never waits for what was dropped
    await writer.close()


def test_numpy_floats_are_redone_and_dotted_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, "NORMAL")
    trading = Trading()
    order = trading.order("sma", "AAPL", Side.BUY, 1)
    rows = journal.encode([order, trading.fill(order, np.float64(100.5))])
    journal.close()
    append_frames(path, encode_frame(rows.state()))
    with Journal.open(path, "NORMAL") as reopened:
        [fill] = reopened.fills()
    assert fill.price == 100.5
    # protocol 4: STACK_GLOBAL of a module of ours and a dotted name, os.getpid
    module, name = b"orchestrator.journal.store", b"os.getpid"
    payload = b"\x80\x04\x8c%c%s\x8c%c%s\x93." % (len(module), module, len(name), name)
    append_frames(path, payload)
    with pytest.raises(JournalError, match=r"orchestrator\.journal\.store\.os\.getpid"):
        Journal.open(path, "NORMAL")


def test_zeros_after_the_last_frame_end_the_log_and_are_no_torn_tail(tmp_path: Path) -> None:
    """The log is allocated ahead, and a power loss may leave blocks as zeros: no frame
    is empty, so the first zero length ends the log."""
    path = tmp_path / "journal.sqlite3"
    logged_trade(path, Trading())[0].close()
    with redo_path(path).open("ab") as log_file:
        log_file.write(bytes(4096))
    with structlog.testing.capture_logs() as logs, Journal.open(path, "NORMAL") as journal:
        assert journal.counts()["fills"] == 1
    assert "journal_redo_torn_tail" not in {entry["event"] for entry in logs}


def test_appends_past_the_allocated_space_grow_the_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    redo = RedoLog.open(path, capacity=64)
    payloads = [encode_frame([n, "x" * n]) for n in range(40)]
    for payload in payloads:
        redo.append(payload)
    redo.append(*payloads[:3])
    redo.close(remove=False)
    assert read_redo(path) == [[n, "x" * n] for n in (*range(40), 0, 1, 2)]


def test_a_log_reopened_after_a_torn_tail_appends_in_its_place(tmp_path: Path) -> None:
    path = tmp_path / "log"
    append_to(path, encode_frame("whole"), encode_frame("torn" * 100))
    data = bytearray(path.read_bytes())
    end = len(data.rstrip(b"\0"))
    data[end - 100 : end] = bytes(100)
    path.write_bytes(bytes(data))
    with structlog.testing.capture_logs() as logs:
        append_to(path, encode_frame("next"))
        assert read_redo(path) == ["whole", "next"]
    assert [entry["event"] for entry in logs] == ["journal_redo_torn_tail"]  # at the reopen


def test_an_appended_frame_survives_a_kill_of_the_process(tmp_path: Path) -> None:
    """The copy into the shared map is in the kernel's cache when it returns."""
    path = tmp_path / "log"
    child = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from orchestrator.journal.redo import RedoLog, encode_frame\n"
        "redo = RedoLog.open(Path(sys.argv[1]))\n"
        "redo.append(encode_frame(['told', 1]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", child, str(path)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert read_redo(path) == [["told", 1]]


def append_to(path: Path, *payloads: bytes) -> None:
    redo = RedoLog.open(path)
    redo.append(*payloads)
    redo.close(remove=False)


def test_a_conflict_in_the_redo_log_refuses_the_start_and_keeps_the_log(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    trading = Trading()
    journal, rows = logged_trade(path, trading)
    [fill_row] = rows.fills
    rows.fills = [(fill_row[0], *fill_row[1:7], 99.0, *fill_row[8:])]  # same id, other price
    journal.write_rows(rows)  # the id taken by another fill
    journal.close()
    with pytest.raises(JournalError, match=r"cannot redo .* the log is kept"):
        Journal.open(path, "NORMAL")
    assert redo_path(path).stat().st_size > 0


async def test_past_its_bound_the_log_is_not_used_until_sqlite_has_all_of_it(
    blocking: BlockingJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "REDO_MAX_BYTES", 0)
    told = Told()
    writer = normal_writer(blocking, told)
    async with running(writer):
        trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
        for record in trade:
            writer.submit(record)
        await asyncio.to_thread(blocking.writing.wait, DEADLINE)
        await one_pass()
        assert told.events == []  # each waits for its commit, as with FULL
        blocking.release.set()
        async with asyncio.timeout(DEADLINE):
            await writer.flush()
        assert told.events == trade


async def test_a_ticks_frames_lag_behind_their_tell_and_commit_as_one_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    told = Told()
    writer = lagging_writer(Journal.open(path, "NORMAL"), told)
    async with running(writer):
        trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
        for record in trade:
            writer.submit(record)
        await one_pass()
        await one_pass()
        assert told.events == trade  # told at once, from two frames of the redo log
        assert writer.stats.batches == 0 and committed_fills(path) == []
        assert writer.pending == 3
        async with asyncio.timeout(DEADLINE):
            await writer.flush()  # hands the lagging frames over at once
        assert writer.stats.batches == 1 and writer.stats.records == 3
        assert committed_fills(path) == [trade[2].fill.id]  # type: ignore[union-attr]


async def test_lagging_frames_go_to_the_thread_once_a_batch_of_them_waits(
    blocking: BlockingJournal,
) -> None:
    writer = lagging_writer(blocking, Told(), max_events=3)
    async with running(writer):
        for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
            writer.submit(record)
        await one_pass()  # the pass's end: three records lag, a batch
        assert await asyncio.to_thread(blocking.writing.wait, DEADLINE)
        blocking.release.set()


async def test_lagging_frames_are_handed_over_when_the_lag_has_passed(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, "NORMAL")
    began = asyncio.get_running_loop().create_future()
    write_rows = journal.write_rows
    loop = asyncio.get_running_loop()

    def noted(rows: GroupRows) -> list[int | None]:
        loop.call_soon_threadsafe(lambda: began.done() or began.set_result(loop.time()))
        return write_rows(rows)

    journal.write_rows = noted  # type: ignore[method-assign]
    lag = 0.05
    writer = JournalWriter(journal, Told(), redo=journal.redo_log(), commit_lag=lag)
    async with running(writer):
        submitted = loop.time()
        for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
            writer.submit(record)
        async with asyncio.timeout(DEADLINE):
            committed_at = await began  # no flush: the timer handed them over
        assert committed_at - submitted >= lag - 0.001  # and not before the lag


def test_the_writer_lags_by_the_configs_lag_and_refuses_a_negative_one(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", "NORMAL")
    config = JournalConfig(synchronous="NORMAL", redo_commit_lag_ms=12.5)
    assert JournalWriter.from_config(journal, Told(), config)._commit_lag == 0.0125
    assert JournalConfig().redo_commit_lag_ms == 2.0
    with pytest.raises(ValueError, match="redo_commit_lag_ms"):
        JournalConfig(redo_commit_lag_ms=-1)
    with pytest.raises(ValueError, match="commit_lag"):
        JournalWriter(journal, Told(), commit_lag=-1.0)
