"""Gap-free streams through real servers: seq and epoch, resume by URL and by
command, resync when the gap is too old or the daemon restarted, and a client
that reconnects 200 times under load without a gap or a duplicate."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateways.config import DaemonConfig
from orchestrator.model.events import ExecutionStatusChanged
from tests.support import RECV_TIMEOUT, Client, TestDaemon, report, running_daemon, test_config

RECONNECTS = 200
PRODUCER_BURST = 10
# How far the producer may run ahead of the client: well inside what one resume
# can replay (max_outbound_bytes), however slow the machine is.
PRODUCER_MAX_LEAD = 500


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
    return message


def publish(daemon: TestDaemon, *reasons: str) -> None:
    """Publish real ExecutionStatusChanged events on the bus, told apart by their
    reason; every server broadcasts them to all its clients."""
    execution = daemon.daemon.core.execution
    for reason in reasons:
        event = ExecutionStatusChanged(execution.status, daemon.clock.now(), reason)
        daemon.daemon.bus.publish(event)


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]


async def seen_by(witness: Client, reason: str) -> list[dict[str, Any]]:
    """Read a connected client's messages up to the event with ``reason``.

    Delivery from the bus to the servers may be asynchronous (through the
    journal); once a client has an event, every server has broadcast it and
    everything published before it."""
    messages = []
    while True:
        message = await witness.recv()
        messages.append(message)
        data = message["data"]
        if isinstance(data, dict) and data.get("reason") == reason:
            return messages


@asynccontextmanager
async def quiet_daemon(config: DaemonConfig | None = None) -> AsyncIterator[TestDaemon]:
    """A running daemon whose start-up broadcasts have all gone out."""
    async with running_daemon(config) as daemon:
        async with daemon.client() as witness:
            publish(daemon, "settled")
            await seen_by(witness, "settled")
        yield daemon


def resume_command(last_seq: int, epoch: int, request_id: str | None = None) -> dict[str, Any]:
    command: dict[str, Any] = {"type": "resume", "lastSeq": last_seq, "epoch": epoch}
    if request_id is not None:
        command["requestId"] = request_id
    return command


async def resume_by_command(
    ws: ClientConnection, last_seq: int, epoch: int, dropped: list[int] | None = None
) -> dict[str, Any]:
    """Send resume and return its answer, dropping what came before it.

    The protocol rule: the replay that follows ``resumed`` covers everything
    after lastSeq, including what this new connection may already have been
    sent live, so a client drops whatever it received before the answer
    (the seqs of dropped broadcasts are appended to ``dropped``)."""
    await ws.send(orjson.dumps(resume_command(last_seq, epoch)).decode())
    while True:
        message = await recv(ws)
        if message["type"] in ("resumed", "resync_required"):
            return message
        if dropped is not None and "snapshot" not in message:
            dropped.append(message["seq"])


@dataclass
class Tally:
    """Every broadcast seq a client processed, across all its connections."""

    last_seq: int
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    out_of_order: int = 0
    advanced: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, message: dict[str, Any]) -> None:
        assert "snapshot" not in message, message
        self.advanced.set()
        seq = message["seq"]
        if seq in self.seen:
            self.duplicates += 1
            return
        if seq < self.last_seq:
            self.out_of_order += 1
        self.seen.add(seq)
        self.last_seq = max(self.last_seq, seq)

    def gaps(self, first: int, last: int) -> int:
        return len(set(range(first, last + 1)) - self.seen)


# ---------------------------------------------------------------- envelope


async def test_broadcasts_carry_consecutive_seq_and_the_epoch_and_snapshots_the_position() -> None:
    async with quiet_daemon() as daemon, daemon.client() as client:
        server = daemon.daemon.servers["orchestrator"]
        epoch = daemon.daemon.epoch
        for message in client.snapshot:
            assert message["snapshot"] is True
            assert (message["seq"], message["epoch"]) == (server.stream_seq, epoch)
        start = client.snapshot[0]["seq"]
        publish(daemon, "a", "b", "c")
        messages = [await client.recv() for _ in range(3)]
        assert [m["seq"] for m in messages] == [start + 1, start + 2, start + 3]
        assert all(m["epoch"] == epoch and "snapshot" not in m for m in messages)
        # Additive: the stock-bot fields are untouched.
        assert all(set(m) == {"type", "timestamp", "data", "seq", "epoch"} for m in messages)
        assert messages[0]["type"] == "execution_service_status"
        assert messages[0]["data"] == {"status": "RUNNING", "reason": "a"}


# ---------------------------------------------------------------- resume


async def test_resume_by_url_replays_what_was_missed_then_continues_live() -> None:
    async with quiet_daemon() as daemon, daemon.client() as witness:
        epoch = daemon.daemon.epoch
        async with daemon.client() as client:
            last_seq = client.snapshot[0]["seq"]
        publish(daemon, *names("n", 4))  # missed while away
        await seen_by(witness, "n4")
        url = f"{daemon.url()}?lastSeq={last_seq}&epoch={epoch}"
        async with connect(url) as ws:
            resumed = await recv(ws)
            assert resumed["type"] == "resumed"
            assert resumed["data"] == {
                "epoch": epoch,
                "fromSeq": last_seq + 1,
                "toSeq": last_seq + 4,
                "replayed": 4,
            }
            replayed = [await recv(ws) for _ in range(4)]
            assert [m["seq"] for m in replayed] == list(range(last_seq + 1, last_seq + 5))
            assert [m["data"]["reason"] for m in replayed] == names("n", 4)
            publish(daemon, "live")
            live = await recv(ws)
            assert (live["seq"], live["data"]["reason"]) == (last_seq + 5, "live")


async def test_resume_by_command_replays_after_last_seq_and_the_client_drops_earlier_frames() -> (
    None
):
    async with quiet_daemon() as daemon, daemon.client() as witness:
        epoch = daemon.daemon.epoch
        async with daemon.client() as client:
            last_seq = client.snapshot[0]["seq"]
        publish(daemon, "away1", "away2")  # missed while away
        await seen_by(witness, "away2")
        async with daemon.client() as client:
            # Live frames reach the new connection before it gets to send resume.
            publish(daemon, *names("early", 3))
            early = [await client.recv() for _ in range(3)]
            assert [m["seq"] for m in early] == [last_seq + 3, last_seq + 4, last_seq + 5]
            await client.send(resume_command(last_seq, epoch, "r1"))
            resumed = await client.recv()
            assert resumed["type"] == "resumed" and resumed["requestId"] == "r1"
            assert resumed["data"]["replayed"] == 5
            # The replay covers the early frames again: a client that kept them
            # would see them twice, so it discards what came before `resumed`.
            replayed = [await client.recv() for _ in range(5)]
            assert [m["seq"] for m in replayed] == list(range(last_seq + 1, last_seq + 6))
            assert [m["data"]["reason"] for m in replayed] == ["away1", "away2", *names("early", 3)]
            publish(daemon, "live")
            assert (await client.recv())["seq"] == last_seq + 6


@pytest.mark.parametrize("how", ["url", "command"])
async def test_a_gap_older_than_the_window_gets_resync_and_a_snapshot(how: str) -> None:
    config = test_config(streams={"replay_window": 5})
    async with quiet_daemon(config) as daemon, daemon.client() as witness:
        epoch = daemon.daemon.epoch
        server = daemon.daemon.servers["orchestrator"]
        async with daemon.client() as client:
            last_seq = client.snapshot[0]["seq"]
        publish(daemon, *names("n", 6))  # one more than the window holds
        await seen_by(witness, "n6")
        await check_resync(daemon, how, last_seq, epoch, "no longer held")
        # Exactly the window is still fine.
        last_seq = server.stream_seq
        publish(daemon, *names("m", 5))
        await seen_by(witness, "m5")
        async with connect(f"{daemon.url()}?lastSeq={last_seq}&epoch={epoch}") as ws:
            resumed = await recv(ws)
            assert resumed["type"] == "resumed" and resumed["data"]["replayed"] == 5


async def test_with_nobody_to_resume_a_server_numbers_encodes_and_keeps_nothing() -> None:
    """Once its last client has been gone for longer than the replay window, nobody
    can resume into what a server broadcasts: it costs no seq, no encoding and no
    room (an idle daemon's every indicator and trade was encoded for nobody)."""
    config = test_config(streams={"replay_window": 5})
    async with quiet_daemon(config) as daemon:
        epoch = daemon.daemon.epoch
        server = daemon.daemon.servers["orchestrator"]
        async with daemon.client() as client:
            last_seq = client.snapshot[0]["seq"]
        await server.wait_for_no_clients()
        left_at = server.stream_seq
        publish(daemon, *names("idle", 20))
        await daemon.daemon.writer.flush()
        assert server.stream_seq == left_at + 6  # kept while a resume could want them
        await check_resync(daemon, "url", last_seq, epoch, "no longer held")
        async with daemon.client() as client:
            publish(daemon, "back")
            message = await client.recv()
            assert message["data"]["reason"] == "back"
            assert message["seq"] == client.snapshot[0]["seq"] + 1 == server.stream_seq


async def test_a_server_nobody_has_joined_numbers_encodes_and_keeps_nothing() -> None:
    """No client of this run holds a seq to resume from: what a server broadcasts before
    its first client costs nothing, not even the first replay window's worth."""
    config = test_config(streams={"replay_window": 50})
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        publish(daemon, *names("unwatched", 20))
        await daemon.daemon.writer.flush()
        assert server.stream_seq == 0
        async with daemon.client() as client:
            assert client.snapshot[0]["seq"] == 0
            publish(daemon, "first")
            message = await client.recv()
            assert message["data"]["reason"] == "first" and message["seq"] == 1


@pytest.mark.parametrize("how", ["url", "command"])
async def test_a_changed_epoch_gets_resync_and_a_snapshot(how: str) -> None:
    async with quiet_daemon() as daemon:
        # A client of the daemon's previous run: its lastSeq is even in range.
        await check_resync(daemon, how, 1, daemon.daemon.epoch - 1, "epoch changed")


async def test_a_last_seq_ahead_of_the_stream_gets_resync() -> None:
    async with quiet_daemon() as daemon:
        server = daemon.daemon.servers["orchestrator"]
        await check_resync(daemon, "url", server.stream_seq + 10, daemon.daemon.epoch, "ahead")


async def check_resync(
    daemon: TestDaemon, how: str, last_seq: int, epoch: int, reason: str
) -> None:
    server = daemon.daemon.servers["orchestrator"]
    if how == "url":
        ws = await connect(f"{daemon.url()}?lastSeq={last_seq}&epoch={epoch}")
        notice = await recv(ws)
    else:
        ws = await connect(daemon.url())
        notice = await resume_by_command(ws, last_seq, epoch)
    async with ws:
        assert notice["type"] == "resync_required"
        assert reason in notice["data"]["reason"]
        assert notice["data"]["epoch"] == daemon.daemon.epoch
        assert notice["data"]["seq"] == server.stream_seq
        snapshot = [await recv(ws), await recv(ws)]
        assert [m["type"] for m in snapshot] == ["execution_service_status", "strategy_status_list"]
        assert all(m["snapshot"] is True and m["seq"] == server.stream_seq for m in snapshot)
        publish(daemon, "live")
        live = await recv(ws)
        assert live["seq"] == notice["data"]["seq"] + 1 and "snapshot" not in live


async def test_a_replay_larger_than_the_outbound_cap_gets_resync_not_a_1013() -> None:
    """A replay is written at once: one that does not fit in max_outbound_bytes would
    put the whole gap in the client's buffer (many times the cap) and then close it as
    slow, so the server answers resync_required instead."""
    cap = 65536
    config = test_config(
        connections={"max_outbound_bytes": cap}, streams={"replay_window": 100_000}
    )
    async with quiet_daemon(config) as daemon, daemon.client() as witness:
        server = daemon.daemon.servers["orchestrator"]
        epoch = daemon.daemon.epoch
        async with daemon.client() as client:
            last_seq = client.snapshot[0]["seq"]
        padding = "x" * 1000
        publish(daemon, *(f"{i}{padding}" for i in range(200)), "last")  # about 200 kB
        await seen_by(witness, "last")
        async with connect(f"{daemon.url()}?lastSeq={last_seq}&epoch={epoch}") as ws:
            notice = await recv(ws)
            assert notice["type"] == "resync_required", notice["data"]
            assert "max_outbound_bytes" in notice["data"]["reason"]
            assert [(await recv(ws))["snapshot"] for _ in range(2)] == [True, True]
            publish(daemon, "live")
            assert (await recv(ws))["data"]["reason"] == "live"
        assert server.slow_clients_closed == 0
        # A gap that fits is replayed as usual.
        last_seq = server.stream_seq
        publish(daemon, *names("n", 100))
        await seen_by(witness, "n100")
        async with connect(f"{daemon.url()}?lastSeq={last_seq}&epoch={epoch}") as ws:
            resumed = await recv(ws)
            assert resumed["type"] == "resumed" and resumed["data"]["replayed"] == 100
            replayed = [(await recv(ws))["data"]["reason"] for _ in range(100)]
            assert replayed == names("n", 100)


# ---------------------------------------------------------------- 3001


async def test_market_data_resume_after_resubscribing_covers_missed_quotes_only() -> None:
    async with quiet_daemon() as daemon, daemon.client("market_data") as other:
        epoch = daemon.daemon.epoch
        await other.request({"type": "subscribe", "symbols": ["MSFT"]})
        async with daemon.client("market_data") as client:
            await client.request({"type": "subscribe", "symbols": ["AAPL"]})
            daemon.tick("AAPL", 100.0)
            last_seq = (await client.recv())["seq"]
        # While away: AAPL quotes interleaved with MSFT quotes (another channel).
        for price in (101.0, 102.0, 103.0):
            daemon.tick("AAPL", price)
            daemon.tick("MSFT", price + 100)
        # Once the other client has the last MSFT quote, the AAPL ones went out too.
        assert [(await other.recv())["data"]["price"] for _ in range(3)] == [201.0, 202.0, 203.0]
        async with daemon.client("market_data") as client:
            subscribed = await client.request({"type": "subscribe", "symbols": ["AAPL"]})
            assert subscribed["type"] == "subscribed"
            assert (await client.recv())["data"]["price"] == 103.0  # last-quote snapshot
            await client.send(resume_command(last_seq, epoch))
            resumed = await client.recv()
            assert resumed["type"] == "resumed" and resumed["data"]["replayed"] == 3
            missed = [await client.recv() for _ in range(3)]
            assert [(m["type"], m["data"]["price"]) for m in missed] == [
                ("quote", 101.0),
                ("quote", 102.0),
                ("quote", 103.0),
            ]
            seqs = [m["seq"] for m in missed]
            assert seqs == sorted(seqs) and seqs[0] > last_seq
            daemon.tick("AAPL", 104.0)
            live = await client.recv()
            assert live["data"]["price"] == 104.0 and live["seq"] > seqs[-1]


async def test_market_data_resync_snapshot_has_the_last_quotes_of_the_subscriptions() -> None:
    config = test_config(streams={"replay_window": 2})
    async with quiet_daemon(config) as daemon, daemon.client("market_data") as witness:
        epoch = daemon.daemon.epoch
        await witness.request({"type": "subscribe", "symbols": ["AAPL"]})
        async with daemon.client("market_data") as client:
            await client.request({"type": "subscribe", "symbols": ["AAPL"]})
            daemon.tick("AAPL", 100.0)
            last_seq = (await client.recv())["seq"]
        for price in (101.0, 102.0, 103.0):
            daemon.tick("AAPL", price)
        assert [(await witness.recv())["data"]["price"] for _ in range(4)][-1] == 103.0
        async with daemon.client("market_data") as client:
            await client.request({"type": "subscribe", "symbols": ["AAPL"]})
            await client.recv()  # last-quote snapshot of the subscription
            await client.send(resume_command(last_seq, epoch))
            notice = await client.recv()
            assert notice["type"] == "resync_required"
            snapshot = [await client.recv() for _ in range(3)]
            assert [m["type"] for m in snapshot] == [
                "execution_service_status",
                "strategy_status_list",
                "quote",
            ]
            assert snapshot[2]["data"]["price"] == 103.0 and snapshot[2]["snapshot"] is True


# ---------------------------------------------------------------- under load


async def test_reconnecting_200_times_under_load_sees_no_gap_and_no_duplicate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = test_config(streams={"replay_window": 200_000})
    async with quiet_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        epoch = daemon.daemon.epoch
        stop = asyncio.Event()
        started = time.perf_counter()
        # max_queue=None: a client that closes with unread messages queued would
        # otherwise stop reading and wait close_timeout for the server's close frame.
        ws = await connect(daemon.url(), max_queue=None)
        snapshot = await recv(ws)
        await recv(ws)
        first_seq = snapshot["seq"] + 1
        tally = Tally(snapshot["seq"])
        producer = asyncio.create_task(produce(daemon, tally, stop), name="producer")
        rng = random.Random(8082)
        replayed = 0
        dropped: list[int] = []
        caught_up_to = tally.last_seq
        for attempt in range(RECONNECTS):
            # Mostly read the whole replay and a few live messages; every fifth
            # connection is cut in the middle of its replay.
            if attempt % 5 == 4:
                for _ in range(rng.randrange(0, caught_up_to - tally.last_seq + 1)):
                    tally.see(await recv(ws))
            else:
                while tally.last_seq < caught_up_to:
                    tally.see(await recv(ws))
                for _ in range(rng.randrange(0, 8)):
                    tally.see(await recv(ws))
            if attempt % 4 < 2:
                await ws.close()
            else:
                ws.transport.abort()  # a dropped network: no closing handshake
                await ws.wait_closed()
            if attempt % 2 == 0:
                url = f"{daemon.url()}?lastSeq={tally.last_seq}&epoch={epoch}"
                ws = await connect(url, max_queue=None)
                answer = await recv(ws)
            else:
                ws = await connect(daemon.url(), max_queue=None)
                answer = await resume_by_command(ws, tally.last_seq, epoch, dropped)
            assert answer["type"] == "resumed", answer
            assert answer["data"]["fromSeq"] == tally.last_seq + 1, answer
            replayed += answer["data"]["replayed"]
            caught_up_to = answer["data"]["toSeq"]
        stop.set()
        tally.advanced.set()
        produced = await producer
        while tally.last_seq < first_seq - 1 + produced:
            tally.see(await recv(ws))
        final_seq = server.stream_seq
        await ws.close()
        duration = time.perf_counter() - started
        gaps = tally.gaps(first_seq, final_seq)
        report(
            capsys,
            "reconnect under load",
            reconnects=RECONNECTS,
            produced=produced,
            received=len(tally.seen),
            replayed=replayed,
            dropped_before_resumed=len(dropped),
            gaps=gaps,
            duplicates=tally.duplicates,
            out_of_order=tally.out_of_order,
            duration_s=f"{duration:.2f}",
        )
        assert (gaps, tally.duplicates, tally.out_of_order) == (0, 0, 0)
        assert tally.last_seq == final_seq == first_seq - 1 + produced
        assert len(tally.seen) == produced


async def produce(daemon: TestDaemon, tally: Tally, stop: asyncio.Event) -> int:
    """Publish real events until told to stop: a burst of a few per millisecond,
    never more than PRODUCER_MAX_LEAD ahead of what the client has processed, so
    that every resume stays replayable on a machine of any speed."""
    produced = 0
    first_seq = tally.last_seq + 1
    while not stop.is_set():
        if first_seq + produced - tally.last_seq > PRODUCER_MAX_LEAD:
            tally.advanced.clear()
            await tally.advanced.wait()
            continue
        publish(daemon, *(f"n{produced + i}" for i in range(PRODUCER_BURST)))
        produced += PRODUCER_BURST
        await asyncio.sleep(0.001)  # pacing, like a feed
    return produced
