"""A resume reads the journal only once what its client was told is committed: with
the redo log a trade is told before SQLite has it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gateways.api.journal_replay import JournalReplay
from gateways.ws.stream import Resync
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.writer import JournalWriter
from orchestrator.model.events import Event, Topic
from orchestrator.model.orders import Side
from tests.orchestrator.journal.journal_support import DEADLINE, T0, BlockingJournal, Trading


async def test_a_trade_told_before_its_commit_is_replayed_once_it_is_settled(
    tmp_path: Path,
) -> None:
    journal = BlockingJournal.opened(tmp_path / "journal.sqlite3", "NORMAL")
    epoch = journal.begin_run(1, T0)
    told: list[int | None] = []

    def deliver(events: Sequence[Event], positions: Sequence[int | None]) -> None:
        told.extend(positions)

    writer = JournalWriter.from_config(journal, deliver, JournalConfig(synchronous="NORMAL"))
    task = asyncio.create_task(writer.run())
    for record in Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0):
        writer.submit(record)
    await asyncio.sleep(0)  # the pass ends: the trade is told from the redo log
    await asyncio.to_thread(journal.writing.wait, DEADLINE)  # its commit waits for the test
    position = told[-1]
    assert position is not None
    settle_asked = asyncio.Event()

    async def settled() -> None:
        settle_asked.set()
        journal.release.set()  # only now may SQLite commit what the client was told
        await writer.flush()

    async with asyncio.timeout(DEADLINE):
        read = await JournalReplay(journal, settled).replay(
            epoch, 0, position, [Topic.STRATEGY_TRADE], 10
        )
    assert settle_asked.is_set()
    assert not isinstance(read, Resync)
    assert [item.position for item in read] == [position]
    await writer.close()
    await task
