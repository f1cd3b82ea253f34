"""What a client is shown is the committed state at its stream position: a fill the
core has applied but the journal has not committed is in no snapshot and no status
reply, and a client that applies the events after its snapshot holds exactly the
journal's positions."""

from __future__ import annotations

from typing import Any

import orjson

from gateways.api.risk import GetRiskStatus
from tests.gateways.test_strategy_runtime import config_with, next_second
from tests.support import Client, TestDaemon, running_daemon

FLIPPER = {
    "id": "flip",
    "kind": "tests.scripted_strategies:AlwaysEnter",
    "symbols": ["AAPL"],
    "defaults": {"max_position_value": 1000},
}


def shown_positions(daemon: TestDaemon) -> list[dict[str, Any]]:
    """The positions a connection opened now would see in its snapshot."""
    [_, (kind, strategies)] = daemon.daemon._snapshot.messages(None)  # type: ignore[arg-type]
    assert kind == "strategy_status_list"
    return [p for entry in strategies for p in entry["positions"]]


async def risk_positions(daemon: TestDaemon) -> list[dict[str, Any]]:
    """The risk status's positions, answered now: the handler runs to its reply without
    yielding, so the journal writer cannot commit meanwhile."""
    handler = daemon.daemon.servers["risk"]._handlers["get_risk_status"]
    command = GetRiskStatus.model_validate({"type": "get_risk_status"})
    [reply] = await handler(command, None)  # type: ignore[arg-type]
    data = orjson.loads(reply)["data"]
    return [p for s in data["strategies"] for p in s["positions"]]


async def test_a_fill_not_yet_committed_is_in_no_snapshot_and_no_status_reply() -> None:
    async with running_daemon(config_with(FLIPPER)) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "flip"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 1 closes: the entry is sent
        daemon.tick("AAPL", 100.5)  # ...and fills on this tick, in memory, now
        assert daemon.daemon.registry.active()[0].positions  # the core has it
        assert shown_positions(daemon) == []  # not committed: not shown
        assert await risk_positions(daemon) == []  # the risk status neither
        await daemon.daemon.writer.flush()
        [shown] = shown_positions(daemon)
        assert shown["quantity"] == 9.0
        [risked] = await risk_positions(daemon)
        assert risked["quantity"] == 9.0
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"][0]["positions"][0]["quantity"] == 9.0


async def told_until_reply(client: Client) -> list[dict[str, Any]]:
    """Every message a client was told after its snapshot, up to the reply to a request
    sent now (so everything broadcast before it is in)."""
    await client.send({"type": "get_active_strategies", "requestId": "last"})
    told = []
    while (message := await client.recv()).get("requestId") != "last":
        told.append(message)
    return told


def held_after(snapshot: list[dict[str, Any]], later: list[dict[str, Any]]) -> float:
    """A client's position: its snapshot's, plus the trades it was told of after it."""
    [listing] = [m for m in snapshot if m["type"] == "strategy_status_list"]
    held = sum(p["quantity"] for e in listing["data"] for p in e["positions"])
    for message in later:
        if message["type"] == "strategy_trade" and message["data"]["status"] == "FILLED":
            data = message["data"]
            held += data["quantity"] if data["side"] == "BUY" else -data["quantity"]
    return float(held)


async def test_snapshot_and_the_events_after_it_are_the_journals_positions() -> None:
    async with running_daemon(config_with(FLIPPER)) as daemon, daemon.client() as starter:
        await starter.request({"type": "start_strategy", "id": "flip"})
        daemon.tick("AAPL", 100.0)
        clients: list[tuple[Client, Any]] = []
        for bar in range(12):
            await next_second(daemon, {"AAPL": 100.0 + bar})  # entries and exits, in turn
            # Connected while the bar's fill may be applied and not yet committed.
            context = daemon.client()
            clients.append((await context.__aenter__(), context))
        await daemon.daemon.writer.flush()
        journal = daemon.daemon.journal
        assert journal is not None
        journaled = journal.rebuild_book().quantity("flip", "AAPL")
        assert journaled == daemon.daemon.core.execution.book.quantity("flip", "AAPL")
        try:
            for client, _ in clients:
                later = await told_until_reply(client)
                assert held_after(client.snapshot, later) == journaled
        finally:
            for _, context in clients:
                await context.__aexit__(None, None, None)
