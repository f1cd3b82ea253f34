"""VenueBroker.native_terms: which resting orders the venue keeps, per market from the
exchangeInfo ccxt loaded (``orderTypes``), and how ccxt's create_order is asked for
each (docs/venues.md, per order type); a read of a revision a replace has replaced
settles nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr

from gateways.venues.broker import VenueBroker
from gateways.venues.config import VenueConfig
from gateways.venues.credentials import VenueCredentials
from orchestrator.model.clock import ManualClock
from orchestrator.model.ids import SequentialIds
from orchestrator.model.orders import (
    BUY,
    SELL,
    Order,
    OrderPurpose,
    OrderType,
    TimeInForce,
    Trailing,
)
from tests.gateways.venues.test_live_trading import KEY, SECRET, venue_settings
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

ALL = LoopbackMarket("BTC", "USDT", 30_000.0)
LIMITS_ONLY = LoopbackMarket("ETH", "USDT", 2_000.0, order_types=("LIMIT", "MARKET"))
NO_STOP_MARKET = LoopbackMarket(
    "BNB", "USDT", 600.0, order_types=("LIMIT", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
)


@pytest.fixture
async def broker() -> AsyncIterator[VenueBroker]:
    markets = [ALL, LIMITS_ONLY, NO_STOP_MARKET]
    async with LoopbackExchange(KEY, SECRET, markets, {"USDT": 1_000.0}) as venue:
        config = VenueConfig.model_validate(venue_settings(venue))
        credentials = VenueCredentials(SecretStr(KEY), SecretStr(SECRET))
        venue_broker = VenueBroker("main", config, credentials, ManualClock(), SequentialIds())
        try:
            assert await venue_broker.connect()
            yield venue_broker
        finally:
            await venue_broker.close()


def order(symbol: str, kind: OrderType, **terms: Any) -> Order:
    limit = 31_000.0 if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    stop = 30_500.0 if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
    base = Order("order_1", "s", symbol, BUY, 0.01, 0.0, order_type=kind)
    return replace(base, **{"limit_price": limit, "stop_price": stop, **terms})


async def test_stops_rest_native_where_the_market_lists_their_type(broker: VenueBroker) -> None:
    stop_limit, stop = OrderType.STOP_LIMIT, OrderType.STOP
    assert broker.native_terms(order("BTC/USDT", stop_limit)) == (
        "limit",
        31_000.0,
        {"timeInForce": "GTC", "triggerPrice": 30_500.0},
    )
    assert broker.native_terms(order("BTC/USDT", stop)) == (
        "market",
        None,
        {"triggerPrice": 30_500.0},
    )
    # Triggered (or reached at placement): what it became.
    assert broker.native_terms(order("BTC/USDT", stop_limit), triggered=True) == (
        "limit",
        31_000.0,
        {"timeInForce": "GTC"},
    )
    assert broker.native_terms(order("BTC/USDT", stop), triggered=True) == ("market", None, {})
    assert broker.native_terms(order("BNB/USDT", stop_limit)) is not None
    assert broker.native_terms(order("BNB/USDT", stop)) is None  # no STOP_LOSS there
    assert broker.native_terms(order("ETH/USDT", stop_limit)) is None
    assert broker.native_terms(order("ETH/USDT", OrderType.LIMIT)) == (
        "limit",
        31_000.0,
        {"timeInForce": "GTC"},
    )


@pytest.mark.parametrize(
    "terms",
    [
        {"time_in_force": TimeInForce.IOC},
        {"purpose": OrderPurpose.STOP_LOSS, "side": SELL, "parent_id": "order_0"},
        {"trailing": Trailing(100.0)},
    ],
    ids=["IOC", "a bracket's exit", "trailing"],
)
async def test_these_stops_rest_in_the_daemon(broker: VenueBroker, terms: dict[str, Any]) -> None:
    assert broker.native_terms(order("BTC/USDT", OrderType.STOP, **terms)) is None
    assert broker.native_terms(order("BTC/USDT", OrderType.STOP_LIMIT, **terms)) is None


async def test_a_day_stop_rests_native_as_gtc(broker: VenueBroker) -> None:
    day = order("BTC/USDT", OrderType.STOP_LIMIT, time_in_force=TimeInForce.DAY)
    terms = broker.native_terms(day)
    assert terms is not None and terms[2]["timeInForce"] == "GTC"


async def test_a_read_made_before_a_replace_settles_nothing_more_once_it_is_replaced() -> None:
    """A poll reads a partly filled order, and while it reads the part's fees the replace's
    cancel settles that part and the next revision is placed: the poll's read is then of
    a replaced revision and settles nothing (it counted the part again, as a fill of the
    new revision, when only the order was compared: an over-fill the venue never made)."""
    async with LoopbackExchange(KEY, SECRET, [ALL], {"USDT": 10_000.0}) as venue:
        venue.part_size = 0.004
        config = VenueConfig.model_validate(venue_settings(venue))
        credentials = VenueCredentials(SecretStr(KEY), SecretStr(SECRET))
        broker = VenueBroker("main", config, credentials, ManualClock(), SequentialIds())
        try:
            assert await broker.connect()
            broker.unreconciled = None
            limit = Order(
                "order_1", "s", "BTC/USDT", BUY, 0.01, 0.0,
                order_type=OrderType.LIMIT, limit_price=29_500.0,
            )  # fmt: skip
            assert broker.place_resting(limit)
            await until_asked(venue, lambda: bool(venue.open_orders()))
            venue.set_price("BTC/USDT", 29_000.0)  # a part the broker has not read yet
            fees_asked, fees_answer = gate_first_fee_read(broker)
            polling = asyncio.create_task(broker.poll_resting())
            await fees_asked.wait()  # the poll read the part and asks for its fees
            broker.replace_resting(limit, replace(limit, limit_price=28_500.0))
            await until_asked(venue, lambda: "orc-order_1.1" in venue.by_client_id)
            fees_answer.set()
            assert await polling
            parts = [fill.quantity for fill in broker.expire()]
            assert parts == pytest.approx([0.004])
            [placed] = venue.open_orders()
            assert (placed.client_order_id, placed.orig_qty) == ("orc-order_1.1", 0.006)
        finally:
            await broker.close()


def gate_first_fee_read(broker: VenueBroker) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the broker's first read of an order's trades (its fees) until the second
    event is set; the first is set when it is asked."""
    asked, answer = asyncio.Event(), asyncio.Event()
    exchange = broker.exchange
    for name in ("fetch_order_trades", "fetch_my_trades"):
        read = getattr(exchange, name)

        async def held(*args: Any, _read: Any = read, **kwargs: Any) -> Any:
            if not asked.is_set():
                asked.set()
                await answer.wait()
            return await _read(*args, **kwargs)

        setattr(exchange, name, held)
    return asked, answer


async def until_asked(venue: LoopbackExchange, condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds, checked at each request the venue receives."""
    heard = asyncio.Event()
    venue.on_request = lambda method, endpoint: heard.set()
    try:
        async with asyncio.timeout(30.0):
            while not condition():
                await heard.wait()
                heard.clear()
    finally:
        venue.on_request = lambda method, endpoint: None
