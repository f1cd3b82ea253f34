"""The writer stage: events reach clients only after their commit, in order, never
after a failed one."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import (
    GroupRows,
    Journal,
    JournalBacklog,
    JournalConflict,
    JournalError,
    Record,
    StrategyConfigured,
)
from orchestrator.journal.writer import CHECKPOINT_THREAD_NAME, THREAD_NAME, JournalWriter
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
    run_config,
)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.sqlite3")


def events_of(records: Sequence[Record]) -> list[Event]:
    return [r for r in records if not isinstance(r, StrategyConfigured)]


class Receiver:
    """A client: records what it is told and checks it is already in the journal,
    read through a second (read-only) connection as another process would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.told: list[Event] = []
        self.positions: list[int | None] = []
        self.batches = 0
        self.unjournaled_trades: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, events: Sequence[Event], positions: Sequence[int | None]) -> None:
        self.batches += 1
        self.positions.extend(positions)
        with Journal.open_readonly(self.path) as reader:
            stored = {fill.id for fill in reader.fills()}
        for event in events:
            if isinstance(event, TradeExecuted) and event.fill.id not in stored:
                self.unjournaled_trades.append(event.fill.id)
        self.told.extend(events)
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        while len(self.told) < count:
            self.arrived.clear()
            await self.arrived.wait()


def quote(price: float) -> QuoteUpdated:
    return QuoteUpdated(Tick("AAPL", price, 1.0, T0))


def trading_records(trading: Trading, rounds: int) -> list[Record]:
    records: list[Record] = [*trading.status("sma", StrategyStatus.ACTIVE, run_config("AAPL"))]
    for i in range(rounds):
        records.append(quote(100.0 + i))
        side = Side.BUY if i % 2 == 0 else Side.SELL
        records += trading.round_trip("sma", "AAPL", side, 1 + i % 3, 100.0 + i)
    return records


async def test_clients_are_told_only_what_is_committed_in_order(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_events=7)
    task = asyncio.create_task(writer.run())
    records = trading_records(Trading(), 40)
    for record in records[:50]:
        writer.submit(record)
    await asyncio.sleep(0)  # let a first group start so later ones queue behind it
    for record in records[50:]:
        writer.submit(record)
    async with asyncio.timeout(DEADLINE):
        await writer.flush()
    # Journaled events keep their order across groups; quotes keep theirs, told at once.
    assert not_quotes(receiver.told) == not_quotes(events_of(records))
    assert quotes(receiver.told) == quotes(records)
    assert receiver.unjournaled_trades == []
    assert writer.stats.batches >= len(not_quotes(records)) // 7  # at most 7 per commit
    assert writer.stats.records == len(not_quotes(records))
    assert writer.stats.max_seconds > 0 and writer.stats.total_seconds >= writer.stats.max_seconds
    assert writer.pending == 0
    async with asyncio.timeout(DEADLINE):
        await writer.close()
        await task  # close() ends run() cleanly


def quotes(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if isinstance(r, QuoteUpdated)]


def not_quotes(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if not isinstance(r, QuoteUpdated)]


async def test_quotes_are_told_at_once_without_a_commit(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver)
    writer.submit(quote(1.0))
    writer.submit(quote(2.0))
    assert receiver.told == [quote(1.0), quote(2.0)]
    assert writer.pending == 0
    await writer.close()
    assert writer.stats.batches == 0


@pytest.fixture
def blocking(tmp_path: Path) -> BlockingJournal:
    return BlockingJournal.opened(tmp_path / "journal.sqlite3")


async def test_quotes_never_wait_behind_a_commit_and_trades_wait_for_theirs(
    blocking: BlockingJournal,
) -> None:
    receiver = Receiver(blocking.path)
    writer = JournalWriter(blocking, receiver)
    task = asyncio.create_task(writer.run())
    trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    for record in trade:
        writer.submit(record)
    await asyncio.to_thread(blocking.writing.wait, DEADLINE)  # the commit has begun, and waits
    halted = ExecutionStatusChanged(ExecutionStatus.STOPPED, T0, reason="kill switch")
    writer.submit(quote(1.0))
    writer.submit(halted)  # not journaled, but not market data: keeps its place
    writer.submit(quote(2.0))
    assert receiver.told == [quote(1.0), quote(2.0)]  # while the commit is still blocked
    blocking.release.set()
    async with asyncio.timeout(DEADLINE):
        await writer.flush()
    assert receiver.told == [quote(1.0), quote(2.0), *trade, halted]
    assert receiver.unjournaled_trades == []
    await writer.close()
    await task


async def test_an_ignored_event_waits_on_the_loop_for_what_came_before_it_only(
    blocking: BlockingJournal,
) -> None:
    groups: list[list[int | None]] = []
    write_rows = blocking.write_rows

    def recorded(rows: GroupRows) -> list[int | None]:
        groups.append(list(rows.positions))
        return write_rows(rows)

    blocking.write_rows = recorded  # type: ignore[method-assign]
    receiver = Receiver(blocking.path)
    writer = JournalWriter(blocking, receiver, max_events=2)
    task = asyncio.create_task(writer.run())
    first, *rest = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    halted = ExecutionStatusChanged(ExecutionStatus.STOPPED, T0, reason="kill switch")
    resumed = ExecutionStatusChanged(ExecutionStatus.RUNNING, T0 + 1)
    writer.submit(first)
    await asyncio.to_thread(blocking.writing.wait, DEADLINE)  # the first group, alone
    writer.submit(halted)
    for record in rest:
        writer.submit(record)
    writer.submit(resumed)
    assert writer.pending == 3 + len(rest)
    blocking.release.set()
    async with asyncio.timeout(DEADLINE):
        await writer.flush()
    assert receiver.told == [first, halted, *rest, resumed]
    assert receiver.positions[1] is None and receiver.positions[-1] is None
    # The thread never had the ignored ones: they took no room in a group of 2.
    assert list(map(len, groups)) == [1, len(rest)]
    assert writer.pending == 0
    await writer.close()
    await task


async def test_nothing_is_told_before_its_commit_returns(blocking: BlockingJournal) -> None:
    receiver = Receiver(blocking.path)
    writer = JournalWriter(blocking, receiver, max_events=2)
    task = asyncio.create_task(writer.run())
    trade = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    for record in trade:
        writer.submit(record)
    await asyncio.to_thread(blocking.writing.wait, DEADLINE)
    for _ in range(20):
        await asyncio.sleep(0)  # give the loop every chance to deliver early
    assert receiver.told == []
    assert writer.pending == len(trade)
    blocking.release.set()
    async with asyncio.timeout(DEADLINE):
        await receiver.wait_for(len(trade))
    assert receiver.told == trade and receiver.batches == 2  # two groups: 2 and 1
    await writer.close()
    await task


async def test_close_commits_everything_and_joins_the_thread(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_events=5)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)
    running = {thread.name for thread in threading.enumerate()}
    assert {THREAD_NAME, CHECKPOINT_THREAD_NAME} <= running
    records = not_quotes(trading_records(Trading(), 30))
    for record in records:
        writer.submit(record)
    async with asyncio.timeout(DEADLINE):
        await writer.close()  # no flush first: close commits what is queued
        await task
    assert receiver.told == events_of(records)
    assert not {THREAD_NAME, CHECKPOINT_THREAD_NAME} & {t.name for t in threading.enumerate()}
    with Journal.open_readonly(journal.path) as reader:
        assert len(reader.fills()) == sum(isinstance(r, TradeExecuted) for r in records) > 0
    writer.submit(quote(1.0))  # closed: ignored
    assert len(receiver.told) == len(events_of(records))


class FailingJournal(Journal):
    """A journal on a disk that fails every write."""

    def write_rows(self, rows: GroupRows) -> list[int | None]:
        raise sqlite3.OperationalError("disk I/O error")


async def test_a_disk_error_fails_the_writer_and_tells_nothing(tmp_path: Path) -> None:
    journal = FailingJournal.open(tmp_path / "journal.sqlite3")
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver)
    for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
        writer.submit(record)
    with pytest.raises(JournalError, match="cannot be written: disk I/O error"):
        async with asyncio.timeout(DEADLINE):
            await writer.run()
    assert receiver.told == []
    assert writer.failure is not None
    with pytest.raises(JournalError):
        await writer.flush()
    async with asyncio.timeout(DEADLINE):
        await writer.close()
    assert not {THREAD_NAME, CHECKPOINT_THREAD_NAME} & {t.name for t in threading.enumerate()}


async def test_a_backlog_while_the_disk_is_slow_stops_the_writer(
    blocking: BlockingJournal,
) -> None:
    receiver = Receiver(blocking.path)
    writer = JournalWriter(blocking, receiver, max_pending=10)
    task = asyncio.create_task(writer.run())
    records = not_quotes(trading_records(Trading(), 10))
    writer.submit(records[0])
    await asyncio.to_thread(blocking.writing.wait, DEADLINE)  # one commit stuck on the disk
    for record in records[1:12]:
        writer.submit(record)
    assert isinstance(writer.failure, JournalBacklog)
    blocking.release.set()
    with pytest.raises(JournalBacklog, match="10 events behind"):
        async with asyncio.timeout(DEADLINE):
            await task
    assert receiver.told == []  # the stuck commit went through, but is never told
    async with asyncio.timeout(DEADLINE):
        await writer.close()


async def test_a_failed_commit_is_never_told_and_stops_the_writer(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_events=3)
    trading = Trading()
    good = trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    reused = Trading().round_trip("sma", "AAPL", Side.SELL, 5, 99.0)  # ids start over
    after = trading.round_trip("sma", "AAPL", Side.BUY, 1, 101.0)
    for record in [*good, *reused, *after]:
        writer.submit(record)
    with pytest.raises(JournalConflict, match="ids must not be reused"):
        async with asyncio.timeout(DEADLINE):
            await writer.run()
    assert receiver.told == good
    assert writer.failure is not None
    with pytest.raises(JournalError):
        await writer.flush()
    writer.submit(quote(1.0))  # ignored from now on
    assert receiver.told == good
    with Journal.open_readonly(journal.path) as reader:
        assert [f.id for f in reader.fills()] == [good[2].fill.id]  # type: ignore[union-attr]
    await writer.close()


async def test_a_failure_wakes_those_waiting_for_a_flush(journal: Journal) -> None:
    writer = JournalWriter(journal, Receiver(journal.path))
    task = asyncio.create_task(writer.run())
    writer.submit(Trading().round_trip("s", "AAPL", Side.BUY, 1, 1.0)[0])
    await writer.flush()
    writer.submit(Trading().round_trip("s", "AAPL", Side.BUY, 2, 9.0)[0])  # sig_000001 again
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(JournalConflict):
            await writer.flush()
        with pytest.raises(JournalConflict):
            await task
    await writer.close()


async def test_a_backlog_beyond_the_bound_stops_the_writer(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_pending=10)
    records = [r for r in trading_records(Trading(), 10) if not isinstance(r, QuoteUpdated)]
    for record in records[:11]:
        writer.submit(record)
    with pytest.raises(JournalBacklog, match="10 events behind"):
        async with asyncio.timeout(DEADLINE):
            await writer.run()
    assert receiver.told == []
    await writer.close()


async def test_quotes_and_bars_never_count_as_a_journal_backlog(journal: Journal) -> None:
    # A feed faster than the disk must not stop the daemon: quotes are not written.
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_pending=10)
    for i in range(1000):
        writer.submit(quote(float(i + 1)))
    assert writer.failure is None
    task = asyncio.create_task(writer.run())
    await writer.flush()
    assert len(receiver.told) == 1000
    await writer.close()
    await task


async def test_status_changes_are_journaled_with_the_config_they_ran_with(
    journal: Journal,
) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver)  # no registry to ask: the event has the config
    trading = Trading()
    config = run_config("AAPL", max_position_value=5000.0)
    started = [replace(trading.status("sma", StrategyStatus.ACTIVE)[0], config=config)]
    writer.submit(started[0])
    unknown = trading.status("other", StrategyStatus.ACTIVE)
    writer.submit(unknown[0])
    await writer.close()
    assert receiver.told == [started[0], unknown[0]]  # the config records are not told
    with Journal.open(journal.path) as again:
        restored = {s.id: s for s in again.restorable_strategies()}
    assert restored["sma"].status is StrategyStatus.ACTIVE
    assert restored["sma"].config == run_config("AAPL", max_position_value=5000.0)
    assert restored["other"].status is StrategyStatus.ERROR  # no config: not restored


async def test_a_full_batch_does_not_wait_for_the_delay(journal: Journal) -> None:
    receiver = Receiver(journal.path)
    writer = JournalWriter(journal, receiver, max_events=3, max_delay=3600.0)
    task = asyncio.create_task(writer.run())
    records = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    for record in records:
        writer.submit(record)
    async with asyncio.timeout(DEADLINE):
        await receiver.wait_for(3)
        writer.submit(quote(1.0))  # not full: would wait an hour, but a flush sends it now
        await writer.flush()
    assert receiver.told == [*records, quote(1.0)]
    assert receiver.batches == 2
    await writer.close()
    await task


async def test_built_from_the_config(journal: Journal) -> None:
    config = JournalConfig(
        batch_max_events=2, batch_max_delay_ms=0, max_pending_events=1000, synchronous="FULL"
    )
    receiver = Receiver(journal.path)
    writer = JournalWriter.from_config(journal, receiver, config)
    records = Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    for record in records:
        writer.submit(record)
    await writer.close()
    assert receiver.batches == 2
    assert receiver.told == records


async def test_a_failing_receiver_does_not_stop_the_journal(journal: Journal) -> None:
    told: list[Event] = []

    def deliver(events: Sequence[Event], _: Sequence[int | None]) -> None:
        told.extend(events)
        raise RuntimeError("a broken server")

    writer = JournalWriter(journal, deliver, max_events=1)
    for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
        writer.submit(record)
    await writer.close()
    assert len(told) == 3
    assert writer.deliver_errors == 3


def test_commits_leave_the_log_to_the_checkpointer_beside_them(tmp_path: Path) -> None:
    """Checkpoints elsewhere: no commit copies the log into the database (SQLite's own
    checkpoint, inside the commit that passes 1,000 pages, made that commit 10 to 50
    times slower); the checkpointer's connection copies all of it."""
    with Journal.open(tmp_path / "journal.sqlite3", "NORMAL") as journal:
        checkpointer = journal.checkpoint_elsewhere()
        log_file = journal.path.with_name(journal.path.name + "-wal")
        records = not_quotes(trading_records(Trading(), 700))
        for start in range(0, len(records) - 10, 5):
            journal.write(records[start : start + 5])
        (page_size,) = sqlite3.connect(journal.path).execute("PRAGMA page_size").fetchone()
        assert log_file.stat().st_size > 1_200 * page_size  # never restarted by a commit
        assert checkpointer.checkpoint() == 0  # everything copied, none left
        grown = log_file.stat().st_size
        journal.write(records[-10:])  # a complete checkpoint lets the log start over
        assert log_file.stat().st_size == grown
        checkpointer.close()
    with Journal.open_readonly(journal.path) as reader:
        assert len(reader.fills()) == sum(isinstance(r, TradeExecuted) for r in records)
