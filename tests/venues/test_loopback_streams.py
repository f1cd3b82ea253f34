"""The loopback's public trade streams, read by plain, unmodified ccxt.pro: what it
pushes is what ccxt.pro's binance class subscribes to and parses, and a dropped stream is
the ccxt error a venue's would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro as ccxt_pro
import pytest
from aiohttp import ClientSession
from ccxt.base.errors import NetworkError

from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket
from tests.venues.test_loopback_exchange import KEY, SECRET, plain_binance

BTC = LoopbackMarket("BTC", "USDT", 30_000.0)
ETH = LoopbackMarket("ETH", "USDT", 2_000.0)
WAIT = 30.0
"""Generous: a loaded 2-core machine may take seconds where an idle one takes 0.1 s."""


def pro_binance(venue: LoopbackExchange) -> Any:
    """ccxt.pro's own binance class, its spot REST and WebSocket URLs pointed at ``venue``."""
    client = ccxt_pro.binance(
        {
            "timeout": 2_000,
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
            },
        }
    )
    api = client.urls["api"]
    client.urls["api"] = {**api, **venue.ccxt_urls(), "ws": {**api["ws"], **venue.ccxt_ws_urls()}}
    return client


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    async with LoopbackExchange(KEY, SECRET, [BTC, ETH], {"USDT": 1e5}, seed=5) as venue:
        yield venue


@pytest.fixture
async def client(exchange: LoopbackExchange) -> AsyncIterator[Any]:
    binance = pro_binance(exchange)
    try:
        yield binance
    finally:
        await binance.close()


async def subscribed(exchange: LoopbackExchange, count: int = 1) -> None:
    """Until ``count`` SUBSCRIBE requests have reached the loopback."""
    async with asyncio.timeout(WAIT):
        await exchange.streams.until_subscribed(count)


async def watched(
    client: Any, exchange: LoopbackExchange, symbols: list[str], **params: str
) -> list[Any]:
    """The trades of one watch_trades_for_symbols call, printing a round once subscribed."""
    watch = asyncio.create_task(client.watch_trades_for_symbols(symbols, params=params))
    await subscribed(exchange, len(exchange.streams.subscriptions) + 1)
    exchange.print_trades()
    async with asyncio.timeout(WAIT):
        trades: list[Any] = await watch
    return trades


async def test_ccxt_pro_subscribes_to_the_trade_streams_and_parses_each_trade(
    exchange: LoopbackExchange, client: Any
) -> None:
    assert client.has["watchTradesForSymbols"]
    [trade] = await watched(client, exchange, ["BTC/USDT", "ETH/USDT"])
    assert exchange.streams.subscriptions == [["btcusdt@trade", "ethusdt@trade"]]
    assert exchange.streams.open_connections == 1  # one connection for both symbols
    printed = {t.trade_id: t for t in exchange.tape}
    venue_trade = printed[int(trade["id"])]
    assert trade["symbol"] == venue_trade.symbol[:3] + "/USDT"
    assert (trade["price"], trade["amount"], trade["timestamp"]) == (
        venue_trade.price,
        venue_trade.qty,
        venue_trade.time_ms,
    )
    assert trade["side"] == venue_trade.side.lower()
    # Both symbols' trades of the round reach ccxt.pro's cache, by their trade ids.
    async with asyncio.timeout(WAIT):
        while sum(len(client.trades.get(s, [])) for s in ("BTC/USDT", "ETH/USDT")) < 2:
            await client.watch_trades_for_symbols(["BTC/USDT", "ETH/USDT"])
    cached = sorted(int(t["id"]) for s in ("BTC/USDT", "ETH/USDT") for t in client.trades[s])
    assert cached == sorted(printed)
    # As on Binance, REST's fetch_trades (aggTrades) numbers them in another series.
    rest = await client.fetch_trades("BTC/USDT")
    [btc] = [t for t in exchange.tape if t.symbol == "BTCUSDT"]
    assert [int(t["id"]) for t in rest] == [btc.agg_id] != [btc.trade_id]


async def test_the_aggregate_trade_stream_carries_the_rest_reads_ids(
    exchange: LoopbackExchange, client: Any
) -> None:
    [trade] = await watched(client, exchange, ["BTC/USDT"], name="aggTrade")
    assert exchange.streams.subscriptions == [["btcusdt@aggTrade"]]
    [btc] = [t for t in exchange.tape if t.symbol == "BTCUSDT"]
    assert (trade["info"]["e"], trade["info"]["f"], trade["info"]["l"]) == (
        "aggTrade",
        btc.trade_id,
        btc.trade_id,
    )
    assert (int(trade["id"]), trade["price"], trade["amount"], trade["side"]) == (
        btc.agg_id,
        btc.price,
        btc.qty,
        btc.side.lower(),
    )
    rest = await client.fetch_trades("BTC/USDT", params={"fromId": btc.agg_id})
    assert [t["id"] for t in rest] == [trade["id"]]


async def test_an_accounts_fill_is_pushed_like_the_tapes_trades(
    exchange: LoopbackExchange, client: Any
) -> None:
    watch = asyncio.create_task(client.watch_trades("BTC/USDT"))
    await subscribed(exchange)
    rest = plain_binance(exchange, KEY, SECRET)
    try:
        await rest.create_order("BTC/USDT", "market", "buy", 0.01)
    finally:
        await rest.close()
    async with asyncio.timeout(WAIT):
        [trade] = await watch
    [fill] = exchange.trades
    assert (int(trade["id"]), trade["amount"]) == (fill.trade_id, fill.qty)


async def test_dropped_streams_fail_the_watch_refuse_reconnection_until_restored(
    exchange: LoopbackExchange, client: Any
) -> None:
    await watched(client, exchange, ["BTC/USDT"])
    watch = asyncio.create_task(client.watch_trades_for_symbols(["BTC/USDT"]))
    await asyncio.sleep(0)
    await exchange.drop_streams()
    with pytest.raises(NetworkError):
        async with asyncio.timeout(WAIT):
            await watch
    assert exchange.streams.open_connections == 0
    with pytest.raises(NetworkError):
        async with asyncio.timeout(WAIT):
            await client.watch_trades_for_symbols(["BTC/USDT"])
    assert exchange.streams.connections_opened == 1  # refused while down
    exchange.restore_streams()
    [trade] = await watched(client, exchange, ["BTC/USDT"])
    assert int(trade["id"]) == exchange.tape[-2].trade_id  # BTC's of the last round
    assert exchange.streams.connections_opened == 2


async def test_a_request_it_does_not_know_gets_binances_error_reply(
    exchange: LoopbackExchange, client: Any
) -> None:
    async with ClientSession() as session:
        url = exchange.ccxt_ws_urls()["spot"] + "/0"
        async with session.ws_connect(url) as ws:
            await ws.send_str('{"method": "LIST_SUBSCRIPTIONS", "params": [], "id": 7}')
            assert await ws.receive_json() == {
                "error": {"code": 1, "msg": "Unknown method LIST_SUBSCRIPTIONS"},
                "id": 7,
            }
            await ws.send_str("not json")
            assert (await ws.receive_json())["error"]["code"] == 2
