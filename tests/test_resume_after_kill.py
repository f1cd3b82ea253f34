"""No gap across a crash: a client that resumes after kill -9 gets every committed
trade it missed, once each, in order.

The daemon trades fast (the crash test's strategies and feed). One client stays on
8082 for the whole test, as a dashboard would: it records every ``strategy_trade``
with its journal ``position``, and when the connection drops it reconnects with the
last ``lastSeq``, ``epoch`` and ``position`` it saw, again and again until the
daemon is back. Meanwhile the daemon is killed with SIGKILL at seeded moments
while it trades, and started again on the same journal, for several rounds.

At the end the journal is read as the last kill left it: the trades the client
saw are exactly the journal's fills up to the last position the client reached,
each once, in the journal's order; the client did get trades from the journal
after restarts (not a vacuous pass: what was committed while it was away); and
every restart was a resume (``resumed``), never a ``resync_required``.

``RESUME_KILL_ROUNDS`` sets the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateways.client.ws_client import Backoff, OrchestratorClient, resume_url
from orchestrator.model.events import Topic
from tests.gateways.test_daemon_process import SERVERS, free_ports, write_config
from tests.support import recovered_journal
from tests.test_crash_recovery import FEED_AND_STRATEGIES, spawned
from tests.test_snapshot_commit import start_strategies

ROUNDS = int(os.environ.get("RESUME_KILL_ROUNDS", "4"))
SEED = 20_261_203
TRADING_SECONDS = (0.3, 1.0)
RECONNECT_EVERY = 0.05


@dataclass
class ResumingClient:
    """What a client does: keep its stream position, resume with it, record trades."""

    url: str
    trades: list[tuple[int, str]] = field(default_factory=list)
    """(position, trade id) of every strategy_trade, in the order received."""
    epoch: int | None = None
    last_seq: int | None = None
    position: int | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)
    resyncs: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    greeted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the first message: the server has joined it to the stream."""

    def see(self, message: dict[str, Any]) -> None:
        self.greeted.set()
        kind, data = message["type"], message.get("data")
        if isinstance(message.get("position"), int):
            self.position = max(self.position or 0, message["position"])
        if kind == "resumed":
            self.resumed.append(data)
            self.epoch, self.last_seq = data["epoch"], data["fromSeq"] - 1
        elif kind == "resync_required":
            self.resyncs.append(data)
        if isinstance(message.get("seq"), int):
            assert (
                self.last_seq is None or message.get("snapshot") or message["seq"] > self.last_seq
            )
            self.epoch, self.last_seq = message["epoch"], message["seq"]
        if kind == "strategy_trade":
            self.trades.append((message["position"], data["id"]))

    def address(self) -> str:
        if self.epoch is None or self.last_seq is None:
            return self.url
        return resume_url(self.url, self.last_seq, self.epoch, self.position)

    async def run(self) -> None:
        """Connect (resuming), read until the daemon goes, again, until cancelled."""
        while True:
            # A kill during the opening handshake ends it without a response.
            with contextlib.suppress(ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                async with connect(self.address(), open_timeout=2) as ws:
                    self.connected.set()
                    async for raw in ws:
                        self.see(orjson.loads(raw))
            self.connected.clear()
            await asyncio.sleep(RECONNECT_EVERY)


async def test_a_client_resuming_after_each_kill_sees_every_journaled_trade_once(
    tmp_path: Path,
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(FEED_AND_STRATEGIES)
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    rng = random.Random(SEED)
    watcher = ResumingClient(url)
    reader: asyncio.Task[None] | None = None
    try:
        for number in range(ROUNDS):
            async with spawned(config) as run:
                await run.wait_ready()
                if number == 0:
                    # In the stream before the first trade, so it must see every one.
                    reader = asyncio.create_task(watcher.run(), name="resuming-client")
                    async with asyncio.timeout(10):
                        await watcher.greeted.wait()
                    await start_strategies(url)
                async with asyncio.timeout(10):
                    await watcher.connected.wait()
                await asyncio.sleep(rng.uniform(*TRADING_SECONDS))  # trades flow meanwhile
                await run.kill()
                assert run.errors() == [], run.errors()
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    with recovered_journal(tmp_path / "state" / "journal.sqlite3") as journal:
        journaled = [
            (p, trade.fill.id)
            for p, trade in journal.stream(0, 10**12, [Topic.STRATEGY_TRADE], 10**7)
        ]
    assert watcher.position is not None
    committed = [(p, trade_id) for p, trade_id in journaled if p <= watcher.position]
    assert watcher.trades == committed  # every one, once each, in the journal's order
    assert len(watcher.trades) == len({trade_id for _, trade_id in watcher.trades})
    assert watcher.resyncs == []
    assert len(watcher.resumed) >= ROUNDS - 1  # one resume per restart at least
    from_journal = sum(r.get("journalReplayed", 0) for r in watcher.resumed)
    print(
        f"[resume after kill] rounds={ROUNDS}, trades={len(watcher.trades)}, "
        f"resumes={len(watcher.resumed)}, from_journal={from_journal}, "
        f"from_window={sum(r['replayed'] for r in watcher.resumed)}, resyncs=0, "
        f"journal_fills={len(journaled)}"
    )
    assert from_journal > 0  # trades committed while it was away came from the journal
    assert len(committed) > 50  # the daemon traded


async def test_the_python_client_resuming_after_each_kill_sees_every_journaled_trade_once(
    tmp_path: Path,
) -> None:
    """The same with ``OrchestratorClient`` as it is, reconnecting on its own: its
    handlers are told every journaled trade up to its last position, once each, in
    order, through kill -9 restarts that it resumes rather than resyncs."""
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(FEED_AND_STRATEGIES)
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    rng = random.Random(SEED + 1)
    trades: list[tuple[int, str]] = []
    notices: list[str] = []
    resumed: list[dict[str, Any]] = []
    client = OrchestratorClient(url, backoff=Backoff(RECONNECT_EVERY, 0.2), open_timeout=2)
    client.on("strategy_trade", lambda m: trades.append((m["position"], m["data"]["id"])))
    client.on(["resumed", "resync_required"], lambda m: notices.append(m["type"]))
    client.on("resumed", lambda m: resumed.append(m["data"]))
    greeted = asyncio.Event()
    client.on(None, lambda _: greeted.set())  # the snapshot: it is in the stream
    try:
        for number in range(ROUNDS):
            async with spawned(config) as run:
                await run.wait_ready()
                if number == 0:
                    # In the stream before the first trade, so it must see every one.
                    await client.connect()
                    async with asyncio.timeout(10):
                        await greeted.wait()
                    await start_strategies(url)
                async with asyncio.timeout(10):
                    await client.wait_connected()
                await asyncio.sleep(rng.uniform(*TRADING_SECONDS))  # trades flow meanwhile
                await run.kill()
    finally:
        await client.close()
    with recovered_journal(tmp_path / "state" / "journal.sqlite3") as journal:
        journaled = [
            (p, trade.fill.id)
            for p, trade in journal.stream(0, 10**12, [Topic.STRATEGY_TRADE], 10**7)
        ]
    assert client.position is not None
    assert trades == [(p, trade_id) for p, trade_id in journaled if p <= client.position]
    assert client.reconnects >= ROUNDS - 1
    assert notices.count("resumed") >= ROUNDS - 1 and "resync_required" not in notices
    assert len(trades) > 50  # the daemon traded
    assert sum(r.get("journalReplayed", 0) for r in resumed) > 0  # some while it was away
