"""Bad input through real servers: answered with an error, the connection and the
registry unchanged; oversized frames and dead clients are the exceptions."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import Client, running_daemon, test_config

SERVERS = ["orchestrator", "market_data", "risk"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SMA = "strategy-123"
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")


@dataclass(frozen=True)
class Case:
    id: str
    frame: dict[str, Any] | str | bytes
    code: str
    request_type: str | None
    setup: tuple[dict[str, Any], ...] = ()
    request_id: str | int | None = field(default=None)


def start(config: dict[str, Any]) -> dict[str, Any]:
    return {"type": "start_strategy", "id": SMA, "config": config, "requestId": "r"}


CASES = [
    Case("invalid_json", "{not json", "invalid_json", None),
    Case("truncated_json", '{"type": "get_strategies"', "invalid_json", None),
    Case("binary_frame", b'{"type": "get_strategies"}', "binary_frame", None),
    Case("not_an_object", "[1, 2, 3]", "invalid_message", None),
    Case("no_type", {"requestId": "r"}, "invalid_message", None, request_id="r"),
    Case(
        "unknown_type", {"type": "launch", "requestId": 9}, "unknown_type", "launch", request_id=9
    ),
    Case(
        "missing_field",
        {"type": "stop_strategy", "requestId": "r"},
        "invalid_message",
        "stop_strategy",
        request_id="r",
    ),
    Case(
        "ill_typed_field",
        {"type": "pause_strategy", "id": 123, "requestId": "r"},
        "invalid_message",
        "pause_strategy",
        request_id="r",
    ),
    Case(
        "ill_typed_config",
        start({"maxOrdersPerMinute": "5"}),
        "invalid_message",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "extra_field",
        {"type": "get_active_strategies", "verbose": True, "requestId": "r"},
        "invalid_message",
        "get_active_strategies",
        request_id="r",
    ),
    Case(
        "extra_config_field",
        start({"leverage": 3}),
        "invalid_message",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "bad_request_id",
        {"type": "get_strategies", "requestId": True},
        "invalid_message",
        "get_strategies",
    ),
    Case(
        "unknown_strategy",
        {"type": "start_strategy", "id": "nope", "requestId": "r"},
        "unknown_strategy",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "pause_stopped",
        {"type": "pause_strategy", "id": SMA, "requestId": "r"},
        "invalid_transition",
        "pause_strategy",
        request_id="r",
    ),
    Case(
        "stop_stopped",
        {"type": "stop_strategy", "id": SMA, "requestId": "r"},
        "invalid_transition",
        "stop_strategy",
        request_id="r",
    ),
    Case(
        "start_active",
        {"type": "start_strategy", "id": SMA, "requestId": "r"},
        "invalid_transition",
        "start_strategy",
        setup=({"type": "start_strategy", "id": SMA},),
        request_id="r",
    ),
    Case(
        "pause_paused",
        {"type": "pause_strategy", "id": SMA, "requestId": "r"},
        "invalid_transition",
        "pause_strategy",
        setup=({"type": "start_strategy", "id": SMA}, {"type": "pause_strategy", "id": SMA}),
        request_id="r",
    ),
    Case(
        "resume_with_other_config",
        start({"symbols": ["GOOG"]}),
        "invalid_transition",
        "start_strategy",
        setup=({"type": "start_strategy", "id": SMA}, {"type": "pause_strategy", "id": SMA}),
        request_id="r",
    ),
    Case("no_symbols", start({"symbols": []}), "invalid_config", "start_strategy", request_id="r"),
    Case(
        "bad_symbol",
        start({"symbols": ["NOT A SYMBOL"]}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "symbol_without_data",
        start({"symbols": ["ZZZZ"]}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "bad_resolution",
        start({"dataResolution": "7m"}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "negative_position_value",
        start({"maxPositionValue": -1}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "zero_orders_per_minute",
        start({"maxOrdersPerMinute": 0}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "stop_loss_out_of_range",
        start({"stopLossPercentage": 1.5}),
        "invalid_config",
        "start_strategy",
        request_id="r",
    ),
    Case(
        "real_trading",
        start({"realTrading": True}),
        "real_trading_unavailable",
        "start_strategy",
        request_id="r",
    ),
]


def check_error(message: dict[str, Any], case: Case) -> dict[str, Any]:
    keys = {"type", "timestamp", "data"} | ({"requestId"} if case.request_id is not None else set())
    assert set(message) == keys, message
    assert message["type"] == "error"
    assert ISO_Z.match(message["timestamp"])
    if case.request_id is not None:
        assert message["requestId"] == case.request_id
    data: dict[str, Any] = message["data"]
    assert set(data) == {"code", "message", "requestType"}
    assert data["code"] == case.code and CODE.match(data["code"])
    assert data["requestType"] == case.request_type
    assert isinstance(data["message"], str) and len(data["message"]) > 10
    return data


async def still_answers(client: Client) -> None:
    reply = await client.request({"type": "get_strategies"})
    assert reply["type"] == "strategy_list"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_answered_and_changes_nothing(server: str, case: Case) -> None:
    async with running_daemon() as daemon, daemon.client(server) as client:
        for command in case.setup:
            reply = await client.request(command)
            assert reply["type"] != "error", reply
        before = daemon.daemon.registry.catalog()
        await client.send(case.frame)
        check_error(await client.recv(), case)
        assert daemon.daemon.registry.catalog() == before
        await still_answers(client)


async def test_one_connection_survives_every_kind_of_bad_input() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        for case in CASES:
            if case.setup:
                continue
            await client.send(case.frame)
            check_error(await client.recv(), case)
        await still_answers(client)
        assert daemon.daemon.registry.active() == []


async def test_an_error_goes_only_to_the_client_that_caused_it() -> None:
    async with running_daemon() as daemon, daemon.client() as culprit, daemon.client() as other:
        await culprit.send("{not json")
        assert (await culprit.recv())["type"] == "error"
        reply = await other.request({"type": "get_active_strategies"})
        assert reply["type"] == "strategy_status_list"  # nothing else was queued before it


@pytest.mark.parametrize("server", SERVERS)
async def test_an_oversized_frame_closes_with_1009(server: str) -> None:
    config = test_config(connections={"max_message_bytes": 1024})
    async with running_daemon(config) as daemon, daemon.client(server) as other:
        async with daemon.client(server) as client:
            big = orjson.dumps({"type": "get_strategies", "requestId": "x" * 2000}).decode()
            await client.send(big)
            with pytest.raises(ConnectionClosed) as caught:
                await client.recv()
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
        # Other clients never noticed, and a frame near the limit is fine.
        near = {"type": "get_strategies", "requestId": "y" * 128}
        await other.send(near)
        assert (await other.recv())["requestId"] == near["requestId"]
        await still_answers(other)


async def test_a_client_that_stops_answering_pings_is_closed() -> None:
    config = test_config(
        connections={"ping_interval": 0.05, "ping_timeout": 0.05, "close_timeout": 0.05}
    )
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        async with connect(daemon.url(), ping_interval=None) as ws:
            await ws.recv()
            await ws.recv()
            assert server.client_count == 1
            ws.transport.pause_reading()
            async with asyncio.timeout(2.0):
                await server.wait_for_no_clients()
            ws.transport.resume_reading()
            async with asyncio.timeout(2.0):
                await ws.wait_closed()
            assert ws.close_code == 1011  # keepalive ping timeout
