"""realTrading through the loopback exchange, end to end: a strategy started with
``realTrading: true, venue: main`` sends its orders, after the risk checks, to the
venue through ccxt; the venue's fills are journaled and told on 8082 as paper fills
are; a venue that fails refuses or rejects with its reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.config import DaemonConfig
from orchestrator.journal.store import Journal
from orchestrator.model.orders import FILLED, Order, Side
from tests.support import Client, TestDaemon, running_daemon, test_config
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket
from tests.venues.test_loopback_exchange import plain_binance

KEY, SECRET = "live-key", "live-secret"
SYMBOL = "BTC/USDT"
LIVE = {"realTrading": True, "venue": "main"}


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_API_KEY", KEY)
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_SECRET", SECRET)


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    async with LoopbackExchange(KEY, SECRET, [market], {"USDT": 100_000.0}, seed=5) as venue:
        yield venue


def venue_settings(venue: LoopbackExchange, **overrides: Any) -> dict[str, Any]:
    """``[venues.main]`` for the loopback ``venue``: polled fast, no rate limiter."""
    return {
        "exchange": "binance",
        "api_urls": venue.ccxt_urls(),
        "enable_rate_limit": False,
        "poll_interval_seconds": 0.05,
        "timeout_seconds": 2.0,
        **overrides,
    }


def live_config(venue: LoopbackExchange, **overrides: Any) -> DaemonConfig:
    return test_config(
        market_data={
            "feed": {"kind": "synthetic", "symbols": {SYMBOL: 30_000.0}, "history_seconds": 0}
        },
        venues={"main": venue_settings(venue, **overrides)},
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


async def first_bar(daemon: TestDaemon, price: float = 30_000.0) -> None:
    """One bar of the feed's symbol closes: the strategy buys on it."""
    daemon.tick(SYMBOL, price)
    daemon.advance(1.0)
    daemon.tick(SYMBOL, price)


async def start_live(client: Client) -> dict[str, Any]:
    return await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})


async def start_live_once_connected(
    daemon: TestDaemon, client: Client, venue: LoopbackExchange
) -> None:
    """Start the buyer live once the broker is connected: with a short request timeout
    a loaded machine may have the venue seem away for a moment (the broker reconnects)."""
    broker = daemon.daemon.venues["main"]
    heard = asyncio.Event()
    venue.on_request = lambda method, endpoint: heard.set()
    try:
        async with asyncio.timeout(30.0):
            while not broker.state.connected:
                await heard.wait()
                heard.clear()
    finally:
        venue.on_request = lambda method, endpoint: None
    reply = await start_live(client)
    assert reply["type"] == "strategy_started", reply


SHORT_TIMEOUT = 1.0
"""A request timeout the held submit runs into, and other requests on a loaded machine
(rarely; each is tried again)."""


async def test_a_live_strategy_trades_on_the_venue_and_is_told_as_a_paper_trade(
    exchange: LoopbackExchange,
) -> None:
    exchange.step(3)
    venue_price = exchange.prices["BTCUSDT"]
    async with running_daemon(live_config(exchange)) as daemon, daemon.client() as client:
        status = client.snapshot[0]["data"]
        assert status["venues"] == [{"name": "main", "connected": True, "reason": None}]
        assert (await start_live(client))["type"] == "strategy_started"
        await first_bar(daemon)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["status"], trade["side"], trade["quantity"]) == ("FILLED", "BUY", 0.01)
        assert trade["entryPrice"] == venue_price  # the venue's fill, not the feed's tick
        [order] = exchange.orders.values()
        assert order.client_order_id == f"orc-{trade['orderId']}"
        journal = await daemon.committed_journal()
        [fill] = journal.fills("buyer")
        assert (fill.order_id, fill.price, fill.quantity) == (trade["orderId"], venue_price, 0.01)
        assert fill.commission == pytest.approx(0.01 * venue_price * 0.001)  # in USDT
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_a_paper_strategy_beside_it_stays_on_paper(exchange: LoopbackExchange) -> None:
    async with running_daemon(live_config(exchange)) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "buyer"})
        await first_bar(daemon)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert trade["status"] == "FILLED"
        assert exchange.submissions == 0


async def test_real_trading_needs_a_connected_venue(exchange: LoopbackExchange) -> None:
    config = live_config(exchange, api_urls={"public": "http://127.0.0.1:1/api/v3"})
    async with running_daemon(config) as daemon, daemon.client() as client:
        [venue] = client.snapshot[0]["data"]["venues"]
        assert venue["connected"] is False
        assert "venue main cannot be reached" in venue["reason"]
        reply = await start_live(client)
        assert reply["data"]["code"] == "real_trading_unavailable"
        assert "venue main is not connected" in reply["data"]["message"]
        no_venue = {"type": "start_strategy", "id": "buyer", "config": {"realTrading": True}}
        reply = await client.request(no_venue)
        assert "realTrading needs a venue" in reply["data"]["message"]
        assert daemon.daemon.registry.status("buyer").value == "STOPPED"


async def test_a_rejection_by_the_venue_is_told_with_its_reason(
    exchange: LoopbackExchange,
) -> None:
    async with running_daemon(live_config(exchange)) as daemon, daemon.client() as client:
        await start_live(client)
        exchange.reject_next(msg="Market is closed.")
        await first_bar(daemon)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert trade["status"] == "REJECTED"
        assert "venue main refused" in trade["reason"] and "Market is closed." in trade["reason"]
        assert exchange.orders == {}


async def test_a_submit_that_times_out_is_looked_up_never_sent_twice(
    exchange: LoopbackExchange,
) -> None:
    config = live_config(exchange, timeout_seconds=SHORT_TIMEOUT)
    async with running_daemon(config) as daemon, daemon.client() as client:
        await start_live_once_connected(daemon, client, exchange)
        exchange.hold_next_submit()
        await first_bar(daemon)
        trade = (await client.recv_type("strategy_trade", 30.0))["data"]
        assert trade["status"] == "FILLED"
        assert exchange.submissions == 1
        assert len(exchange.orders) == 1
        exchange.release()


async def test_a_clean_stop_settles_the_order_on_its_way_and_sends_no_new_one(
    exchange: LoopbackExchange,
) -> None:
    """Stopped while a submit waits for its answer: the stop waits for the order's
    outcome (looked up once the submit times out), so the journal holds its fill when
    the daemon is gone and nothing in flight; from the stop on, an order is refused
    with the reason, never sent."""
    config = live_config(exchange, timeout_seconds=SHORT_TIMEOUT)
    async with running_daemon(config) as daemon, daemon.client() as client:
        await start_live_once_connected(daemon, client, exchange)
        exchange.hold_next_submit()
        await first_bar(daemon)
        await exchange.holding.wait()
        journal, broker = daemon.daemon.journal, daemon.daemon.venues["main"]
        assert journal is not None
    exchange.release()
    with Journal.open_readonly(journal.path) as stored:
        assert [(f.order_id, f.status) for f in stored.fills("buyer")] == [("order_000001", FILLED)]
        assert stored.unfilled_venue_orders() == []
    late = broker.submit(Order("order_late", "buyer", SYMBOL, Side.BUY, 0.01, 0.0))
    assert [f.reason for f in late] == ["venue main: the daemon is stopping; no new order is sent"]
    assert exchange.submissions == 1 and len(exchange.orders) == 1


async def test_an_order_the_venue_already_has_is_read_not_made_again(
    exchange: LoopbackExchange,
) -> None:
    """As after a crash between submit and acknowledgement: the venue has the order's
    client id; the daemon's send is refused as a duplicate and the order looked up."""
    binance = plain_binance(exchange, KEY, SECRET)
    try:
        await binance.create_order(
            SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "orc-order_000001"}
        )
    finally:
        await binance.close()
    async with running_daemon(live_config(exchange)) as daemon, daemon.client() as client:
        await start_live(client)
        await first_bar(daemon)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["orderId"], trade["status"]) == ("order_000001", "FILLED")
        assert exchange.submissions == 2 and len(exchange.orders) == 1
