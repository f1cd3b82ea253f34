"""A journal that cannot be written stops the daemon: nothing is told of the
events it could not commit, and the exit code says the daemon failed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
import structlog

from gateways.daemon import Daemon, serve_until_signalled
from orchestrator.journal.store import GroupRows
from orchestrator.journal.writer import THREAD_NAME
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event, HaltSource, KillSwitchChanged
from tests.support import START, test_config

DEADLINE = 10.0


async def test_a_disk_error_stops_the_daemon_with_exit_code_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    daemon = Daemon(test_config(), clock=ManualClock(START))
    assert daemon.journal is not None

    def disk_error(rows: GroupRows) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(daemon.journal, "write_rows", disk_error)
    told: list[Event] = []
    daemon.outbox.subscribe(told.append)
    engaged = KillSwitchChanged(True, "test", False, HaltSource.COMMAND, START)
    daemon.bus.publish(engaged)  # journaled: the writer's first commit fails
    before = writer_threads()
    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(DEADLINE):
            code = await serve_until_signalled(daemon)
    assert code == 1
    assert engaged not in told
    assert "journal_failed" in {entry["event"] for entry in logs}
    assert writer_threads() <= before  # this daemon's writer thread is joined


def writer_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == THREAD_NAME}
