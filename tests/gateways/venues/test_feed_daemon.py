"""A daemon whose market data is the ccxt feed of a venue (the loopback exchange, its
tape printing trades), polled or streamed: the ticks reach 3001's clients, a strategy
trades on them, and the venue (or its stream) going away is a gap on 3001 until it comes
back. Real clock, real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from tests.support import Client, test_config
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

KEY, SECRET = "feed-key", "feed-secret"
SYMBOL = "BTC/USDT"
TAPE_SECONDS = 0.05
SUBSCRIBE = {"type": "subscribe", "symbols": [SYMBOL], "resolution": "1s"}
WAIT = 30.0
"""Generous: a loaded 2-core machine may take seconds where an idle one takes 0.1 s."""


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_API_KEY", KEY)
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_SECRET", SECRET)


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    async with LoopbackExchange(KEY, SECRET, [market], {"USDT": 100_000.0}, seed=9) as venue:
        venue.start_tape(TAPE_SECONDS)
        yield venue


def feed_config(venue: LoopbackExchange, stream: str = "off") -> DaemonConfig:
    """The ccxt feed of the loopback venue: polled (off) or streamed (auto)."""
    return test_config(
        market_data={
            "feed": {
                "kind": "ccxt",
                "venue": "main",
                "symbols": [SYMBOL],
                "interval_seconds": 0.05,
                "gap_intervals": 4,
                "max_backoff_seconds": 0.2,
                "stream": stream,
            }
        },
        venues={
            "main": {
                "exchange": "binance",
                "api_urls": venue.ccxt_urls(),
                "stream_urls": venue.ccxt_ws_urls(),
                "rate_limit_ms": 1,  # ccxt's throttle on, spacing requests 1 ms apart
                "timeout_seconds": 1.0,
                "poll_interval_seconds": 0.05,
            }
        },
        strategies=[
            {
                "id": "buyer",
                "name": "Buy then hold",
                "kind": "tests.scripted_strategies:BuyThenHold",
                "params": {"quantity": 0.01},
                "defaults": {"symbols": [SYMBOL], "data_resolution": "1s"},
            }
        ],
    )


@contextlib.asynccontextmanager
async def serving(config: DaemonConfig) -> AsyncIterator[Daemon]:
    """The daemon on the machine's clock with its background tasks (the feed's among them)."""
    daemon = Daemon(config)
    await daemon.start()
    tasks = [asyncio.create_task(c, name=n) for n, c in daemon.background_tasks().items()]
    try:
        yield daemon
    finally:
        for task in tasks:
            task.cancel()
        await daemon.close_servers()
        await asyncio.gather(*tasks, return_exceptions=True)
        await daemon.stop()


def url(daemon: Daemon, server: str) -> str:
    path = getattr(daemon.config.servers, server).path
    return f"ws://127.0.0.1:{daemon.servers[server].port}{path}"


async def next_message(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """The next message of ``kind`` whose data has ``fields``."""
    async with asyncio.timeout(WAIT):
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            data = message.get("data")
            if message["type"] == kind and all(data.get(k) == v for k, v in fields.items()):
                return message


async def test_the_venues_trades_reach_3001_and_a_strategy_trades_on_them(
    exchange: LoopbackExchange,
) -> None:
    async with serving(feed_config(exchange)) as daemon:
        async with connect(url(daemon, "market_data")) as ws:
            await ws.send(orjson.dumps(SUBSCRIBE).decode())
            quotes = [(await next_message(ws, "quote"))["data"] for _ in range(3)]
            tape = {(t.price, t.qty) for t in exchange.market_trades(SYMBOL)}
            assert all((q["price"], q["size"]) in tape for q in quotes)
            bar = (await next_message(ws, "bar"))["data"]
            assert bar["symbol"] == SYMBOL and bar["resolution"] == "1s"
        async with connect(url(daemon, "orchestrator")) as ws8082:
            client = Client(ws8082)
            await client.read_snapshot()
            reply = await client.request({"type": "start_strategy", "id": "buyer"})
            assert reply["type"] == "strategy_started"
            trade = (await client.recv_type("strategy_trade", timeout=WAIT))["data"]
        assert (trade["status"], trade["side"], trade["quantity"]) == ("FILLED", "BUY", 0.01)
        assert exchange.submissions == 0  # a paper strategy: the venue only fed it prices
        assert daemon.journal is not None
        await daemon.writer.flush()  # told from the redo log: SQLite may commit it after
        # The strategy may have traded again since: its first fill is the one told.
        [fill] = [f for f in daemon.journal.fills("buyer") if f.order_id == trade["orderId"]]
        prices = {t.price for t in exchange.market_trades(SYMBOL)}
        slippage = daemon.config.broker.slippage_bps / 1e4
        assert any(abs(fill.price - p * (1 + slippage)) < 1e-6 for p in prices)


async def test_the_venue_going_away_is_a_gap_on_3001_and_its_return_a_recovery(
    exchange: LoopbackExchange,
) -> None:
    async with serving(feed_config(exchange)) as daemon, connect(url(daemon, "market_data")) as ws:
        first = await next_message(ws, "feed_status")  # the snapshot's
        assert (first["data"]["kind"], first["data"]["source"]) == ("ccxt", "main")
        if first["data"]["state"] != "live":
            await next_message(ws, "feed_status", state="live")
        await exchange.go_down()
        gap = (await next_message(ws, "feed_status", state="gap"))["data"]
        assert "venue main cannot be reached" in gap["reason"]
        assert gap["lastData"] is not None
        async with connect(url(daemon, "market_data")) as late:
            # A client that connects during the gap learns of it in its snapshot.
            assert (await next_message(late, "feed_status"))["data"]["state"] == "gap"
        await exchange.come_back()
        exchange.start_tape(TAPE_SECONDS)
        live = (await next_message(ws, "feed_status", state="live"))["data"]
        assert live["reason"] is None
        assert live["since"] > gap["since"]


async def test_streamed_trades_reach_3001_as_quotes_and_bars(exchange: LoopbackExchange) -> None:
    async with serving(feed_config(exchange, stream="auto")) as daemon:
        feed = daemon.venue_feed
        assert feed is not None
        async with connect(url(daemon, "market_data")) as ws:
            await ws.send(orjson.dumps(SUBSCRIBE).decode())
            # The feed polls until the stream's first message: on a loaded machine the
            # first quotes may all be polled ones. Those counted come once it streams.
            quotes: list[dict[str, Any]] = []
            while len(quotes) < 3:
                quote = (await next_message(ws, "quote"))["data"]
                if feed.streaming:
                    quotes.append(quote)
            bar = (await next_message(ws, "bar"))["data"]
        assert feed.streaming
    assert exchange.streams.subscriptions == [["btcusdt@aggTrade"]]
    tape = {(t.price, t.qty) for t in exchange.market_trades(SYMBOL)}
    assert all((q["price"], q["size"]) in tape for q in quotes)
    assert bar["symbol"] == SYMBOL and bar["resolution"] == "1s"
    assert exchange.streams.open_connections == 0  # the feed closed its stream with it


async def test_a_dropped_stream_is_a_gap_on_3001_until_it_reconnects(
    exchange: LoopbackExchange,
) -> None:
    async with serving(feed_config(exchange, stream="auto")) as daemon:
        feed = daemon.venue_feed
        assert feed is not None
        async with connect(url(daemon, "market_data")) as ws:
            await ws.send(orjson.dumps(SUBSCRIBE).decode())
            await next_message(ws, "quote")
            while not feed.streaming:
                await next_message(ws, "quote")
            await exchange.drop_streams()
            gap = (await next_message(ws, "feed_status", state="gap"))["data"]
            assert gap["reason"].startswith("trade stream down, polling REST")
            polled = (await next_message(ws, "quote"))["data"]  # REST meanwhile
            assert not feed.streaming
            exchange.restore_streams()
            live = (await next_message(ws, "feed_status", state="live"))["data"]
            assert live["since"] > gap["since"] and feed.streaming
    tape = {(t.price, t.qty) for t in exchange.market_trades(SYMBOL)}
    assert (polled["price"], polled["size"]) in tape
    assert exchange.streams.connections_opened >= 2
