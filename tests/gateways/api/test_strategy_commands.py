"""The strategy commands through real servers, field for field as the stock-bot document."""

from __future__ import annotations

import re
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from orchestrator.model.events import StrategyStatus
from tests.support import Client, running_daemon

SERVERS = ["orchestrator", "market_data", "risk"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ENTRY_KEYS = {"id", "name", "status", "symbols", "positions"}
PNL_KEYS = {"realizedPnlToday", "realizedPnlSinceStart", "unrealizedPnl"}
"""Our addition to the stock-bot entry: the three P&L figures (README: P&L)."""
POSITION_KEYS = {"symbol", "quantity", "entryPrice", "currentValue"}
STATUSES = {"ACTIVE", "PAUSED", "STOPPED", "ERROR"}
SMA = "strategy-123"
SMA_NAME = "Moving Average Crossover"
ABSENT = object()


STREAM_FIELDS = {
    "none": set(),
    "broadcast": {"seq", "epoch", "position"},
    "snapshot": {"seq", "epoch", "snapshot", "position"},
}


def check_envelope(
    message: dict[str, Any], kind: str, request_id: object = ABSENT, stream: str = "none"
) -> Any:
    """Assert the exact envelope and return its data.

    The stock-bot envelope is {type, timestamp, data}; a reply adds requestId.
    What the orchestrator server broadcasts (and so its requester's copy) and
    the snapshot on connect also carry their stream position (seq, epoch, and
    snapshot), so that a client can resume without gaps; direct replies don't.
    """
    expected = {"type", "timestamp", "data"} | STREAM_FIELDS[stream]
    if request_id is not ABSENT:
        expected.add("requestId")
    assert set(message) == expected, message
    if stream != "none":
        assert type(message["seq"]) is int and type(message["epoch"]) is int
    assert message["type"] == kind, message
    assert isinstance(message["timestamp"], str) and ISO_Z.match(message["timestamp"])
    if request_id is not ABSENT:
        assert message["requestId"] == request_id
        assert type(message["requestId"]) is type(request_id)
    return message["data"]


def lifecycle_stream(server: str) -> str:
    """Lifecycle replies on 8082 are the requester's copy of a broadcast."""
    return "broadcast" if server == "orchestrator" else "none"


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_entries(data: Any) -> list[dict[str, Any]]:
    assert isinstance(data, list)
    for entry in data:
        assert set(entry) == ENTRY_KEYS | PNL_KEYS | {"params"}, entry
        assert isinstance(entry["params"], dict), entry
        assert all(isinstance(entry[key], float) for key in PNL_KEYS), entry
        assert isinstance(entry["id"], str) and isinstance(entry["name"], str)
        assert entry["status"] in STATUSES
        assert isinstance(entry["symbols"], list)
        assert all(isinstance(s, str) for s in entry["symbols"])
        assert isinstance(entry["positions"], list)
        for position in entry["positions"]:
            assert set(position) == POSITION_KEYS, position
            assert isinstance(position["symbol"], str)
            assert all(is_number(position[k]) for k in POSITION_KEYS - {"symbol"})
    return data


async def send(client: Client, message: dict[str, Any], request_id: str | int) -> dict[str, Any]:
    """Send with this requestId and return the one reply that carries it."""
    await client.send({**message, "requestId": request_id})
    return await reply_to(client, request_id)


async def reply_to(client: Client, request_id: str | int) -> dict[str, Any]:
    """The next message that carries this requestId, skipping others."""
    while True:
        reply = await client.recv()
        if reply.get("requestId") == request_id:
            return reply


async def drain_until_reply(client: Client, request_id: str) -> list[dict[str, Any]]:
    """Everything the client receives up to and including the reply to a fresh query.

    Messages on one connection arrive in order, so this is every message sent
    to the client before the query was answered."""
    await client.send({"type": "get_active_strategies", "requestId": request_id})
    seen = []
    while True:
        message = await client.recv()
        seen.append(message)
        if message.get("requestId") == request_id:
            return seen


# ---------------------------------------------------------------- snapshot


@pytest.mark.parametrize("server", SERVERS)
async def test_a_new_connection_gets_execution_status_and_strategy_list(server: str) -> None:
    async with running_daemon() as daemon, daemon.client(server) as client:
        status, strategies = client.snapshot
        assert check_envelope(status, "execution_service_status", stream="snapshot") == {
            "status": "RUNNING"
        }
        assert check_envelope(strategies, "strategy_status_list", stream="snapshot") == []


# ---------------------------------------------------------------- queries


@pytest.mark.parametrize("server", SERVERS)
async def test_get_strategies_lists_the_whole_catalog(server: str) -> None:
    async with running_daemon() as daemon, daemon.client(server) as client:
        reply = await send(client, {"type": "get_strategies"}, "q1")
        data = check_entries(check_envelope(reply, "strategy_list", "q1"))
        assert [e["id"] for e in data] == [e.id for e in daemon.daemon.config.strategies]
        assert data[0] == {
            "id": SMA,
            "name": SMA_NAME,
            "status": "STOPPED",
            "symbols": ["AAPL", "MSFT"],
            "positions": [],
            "params": daemon.daemon.config.strategies[0].params,
            "realizedPnlToday": 0.0,
            "realizedPnlSinceStart": 0.0,
            "unrealizedPnl": 0.0,
        }


@pytest.mark.parametrize("server", SERVERS)
async def test_get_active_strategies_lists_everything_not_stopped(server: str) -> None:
    async with running_daemon() as daemon, daemon.client(server) as client:
        assert (
            check_envelope(
                await send(client, {"type": "get_active_strategies"}, 1), "strategy_status_list", 1
            )
            == []
        )
        await send(client, {"type": "start_strategy", "id": SMA}, 2)
        await send(client, {"type": "start_strategy", "id": "rsi-reversion"}, 3)
        await send(client, {"type": "pause_strategy", "id": "rsi-reversion"}, 4)
        await send(client, {"type": "start_strategy", "id": "bollinger-breakout"}, 5)
        await send(client, {"type": "stop_strategy", "id": "bollinger-breakout"}, 6)
        daemon.daemon.registry.fail(SMA, "RuntimeError: boom")
        reply = await send(client, {"type": "get_active_strategies"}, 7)
        data = check_entries(check_envelope(reply, "strategy_status_list", 7))
        assert [(e["id"], e["status"]) for e in data] == [
            (SMA, "ERROR"),
            ("rsi-reversion", "PAUSED"),
        ]


async def test_positions_are_listed_field_for_field() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": SMA})
        for step in range(12):
            daemon.advance(1.0)
            daemon.tick("AAPL", 100.0 + step)
            daemon.tick("MSFT", 200.0 + step)
        trade = await client.recv_type("strategy_trade")
        assert trade["data"]["status"] == "FILLED"
        reply = await client.request({"type": "get_active_strategies"})
        [entry] = check_entries(reply["data"])
        assert entry["positions"] == [
            {
                "symbol": held.symbol,
                "quantity": held.quantity,
                "entryPrice": held.entry_price,
                "currentValue": held.current_value,
            }
            for held in daemon.daemon.registry.view(SMA).positions
        ]
        assert entry["positions"] and all(p["quantity"] > 0 for p in entry["positions"])


# ---------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("server", SERVERS)
async def test_start_pause_resume_stop_on_every_server(server: str) -> None:
    async with running_daemon() as daemon, daemon.client(server) as client:
        registry = daemon.daemon.registry
        started = await send(client, {"type": "start_strategy", "id": SMA}, "a")
        assert check_envelope(started, "strategy_started", "a", lifecycle_stream(server)) == {
            "strategyId": SMA,
            "name": SMA_NAME,
            "symbols": ["AAPL", "MSFT"],
        }
        assert registry.status(SMA) is StrategyStatus.ACTIVE

        paused = await send(client, {"type": "pause_strategy", "id": SMA}, "b")
        assert check_envelope(paused, "strategy_paused", "b", lifecycle_stream(server)) == {
            "strategyId": SMA,
            "name": SMA_NAME,
        }
        assert registry.status(SMA) is StrategyStatus.PAUSED

        resumed = await send(client, {"type": "start_strategy", "id": SMA}, "c")
        assert (
            check_envelope(resumed, "strategy_started", "c", lifecycle_stream(server))["strategyId"]
            == SMA
        )
        assert registry.status(SMA) is StrategyStatus.ACTIVE

        stopped = await send(client, {"type": "stop_strategy", "id": SMA}, "d")
        assert check_envelope(stopped, "strategy_stopped", "d", lifecycle_stream(server)) == {
            "strategyId": SMA,
            "name": SMA_NAME,
        }
        assert registry.status(SMA) is StrategyStatus.STOPPED


async def test_stop_from_paused_and_from_error() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        registry = daemon.daemon.registry
        await client.request({"type": "start_strategy", "id": SMA})
        await client.request({"type": "pause_strategy", "id": SMA})
        reply = await client.request({"type": "stop_strategy", "id": SMA})
        assert reply["type"] == "strategy_stopped"
        assert registry.status(SMA) is StrategyStatus.STOPPED

        await client.request({"type": "start_strategy", "id": SMA})
        registry.fail(SMA, "RuntimeError: boom")
        error = await client.recv_type("strategy_error")
        assert error["data"]["strategyId"] == SMA
        reply = await client.request({"type": "stop_strategy", "id": SMA})
        assert reply["type"] == "strategy_stopped"
        assert registry.status(SMA) is StrategyStatus.STOPPED


async def test_start_from_error_restarts() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": SMA})
        daemon.daemon.registry.fail(SMA, "RuntimeError: boom")
        reply = await client.request({"type": "start_strategy", "id": SMA})
        assert reply["type"] == "strategy_started"
        assert daemon.daemon.registry.status(SMA) is StrategyStatus.ACTIVE


# ---------------------------------------------------------------- start config


async def test_start_config_is_validated_and_stored() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        config = {
            "symbols": ["GOOG", "tsla"],
            "dataResolution": "1m",
            "realTrading": False,
            "maxPositionValue": 2500,
            "maxOrdersPerMinute": 3,
            "stopLossPercentage": 0.05,
        }
        reply = await client.request({"type": "start_strategy", "id": SMA, "config": config})
        assert reply["data"]["symbols"] == ["GOOG", "TSLA"]
        view = daemon.daemon.registry.view(SMA)
        assert view.symbols == ("GOOG", "TSLA")
        stored = view.config.model_dump(by_alias=True)
        assert stored == {
            **config,
            "symbols": ("GOOG", "TSLA"),
            "maxPositionValue": 2500.0,
            "params": None,
            "venue": None,
        }


async def test_partial_config_is_filled_from_the_catalog_defaults() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        defaults = daemon.daemon.config.strategies[0].defaults
        await client.request(
            {"type": "start_strategy", "id": SMA, "config": {"maxPositionValue": 1234.5}}
        )
        assert daemon.daemon.registry.view(SMA).config == defaults.model_copy(
            update={"max_position_value": 1234.5}
        )
        await client.request({"type": "stop_strategy", "id": SMA})
        await client.request({"type": "start_strategy", "id": SMA, "config": {}})
        assert daemon.daemon.registry.view(SMA).config == defaults


# ---------------------------------------------------------------- fan-out


async def test_lifecycle_is_broadcast_to_every_orchestrator_client() -> None:
    async with (
        running_daemon() as daemon,
        daemon.client() as requester,
        daemon.client() as observer,
    ):
        reply = await send(requester, {"type": "start_strategy", "id": SMA}, "mine")
        check_envelope(reply, "strategy_started", "mine", "broadcast")
        seen = await observer.recv()
        assert check_envelope(seen, "strategy_started", stream="broadcast") == {
            "strategyId": SMA,
            "name": SMA_NAME,
            "symbols": ["AAPL", "MSFT"],
        }
        await send(requester, {"type": "pause_strategy", "id": SMA}, "p")
        check_envelope(await observer.recv(), "strategy_paused", stream="broadcast")
        await send(requester, {"type": "stop_strategy", "id": SMA}, "s")
        check_envelope(await observer.recv(), "strategy_stopped", stream="broadcast")


async def test_the_requester_on_8082_gets_its_reply_exactly_once() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        await client.send({"type": "start_strategy", "id": SMA, "requestId": "start"})
        seen = await drain_until_reply(client, "after")
        started = [m for m in seen if m["type"] == "strategy_started"]
        assert len(started) == 1
        check_envelope(started[0], "strategy_started", "start", "broadcast")


@pytest.mark.parametrize("server", ["risk", "market_data"])
async def test_a_command_on_another_server_is_answered_there_and_broadcast_on_8082(
    server: str,
) -> None:
    async with (
        running_daemon() as daemon,
        daemon.client() as observer,
        daemon.client(server) as requester,
        daemon.client(server) as bystander,
    ):
        await requester.send({"type": "start_strategy", "id": SMA, "requestId": 42})
        seen = await drain_until_reply(requester, "after")
        started = [m for m in seen if m["type"] == "strategy_started"]
        assert len(started) == 1
        check_envelope(started[0], "strategy_started", 42)

        broadcast = await observer.recv()
        check_envelope(broadcast, "strategy_started", stream="broadcast")
        assert broadcast["data"]["strategyId"] == SMA

        # The other clients of that server were not told (the orchestrator
        # server is where lifecycle notifications are published).
        assert [m["type"] for m in await drain_until_reply(bystander, "b")] == [
            "strategy_status_list"
        ]


async def test_a_command_without_request_id_gets_a_reply_without_one() -> None:
    async with running_daemon() as daemon, daemon.client("risk") as client:
        await client.send({"type": "start_strategy", "id": SMA})
        check_envelope(await client.recv(), "strategy_started")
        await client.send({"type": "get_strategies"})
        check_envelope(await client.recv(), "strategy_list")


@pytest.mark.parametrize("request_id", ["req-a", 7, 0, -3, 2**53 + 1])
async def test_request_ids_round_trip(request_id: str | int) -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await send(client, {"type": "get_active_strategies"}, request_id)
        check_envelope(reply, "strategy_status_list", request_id)
        reply = await send(client, {"type": "start_strategy", "id": SMA}, request_id)
        check_envelope(reply, "strategy_started", request_id, "broadcast")


async def test_http_requests_to_the_wrong_path_get_404() -> None:
    async with running_daemon() as daemon:
        for server, path in [
            ("orchestrator", "/ws"),
            ("market_data", "/"),
            ("risk", "/other"),
            ("risk", "/ws/x"),
        ]:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(daemon.url(server, path)):
                    pass
            assert caught.value.response.status_code == 404
        for server in SERVERS:
            async with daemon.client(server) as client:
                assert client.snapshot[0]["type"] == "execution_service_status"


async def test_two_clients_starting_one_strategy_at_once_get_one_start_and_one_refusal() -> None:
    async with (
        running_daemon() as daemon,
        daemon.client() as first,
        daemon.client("risk") as second,
    ):
        await first.send({"type": "start_strategy", "id": SMA, "requestId": "one"})
        await second.send({"type": "start_strategy", "id": SMA, "requestId": "two"})
        replies = [await reply_to(first, "one"), await reply_to(second, "two")]
        assert sorted(r["type"] for r in replies) == ["error", "strategy_started"]
        [error] = [r for r in replies if r["type"] == "error"]
        assert error["data"]["code"] == "invalid_transition"
        assert daemon.daemon.registry.status(SMA) is StrategyStatus.ACTIVE
