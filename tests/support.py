"""Shared test helpers: a daemon on ephemeral ports and a real WebSocket client.

The test daemon runs on a ManualClock and does not run the feed task: a test
pushes ticks with :meth:`TestDaemon.tick` and moves time with
:meth:`TestDaemon.advance`, so every signal and fill is deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from orchestrator.journal.store import Journal
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event
from orchestrator.model.market import Tick

START = 1_699_999_980.0
"""A manual-clock start on a whole minute, so bar buckets are easy to reason about."""

RECV_TIMEOUT = 5.0


def test_config(**overrides: Any) -> DaemonConfig:
    """The embedded defaults on port 0, with no warm-up history unless asked."""
    data: dict[str, Any] = {
        "servers": {
            "orchestrator": {"port": 0, "path": "/"},
            "market_data": {"port": 0, "path": "/ws"},
            "risk": {"port": 0, "path": "/ws"},
        },
        "market_data": {"feed": {"kind": "synthetic", "history_seconds": 0}},
        # Off unless a test gives it its own address: the default ipc:// path is shared.
        "nng": {"enabled": False},
        # Each daemon its own journal; NORMAL survives a crash of the process, which
        # is all a test needs, and keeps the suite fast.
        "journal": {
            "state_dir": tempfile.mkdtemp(prefix="orchestrator-test-"),
            "synchronous": "NORMAL",
        },
    }
    data.update(overrides)
    return DaemonConfig(**data)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def report(capsys: pytest.CaptureFixture[str], title: str, **figures: Any) -> None:
    """Print a test's figures, visible in a normal run as well as with ``-s``."""
    line = f"\n[{title}] " + ", ".join(f"{name}={value}" for name, value in figures.items())
    with capsys.disabled():
        print(line)


def recovered_journal(path: Path) -> Journal:
    """The journal at ``path`` as the next start finds it, opened read-only: opening it
    as the daemon does first writes in what a kill left in the redo log. Only for a
    journal no daemon holds (one that was killed or stopped)."""
    Journal.open(path).close()
    return Journal.open_readonly(path)


class TestDaemon:
    __test__ = False

    def __init__(self, daemon: Daemon, clock: ManualClock) -> None:
        self.daemon = daemon
        self.clock = clock

    def url(self, server: str = "orchestrator", path: str | None = None) -> str:
        config = getattr(self.daemon.config.servers, server)
        return f"ws://127.0.0.1:{self.daemon.servers[server].port}{path or config.path}"

    def tick(self, symbol: str, price: float, size: float = 1.0) -> None:
        self.daemon.core.market.handle_tick(Tick(symbol, price, size, self.clock.now()))

    def advance(self, seconds: float) -> None:
        """Move time and close every bar that is due, as the bar clock would."""
        self.clock.advance(seconds)
        self.daemon.core.market.close_due_bars()

    async def next_event(self, predicate: Callable[[Event], bool]) -> Event:
        """Await the next bus event that matches ``predicate``."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def watch(event: Event) -> None:
            if not future.done() and predicate(event):
                future.set_result(event)

        self.daemon.bus.subscribe(watch)
        try:
            async with asyncio.timeout(RECV_TIMEOUT):
                return await future
        finally:
            self.daemon.bus.unsubscribe(watch)

    async def committed_journal(self) -> Journal:
        """The daemon's journal once everything told so far is in SQLite: in NORMAL a
        trade is told from the redo log, before SQLite commits it."""
        journal = self.daemon.journal
        assert journal is not None, "the journal is off"
        await self.daemon.writer.flush()
        return journal

    @asynccontextmanager
    async def client(
        self, server: str = "orchestrator", path: str | None = None
    ) -> AsyncIterator[Client]:
        async with connect(self.url(server, path)) as ws:
            client = Client(ws)
            await client.read_snapshot()
            yield client


@asynccontextmanager
async def running_daemon(config: DaemonConfig | None = None) -> AsyncIterator[TestDaemon]:
    clock = ManualClock(START)
    daemon = Daemon(config or test_config(), clock=clock)
    await daemon.start()
    try:
        yield TestDaemon(daemon, clock)
    finally:
        await daemon.stop()


class Client:
    """A real WebSocket client that decodes JSON and matches replies by requestId."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.snapshot: list[dict[str, Any]] = []

    async def read_snapshot(self) -> None:
        self.snapshot = [await self.recv(), await self.recv()]

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            await self.ws.send(orjson.dumps(message).decode())
        else:
            await self.ws.send(message)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message: dict[str, Any] = orjson.loads(raw)
        return message

    async def recv_type(self, kind: str, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next message of ``kind``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv()
                if message["type"] == kind:
                    return message

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send with a fresh requestId and return the reply that carries it."""
        request_id = f"req-{next(self._ids)}"
        await self.send({**message, "requestId": request_id})
        async with asyncio.timeout(RECV_TIMEOUT):
            while True:
                reply = await self.recv()
                if reply.get("requestId") == request_id:
                    return reply
