"""A resume after a daemon restart: the committed messages a client missed come from
the journal, once each and in order; a gap older than the retention still gets a
resync. Two daemons, one after the other, on one journal; real clients."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import connect

from gateways.api import outbound
from gateways.api.journal_replay import JournalReplay
from gateways.client.ws_client import resume_url
from gateways.config import DaemonConfig
from gateways.ws.stream import Resync
from orchestrator.model.events import (
    ExecutionStatusChanged,
    OrderAccepted,
    OrderCancelled,
    Topic,
)
from orchestrator.model.orders import OrderType, Side
from tests.orchestrator.journal.journal_support import Trading
from tests.support import Client, TestDaemon, running_daemon, test_config


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    """A client that reads nothing yet (a resume URL is answered by ``resumed``)."""
    async with connect(url) as ws:
        yield Client(ws)


def signal(daemon: TestDaemon, trading: Trading) -> str:
    """Publish a real (journaled) signal on the bus; its id."""
    event = trading.signal("sma", "AAPL", Side.BUY, 100.0)
    daemon.daemon.bus.publish(event)
    return event.signal.id


async def signals_until(client: Client, last_id: str) -> list[dict[str, Any]]:
    """Every message up to the strategy_signal with ``last_id``."""
    seen = []
    while True:
        message = await client.recv()
        seen.append(message)
        if message["type"] == "strategy_signal" and message["data"]["id"] == last_id:
            return seen


async def first_run(config: DaemonConfig, trading: Trading) -> tuple[dict[str, Any], list[str]]:
    """A client sees two signals, leaves; two more are committed; the daemon stops.
    Returns the client's last message and the ids it did not see."""
    async with running_daemon(config) as daemon:
        async with daemon.client() as client:
            sent = [signal(daemon, trading) for _ in range(2)]
            last = (await signals_until(client, sent[-1]))[-1]
        missed = [signal(daemon, trading) for _ in range(2)]
        await daemon.daemon.writer.flush()
    return last, missed


async def test_a_client_of_the_last_run_is_replayed_what_it_missed_then_goes_on_live() -> None:
    config, trading = test_config(), Trading()
    last, missed = await first_run(config, trading)
    async with running_daemon(config) as daemon:
        assert daemon.daemon.epoch == last["epoch"] + 1  # same clock: still a later run
        missed.append(signal(daemon, trading))  # committed in this run before the client is back
        await daemon.daemon.writer.flush()
        url = resume_url(daemon.url(), last["seq"], last["epoch"], last["position"])
        async with connected(url) as client:
            resumed = await client.recv()
            assert resumed["type"] == "resumed", resumed
            data = resumed["data"]
            assert data["epoch"] == daemon.daemon.epoch
            assert (data["fromPosition"], data["journalReplayed"]) == (last["position"] + 1, 3)
            replayed = [
                await client.recv() for _ in range(data["journalReplayed"] + data["replayed"])
            ]
            from_journal = [m for m in replayed if "seq" not in m]
            assert [m["data"]["id"] for m in from_journal] == missed  # once each, in order
            positions = [m["position"] for m in from_journal]
            assert positions == sorted(positions) and positions[0] > last["position"]
            snapshot = [await client.recv(), await client.recv()]
            assert {m["type"] for m in snapshot} == {
                "execution_service_status",
                "strategy_status_list",
            }
            assert all(m["snapshot"] and m["seq"] == data["toSeq"] for m in snapshot)
            live = signal(daemon, trading)
            [message] = [
                m for m in await signals_until(client, live) if m["type"] == "strategy_signal"
            ]
            assert message["epoch"] == data["epoch"] and message["seq"] > data["toSeq"]
            assert message["position"] > positions[-1]


async def test_what_is_committed_while_the_journal_is_read_is_in_the_resume_tail() -> None:
    """The first client of a run resumes from the journal; a signal committed while the
    server reads it comes after the journal's part, in the window's tail. (With no
    client joined yet, the channel kept nothing: the signal was lost to that client.)"""
    config, trading = test_config(), Trading()
    last, missed = await first_run(config, trading)
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        archive = server._setup.archive
        assert archive is not None
        read = archive.replay
        during: list[str] = []

        async def read_while_trading(*args: Any) -> Any:
            result = await read(*args)
            during.append(signal(daemon, trading))
            await daemon.daemon.writer.flush()  # committed and broadcast before the join
            return result

        object.__setattr__(archive, "replay", read_while_trading)
        url = resume_url(daemon.url(), last["seq"], last["epoch"], last["position"])
        async with connected(url) as client:
            resumed = (await client.recv())["data"]
            assert (resumed["journalReplayed"], resumed["replayed"]) == (len(missed), 1)
            messages = [await client.recv() for _ in range(len(missed) + 1)]
            assert [m["data"]["id"] for m in messages] == [*missed, *during]


async def test_what_the_journal_does_not_write_is_not_replayed_but_the_snapshot_has_it() -> None:
    config, trading = test_config(), Trading()
    last, _ = await first_run(config, trading)
    async with running_daemon(config) as daemon:
        execution = daemon.daemon.core.execution
        daemon.daemon.bus.publish(
            ExecutionStatusChanged(execution.status, daemon.clock.now(), "not journaled")
        )
        await daemon.daemon.writer.flush()
        url = resume_url(daemon.url("risk"), last["seq"], last["epoch"], last["position"])
        async with connected(url) as client:
            resumed = await client.recv()
            assert resumed["type"] == "resumed"
            # 3002 sends no signal, and the status change is not journaled: nothing
            # replayed, but the snapshot that follows shows the status as it is now.
            assert (resumed["data"]["journalReplayed"], resumed["data"]["replayed"]) == (0, 0)
            status = await client.recv()
            assert status["type"] == "execution_service_status" and status["snapshot"]
            assert status["data"]["reason"] == "not journaled"


async def test_a_gap_older_than_the_retention_gets_a_resync_and_a_snapshot() -> None:
    config, trading = test_config(streams={"replay_window": 2}), Trading()
    last, missed = await first_run(config, trading)
    async with running_daemon(config) as daemon:
        missed.append(signal(daemon, trading))  # three missed: more than the window of 2
        await daemon.daemon.writer.flush()
        url = resume_url(daemon.url(), last["seq"], last["epoch"], last["position"])
        async with connected(url) as client:
            notice = await client.recv()
            assert notice["type"] == "resync_required", notice
            assert "more than 2 committed messages" in notice["data"]["reason"]
            assert notice["data"]["epoch"] == daemon.daemon.epoch
            snapshot = [await client.recv(), await client.recv()]
            assert all(m["snapshot"] for m in snapshot)


async def test_an_epoch_of_another_journal_or_no_position_gets_a_resync() -> None:
    config, trading = test_config(), Trading()
    last, _ = await first_run(config, trading)
    async with running_daemon(config) as daemon:
        stranger = resume_url(daemon.url(), last["seq"], 12345, last["position"])
        async with connected(stranger) as client:
            notice = await client.recv()
            assert notice["type"] == "resync_required"
            assert "not a run of this daemon's journal" in notice["data"]["reason"]
        old_client = resume_url(daemon.url(), last["seq"], last["epoch"])  # no position
        async with connected(old_client) as client:
            notice = await client.recv()
            assert notice["type"] == "resync_required"
            assert "epoch changed" in notice["data"]["reason"]


async def test_a_trade_read_back_from_the_journal_is_the_message_sent_live() -> None:
    trading = Trading()
    async with running_daemon() as daemon, daemon.client() as client:
        for record in trading.round_trip("sma", "AAPL", Side.BUY, 2, 100.0):
            daemon.daemon.bus.publish(record)  # type: ignore[arg-type]  # events, no config
        live = await client.recv_type("strategy_trade")
        journal = daemon.daemon.journal
        assert journal is not None
        replay = JournalReplay(journal, daemon.daemon.writer.flush)
        read = await replay.replay(
            daemon.daemon.epoch, 0, live["position"], [Topic.STRATEGY_TRADE], 10
        )
    assert not isinstance(read, Resync)
    [item] = read
    assert item.position == live["position"]
    assert item.message == ("strategy_trade", live["data"])


async def test_order_lifecycle_messages_a_client_missed_are_replayed_from_the_journal() -> None:
    config, trading = test_config(), Trading()
    entry = trading.order("sma", "AAPL", Side.BUY, 5.0).order
    resting = dataclasses.replace(entry, order_type=OrderType.LIMIT, limit_price=99.0)
    async with running_daemon(config) as daemon:
        async with daemon.client() as client:
            last = (await signals_until(client, signal(daemon, trading)))[-1]
        now = daemon.clock.now()
        missed = [OrderAccepted(resting, now), OrderCancelled(resting, "cancelled by hand", now)]
        for event in missed:
            daemon.daemon.bus.publish(event)
        await daemon.daemon.writer.flush()
    async with running_daemon(config) as daemon:
        url = resume_url(daemon.url(), last["seq"], last["epoch"], last["position"])
        async with connected(url) as client:
            resumed = await client.recv()
            assert resumed["type"] == "resumed", resumed
            assert resumed["data"]["journalReplayed"] == 2
            replayed = [await client.recv(), await client.recv()]
    assert [m["type"] for m in replayed] == ["order_accepted", "order_cancelled"]
    for message, event in zip(replayed, missed, strict=True):
        _, live = outbound.event_message(event) or ("", {})
        assert message["data"] == live  # the message sent live, read back
        assert message["data"]["orderId"] == resting.id
