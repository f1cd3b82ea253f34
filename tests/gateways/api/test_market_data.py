"""The market data gateway on 3001: subscriptions, quote snapshot, quotes and bars."""

from __future__ import annotations

from typing import Any

from tests.support import START, running_daemon

QUOTE_FIELDS = {"symbol", "price", "size", "timestamp"}
BAR_FIELDS = {"symbol", "resolution", "open", "high", "low", "close", "volume", "start", "end"}


async def test_subscribe_sends_last_quote_then_live_quotes_and_bars() -> None:
    async with running_daemon() as daemon, daemon.client("market_data") as client:
        daemon.tick("AAPL", 100.0)
        reply = await client.request({"type": "subscribe", "symbols": ["aapl"], "resolution": "1s"})
        assert reply["type"] == "subscribed"
        assert reply["data"] == {"symbols": ["AAPL"], "resolution": "1s"}
        snapshot = await client.recv()
        assert snapshot["type"] == "quote"
        assert set(snapshot["data"]) == QUOTE_FIELDS
        assert snapshot["data"]["price"] == 100.0

        daemon.advance(0.2)
        daemon.tick("AAPL", 101.0, size=2)
        daemon.advance(0.3)
        daemon.tick("AAPL", 99.0, size=3)
        daemon.advance(0.5)  # the 1 s bucket ends: the bar closes on time
        quotes = [await client.recv(), await client.recv()]
        assert [q["data"]["price"] for q in quotes] == [101.0, 99.0]
        bar = await client.recv_type("bar")
        assert set(bar["data"]) == BAR_FIELDS
        data: dict[str, Any] = bar["data"]
        # The tick before the subscription is in the same bucket: the new
        # aggregator is seeded with it, so the bar opens at 100.
        assert (data["open"], data["high"], data["low"], data["close"]) == (
            100.0,
            101.0,
            99.0,
            99.0,
        )
        assert data["volume"] == 6
        assert data["resolution"] == "1s"


async def test_quotes_go_only_to_subscribers_of_the_symbol() -> None:
    async with (
        running_daemon() as daemon,
        daemon.client("market_data") as aapl,
        daemon.client("market_data") as msft,
    ):
        await aapl.request({"type": "subscribe", "symbols": ["AAPL"]})
        await msft.request({"type": "subscribe", "symbols": ["MSFT"]})
        daemon.tick("AAPL", 100.0)
        daemon.tick("MSFT", 200.0)
        assert (await aapl.recv())["data"]["symbol"] == "AAPL"
        assert (await msft.recv())["data"]["symbol"] == "MSFT"


async def test_unsubscribe_stops_quotes_and_releases_the_aggregator() -> None:
    async with running_daemon() as daemon, daemon.client("market_data") as client:
        await client.request({"type": "subscribe", "symbols": ["AAPL"], "resolution": "5s"})
        hub = daemon.daemon.core.market._hub
        assert hub.subscriber_count("AAPL", "5s") == 1
        reply = await client.request({"type": "unsubscribe", "symbols": ["AAPL"]})
        assert reply["type"] == "unsubscribed"
        assert hub.subscriber_count("AAPL", "5s") == 0
        daemon.tick("AAPL", 100.0)
        status = await client.request({"type": "get_active_strategies"})
        assert status["type"] == "strategy_status_list"  # no quote came in between


async def test_disconnect_releases_bar_subscriptions() -> None:
    async with running_daemon() as daemon:
        async with daemon.client("market_data") as client:
            await client.request({"type": "subscribe", "symbols": ["MSFT"], "resolution": "1m"})
        hub = daemon.daemon.core.market._hub
        server = daemon.daemon.servers["market_data"]
        await server.wait_for_no_clients()
        assert hub.subscriber_count("MSFT", "1m") == 0


async def test_unknown_symbol_and_resolution_get_the_error_contract() -> None:
    async with running_daemon() as daemon, daemon.client("market_data") as client:
        error = await client.request({"type": "subscribe", "symbols": ["NOPE"]})
        assert error["type"] == "error"
        assert error["data"]["code"] == "unknown_symbol"
        assert error["data"]["requestType"] == "subscribe"
        assert "AAPL" in error["data"]["message"]
        error = await client.request({"type": "subscribe", "symbols": ["AAPL"], "resolution": "7m"})
        assert error["data"]["code"] == "unknown_resolution"
        ok = await client.request({"type": "subscribe", "symbols": ["AAPL"]})
        assert ok["type"] == "subscribed"


async def test_subscriptions_per_connection_are_bounded() -> None:
    from tests.support import test_config

    config = test_config(connections={"max_subscriptions": 2})
    async with running_daemon(config) as daemon, daemon.client("market_data") as client:
        ok = await client.request({"type": "subscribe", "symbols": ["AAPL"], "resolution": "1s"})
        assert ok["type"] == "subscribed"
        error = await client.request({"type": "subscribe", "symbols": ["MSFT"]})
        assert error["data"]["code"] == "too_many_subscriptions"


def test_start_is_on_a_whole_minute() -> None:
    assert START % 60 == 0
