"""Named limits through real servers: compressed bombs and fragmented frames over
max_message_bytes (1009), connections over max_connections (HTTP 503), commands
over commands_per_second (rate_limited, then 1008), subscriptions per connection.

Plain oversized frames and keepalive are in test_bad_input.py."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import Client, report, running_daemon, test_config


async def until(condition: Callable[[], bool], deadline: float = 2.0) -> None:
    """Poll for a state change that has nothing to await (with a deadline)."""
    async with asyncio.timeout(deadline):
        while not condition():  # noqa: ASYNC110 (there is no event to await)
            await asyncio.sleep(0.001)


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    return caught.value.rcvd.code if caught.value.rcvd is not None else None


def deflated_size(payload: bytes) -> int:
    """Bytes on the wire for ``payload`` under permessage-deflate (raw deflate, sync flush)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return len(compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4


# ---------------------------------------------------------------- message size


async def test_a_compressed_bomb_closes_1009_without_inflating_past_the_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    limit = 65536
    config = test_config(connections={"compression": True, "max_message_bytes": limit})
    async with running_daemon(config) as daemon, daemon.client() as other:
        async with connect(daemon.url(), compression="deflate") as ws:
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            for _ in range(2):
                await ws.recv()  # the snapshot
            # A legitimate compressed command is fine.
            await ws.send(orjson.dumps({"type": "get_strategies", "requestId": "ok"}).decode())
            assert orjson.loads(await ws.recv())["requestId"] == "ok"
            inflated = b'{"type":"get_strategies","requestId":"' + b"0" * 16 * 2**20 + b'"}'
            on_the_wire = deflated_size(inflated)
            assert on_the_wire < limit  # the frame itself is within the limit
            await ws.send(inflated, text=True)
            code = await closed_with(ws)
        report(
            capsys,
            "compressed bomb",
            wire_bytes=on_the_wire,
            inflates_to=len(inflated),
            max_message_bytes=limit,
            close_code=code,
        )
        assert code == 1009
        reply = await other.request({"type": "get_strategies"})  # nobody else noticed
        assert reply["type"] == "strategy_list"


async def test_fragments_adding_up_past_the_limit_close_1009() -> None:
    config = test_config(connections={"max_message_bytes": 1024})
    async with running_daemon(config) as daemon, daemon.client() as client:
        fragments = ['{"type": "get_strategies", "requestId": "', *(["x" * 200] * 10), '"}']
        await client.ws.send(fragments)  # each frame is small; the message is not
        assert await closed_with(client.ws) == 1009


# ---------------------------------------------------------------- connections


async def test_connections_past_the_limit_get_503_while_legitimate_clients_still_connect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    limit = 5
    config = test_config(connections={"max_connections": limit})
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        # A flood against an empty server: exactly `limit` get in, whatever the timing.
        outcomes = await asyncio.gather(
            *(try_connect(daemon.url()) for _ in range(8 * limit)), return_exceptions=True
        )
        admitted = [ws for ws in outcomes if isinstance(ws, ClientConnection)]
        refused = [e for e in outcomes if isinstance(e, InvalidStatus)]
        assert len(admitted) == limit and len(refused) == 7 * limit, outcomes
        assert {e.response.status_code for e in refused} == {503}
        assert b"limit of 5 connections" in refused[0].response.body
        # The admitted clients are served normally meanwhile.
        for ws in admitted:
            await ws.send('{"type": "get_strategies", "requestId": 1}')
            assert (await read_reply(ws))["type"] == "strategy_list"
        # Two leave: two others get in, and the next one is refused again.
        for ws in admitted[:2]:
            await ws.close()
        await until(lambda: server.client_count == limit - 2)
        again = [await try_connect(daemon.url()) for _ in range(2)]
        with pytest.raises(InvalidStatus) as caught:
            await try_connect(daemon.url())
        assert caught.value.response.status_code == 503
        report(
            capsys,
            "connection flood",
            max_connections=limit,
            attempts=8 * limit,
            admitted=len(admitted),
            refused_503=len(refused),
            admitted_after_two_left=len(again),
        )
        for ws in [*admitted[2:], *again]:
            await ws.close()


async def try_connect(url: str) -> ClientConnection:
    ws = await connect(url)
    for _ in range(2):
        await ws.recv()  # the snapshot
    return ws


async def read_reply(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    return message


# ---------------------------------------------------------------- commands per second


async def test_a_burst_past_the_rate_is_answered_rate_limited_and_the_connection_stays() -> None:
    config = test_config(connections={"commands_per_second": 5, "command_burst": 5})
    async with running_daemon(config) as daemon, daemon.client() as client:
        for i in range(6):
            await client.send({"type": "get_strategies", "requestId": i})
        replies = [await client.recv() for _ in range(6)]
        assert [r["type"] for r in replies] == ["strategy_list"] * 5 + ["error"]
        error = replies[5]["data"]
        assert error["code"] == "rate_limited" and error["requestType"] is None
        assert "commands per second" in error["message"]
        # The bucket refills at the configured rate: the same connection is served again.
        reply = await retry_until_served(client)
        assert reply["type"] == "strategy_list"


async def retry_until_served(client: Client) -> dict[str, Any]:
    """Poll (the bucket refills with time, there is nothing to await) with a deadline."""
    async with asyncio.timeout(2):
        while True:
            await client.send({"type": "get_strategies"})
            reply = await client.recv()  # replies come in order: this is the one
            if reply["type"] != "error":
                return reply
            assert reply["data"]["code"] == "rate_limited"
            await asyncio.sleep(0.01)


async def test_a_persistent_flood_is_closed_1008(capsys: pytest.CaptureFixture[str]) -> None:
    config = test_config(
        connections={"commands_per_second": 1, "command_burst": 5, "flood_close_after": 20}
    )
    async with running_daemon(config) as daemon, daemon.client() as other:
        async with daemon.client() as client:
            with contextlib.suppress(ConnectionClosed):  # it may close before the last
                for _ in range(100):
                    await client.send({"type": "get_strategies"})
            kinds: Counter[str] = Counter()
            with pytest.raises(ConnectionClosed) as caught:
                async with asyncio.timeout(5):
                    while True:
                        message = await client.recv()
                        error = message["type"] == "error"
                        kinds[message["data"]["code"] if error else message["type"]] += 1
            code = caught.value.rcvd.code if caught.value.rcvd is not None else None
        report(
            capsys,
            "command flood",
            sent=100,
            answered=kinds["strategy_list"],
            rate_limited=kinds["rate_limited"],
            close_code=code,
        )
        assert kinds == {"strategy_list": 5, "rate_limited": 19}
        assert code == 1008
        assert (await other.request({"type": "get_strategies"}))["type"] == "strategy_list"


# ---------------------------------------------------------------- subscriptions


async def test_subscriptions_are_bounded_per_connection_and_freed_by_unsubscribe() -> None:
    config = test_config(connections={"max_subscriptions": 2})
    async with (
        running_daemon(config) as daemon,
        daemon.client("market_data") as first,
        daemon.client("market_data") as second,
    ):
        ok = await first.request({"type": "subscribe", "symbols": ["AAPL", "MSFT"]})
        assert ok["type"] == "subscribed"
        refused = await first.request({"type": "subscribe", "symbols": ["GOOG"]})
        assert refused["data"]["code"] == "too_many_subscriptions"
        # The refusal changed nothing: still AAPL and MSFT, not GOOG.
        daemon.tick("GOOG", 10.0)
        daemon.tick("AAPL", 100.0)
        assert (await first.recv())["data"]["symbol"] == "AAPL"
        # The limit is per connection: another one has its own.
        ok = await second.request({"type": "subscribe", "symbols": ["GOOG", "TSLA"]})
        assert ok["type"] == "subscribed"
        await first.request({"type": "unsubscribe", "symbols": ["MSFT"]})
        ok = await first.request({"type": "subscribe", "symbols": ["GOOG"]})
        assert ok["type"] == "subscribed"
