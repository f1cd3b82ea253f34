"""The loopback exchange, driven by plain, unmodified ccxt: what it answers is what
ccxt's binance class parses, each failure the ccxt error a venue's would be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

KEY, SECRET = "loopback-key", "loopback-secret"
BTC = LoopbackMarket("BTC", "USDT", 30_000.0)


@pytest.fixture
async def exchange() -> AsyncIterator[LoopbackExchange]:
    async with LoopbackExchange(KEY, SECRET, [BTC], {"USDT": 100_000.0}, seed=3) as venue:
        yield venue


def plain_binance(
    venue: LoopbackExchange, api_key: str = KEY, secret: str = SECRET, **config: Any
) -> ccxt.binance:
    """ccxt's own binance class, its spot URLs pointed at ``venue``."""
    client = ccxt.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "timeout": 2_000,
            "enableRateLimit": False,  # the loopback has no limit but the one a test asks for
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
            },
            **config,
        }
    )
    client.urls["api"] = {**client.urls["api"], **venue.ccxt_urls()}
    return client


@pytest.fixture
async def client(exchange: LoopbackExchange) -> AsyncIterator[ccxt.binance]:
    binance = plain_binance(exchange)
    try:
        yield binance
    finally:
        await binance.close()


async def test_markets_time_and_balance(exchange: LoopbackExchange, client: ccxt.binance) -> None:
    markets = await client.load_markets()
    assert list(markets) == ["BTC/USDT"]
    assert markets["BTC/USDT"]["precision"]["price"] == 0.01
    assert markets["BTC/USDT"]["limits"]["cost"]["min"] == 5.0
    assert abs(await client.fetch_time() - exchange.now_ms()) < 60_000
    balance = await client.fetch_balance()
    assert balance["total"]["USDT"] == 100_000.0


async def test_a_market_order_fills_at_the_path_price_with_its_fee(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    exchange.step(5)
    price = exchange.prices["BTCUSDT"]
    order = await client.create_order(
        "BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "c-1"}
    )
    assert (order["clientOrderId"], order["status"], order["filled"]) == ("c-1", "closed", 0.01)
    assert order["average"] == price
    assert order["fee"] == {"currency": "USDT", "cost": pytest.approx(0.01 * price * 0.001)}
    trades = await client.fetch_my_trades("BTC/USDT")
    assert [(t["order"], t["side"], t["amount"]) for t in trades] == [(order["id"], "buy", 0.01)]
    assert exchange.position("BTC") == pytest.approx(0.01)
    assert exchange.position("USDT") == pytest.approx(100_000.0 - 0.01 * price * 1.001)


async def test_a_client_order_id_makes_one_order_only(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    await client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "c-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "c-1"})
    assert len(exchange.orders) == 1
    known = await client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "c-1"})
    assert known["status"] == "closed"


async def test_a_limit_rests_fills_when_the_path_reaches_it_and_cancels(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    below = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 29_000.0)
    far = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 1_000.0)
    assert [o["id"] for o in await client.fetch_open_orders("BTC/USDT")] == [below["id"], far["id"]]
    assert exchange.balances["USDT"][1] == pytest.approx(0.01 * 29_000 + 0.01 * 1_000)
    exchange.set_price("BTC/USDT", 28_900.0)
    filled = await client.fetch_order(below["id"], "BTC/USDT")
    assert (filled["status"], filled["average"]) == ("closed", 29_000.0)
    cancelled = await client.cancel_order(far["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    assert await client.fetch_open_orders("BTC/USDT") == []
    assert exchange.balances["USDT"][1] == pytest.approx(0.0)
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order(far["id"], "BTC/USDT")


async def test_the_seeded_path_is_the_same_every_run() -> None:
    paths = []
    for _ in range(2):
        venue = LoopbackExchange(KEY, SECRET, [BTC], {}, seed=11)
        venue.step(50)
        paths.append(venue.prices["BTCUSDT"])
    assert paths[0] == paths[1] != BTC.start_price


@pytest.mark.parametrize(
    ("api_key", "secret", "error", "code"),
    [
        ("wrong-key", SECRET, ccxt.AuthenticationError, "-2015"),
        (KEY, "wrong", ccxt.AuthenticationError, "-1022"),
    ],
)
async def test_signed_requests_are_checked(
    exchange: LoopbackExchange, api_key: str, secret: str, error: type[Exception], code: str
) -> None:
    binance = plain_binance(exchange, api_key, secret)
    try:
        await binance.load_markets()  # public: no key needed
        with pytest.raises(error, match=code):
            await binance.fetch_balance()
    finally:
        await binance.close()


async def test_a_clock_outside_the_receive_window_is_refused(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    exchange.skew_ms = -30_000  # the client is 30 s ahead of the server
    with pytest.raises(ccxt.InvalidNonce, match="recvWindow"):
        await client.fetch_balance()
    exchange.skew_ms = 0
    assert (await client.fetch_balance())["total"]["USDT"] == 100_000.0


async def test_failures_on_command(exchange: LoopbackExchange, client: ccxt.binance) -> None:
    await client.load_markets()
    exchange.rate_limit_next()
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await client.fetch_balance()
    exchange.reject_next(msg="Order would immediately match and take.")
    with pytest.raises(ccxt.InvalidOrder, match="immediately match"):
        await client.create_order("BTC/USDT", "market", "buy", 0.01)
    assert exchange.orders == {}
    with pytest.raises(ccxt.BadSymbol):
        await client.create_order("ETH/USDT", "market", "buy", 0.01)


async def test_a_held_submit_times_out_with_the_order_on_the_venue(
    exchange: LoopbackExchange,
) -> None:
    binance = plain_binance(exchange, timeout=300)
    try:
        await binance.load_markets()
        exchange.hold_next_submit()
        with pytest.raises(ccxt.RequestTimeout):
            await binance.create_order(
                "BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "c-9"}
            )
        assert exchange.by_client_id["c-9"].status == "FILLED"
        exchange.release()
        known = await binance.fetch_order(None, "BTC/USDT", {"origClientOrderId": "c-9"})
        assert known["filled"] == 0.01
    finally:
        await binance.close()


async def test_insufficient_balance_and_lot_size_are_refused(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    await client.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):
        await client.create_order("BTC/USDT", "market", "sell", 0.01)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await client.create_order("BTC/USDT", "market", "buy", 0.0001)


async def test_a_resting_limit_fills_in_parts_and_ioc_and_fok_expire(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    exchange.set_price("BTC/USDT", 30_000.0)
    exchange.part_size = 0.004
    params = {"clientOrderId": "c-gtc"}
    order = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 29_000.0, params)
    assert (order["status"], order["filled"]) == ("open", 0.0)
    exchange.set_price("BTC/USDT", 28_900.0)
    read = await client.fetch_order(order["id"], "BTC/USDT")
    assert (read["status"], read["filled"], read["remaining"]) == ("open", 0.004, 0.006)
    ioc = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 29_000.0, {"clientOrderId": "c-ioc", "timeInForce": "IOC"}
    )
    assert (ioc["status"], ioc["filled"]) == ("expired", 0.004)  # the rest could not fill at once
    fok = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 29_000.0, {"clientOrderId": "c-fok", "timeInForce": "FOK"}
    )
    assert (fok["status"], fok["filled"]) == ("expired", 0.0)
    assert [o.client_order_id for o in exchange.open_orders()] == ["c-gtc"]
    assert exchange.position("BTC") == pytest.approx(0.008)


async def test_fees_can_be_charged_in_bnb() -> None:
    markets = [BTC, LoopbackMarket("BNB", "USDT", 600.0)]
    balances = {"USDT": 100_000.0, "BNB": 1.0}
    async with LoopbackExchange(KEY, SECRET, markets, balances, fee_asset="BNB") as venue:
        binance = plain_binance(venue)
        try:
            order = await binance.create_order("BTC/USDT", "market", "buy", 0.01)
        finally:
            await binance.close()
    fee = 0.01 * order["average"] * 0.001 / 600.0
    assert order["fee"] == {"currency": "BNB", "cost": pytest.approx(fee)}
    assert venue.position("BNB") == pytest.approx(1.0 - fee)
    assert venue.position("USDT") == pytest.approx(100_000.0 - 0.01 * order["average"])


async def test_a_stop_limit_from_a_trigger_price_rests_triggers_and_fills_in_parts(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    exchange.set_price("BTC/USDT", 30_000.0)
    exchange.part_size = 0.004
    params = {"clientOrderId": "c-stop", "triggerPrice": 30_300.0}
    order = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 30_400.0, params)
    [sent] = exchange.open_orders()
    assert (sent.type, sent.stop_price, sent.price, sent.time_in_force) == (
        "STOP_LOSS_LIMIT",
        30_300.0,
        30_400.0,
        "GTC",
    )
    [listed] = await client.fetch_open_orders("BTC/USDT")
    # ccxt's unified order: a limit with a trigger price; Binance's type in its info.
    assert (listed["type"], listed["triggerPrice"], listed["status"]) == ("limit", 30_300.0, "open")
    assert listed["info"]["type"] == "STOP_LOSS_LIMIT"
    assert listed["info"]["workingTime"] == -1 and listed["info"]["isWorking"] is False
    exchange.set_price("BTC/USDT", 30_200.0)  # not yet
    assert exchange.orders[int(order["id"])].waiting
    exchange.set_price("BTC/USDT", 30_350.0)  # through the stop: a limit at 30,400 now
    read = await client.fetch_order(order["id"], "BTC/USDT")
    assert (read["status"], read["filled"]) == ("open", 0.004)
    assert read["average"] == pytest.approx(30_400.0)
    assert read["info"]["workingTime"] > 0
    exchange.set_price("BTC/USDT", 30_500.0)  # above its limit: nothing
    exchange.set_price("BTC/USDT", 30_390.0)
    exchange.set_price("BTC/USDT", 30_380.0)
    done = await client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "c-stop"})
    assert (done["status"], done["filled"]) == ("closed", 0.01)
    assert exchange.position("BTC") == pytest.approx(0.01)
    [history] = await client.fetch_orders("BTC/USDT")
    assert (history["clientOrderId"], history["status"]) == ("c-stop", "closed")


async def test_stop_market_and_take_profit_orders_trigger_as_binance_says(
    exchange: LoopbackExchange, client: ccxt.binance
) -> None:
    exchange.set_price("BTC/USDT", 30_000.0)
    stop = await client.create_order(
        "BTC/USDT", "market", "buy", 0.01, None, {"triggerPrice": 30_300.0}
    )
    target = await client.create_order(
        "BTC/USDT", "limit", "buy", 0.01, 29_500.0, {"takeProfitPrice": 29_600.0}
    )
    types = sorted(o.type for o in exchange.open_orders())
    assert types == ["STOP_LOSS", "TAKE_PROFIT_LIMIT"]
    exchange.set_price("BTC/USDT", 30_450.0)  # a gap through the stop: a market order there
    filled = await client.fetch_order(stop["id"], "BTC/USDT")
    assert (filled["status"], filled["average"], filled["info"]["type"]) == (
        "closed",
        30_450.0,
        "STOP_LOSS",
    )
    exchange.set_price("BTC/USDT", 29_550.0)  # a take-profit buy triggers at or below
    assert (await client.fetch_order(target["id"], "BTC/USDT"))["status"] == "open"
    exchange.set_price("BTC/USDT", 29_500.0)
    assert (await client.fetch_order(target["id"], "BTC/USDT"))["status"] == "closed"
    cancel_me = await client.create_order(
        "BTC/USDT", "limit", "sell", 0.01, 29_000.0, {"triggerPrice": 29_100.0}
    )
    assert (await client.cancel_order(cancel_me["id"], "BTC/USDT"))["status"] == "canceled"
    assert exchange.balances["BTC"][1] == pytest.approx(0.0)  # nothing locked any more


async def test_a_stop_already_reached_and_an_unlisted_type_are_refused() -> None:
    market = LoopbackMarket("BTC", "USDT", 30_000.0, order_types=("LIMIT", "MARKET"))
    stops = LoopbackMarket("ETH", "USDT", 2_000.0)
    balances = {"USDT": 100_000.0}
    async with LoopbackExchange(KEY, SECRET, [market, stops], balances) as venue:
        binance = plain_binance(venue)
        try:
            await binance.load_markets()
            assert binance.markets["BTC/USDT"]["info"]["orderTypes"] == ["LIMIT", "MARKET"]
            with pytest.raises(ccxt.InvalidOrder, match="triggerPrice parameter is not allowed"):
                await binance.create_order(  # ccxt itself reads orderTypes
                    "BTC/USDT", "limit", "buy", 0.01, 30_400.0, {"triggerPrice": 30_300.0}
                )
            with pytest.raises(ccxt.OrderImmediatelyFillable, match="trigger immediately"):
                await binance.create_order(
                    "ETH/USDT", "limit", "buy", 0.1, 2_000.0, {"triggerPrice": 1_990.0}
                )
            # Past ccxt's own check, the venue refuses it too (a request signed by hand).
            await binance.load_markets()
            binance.markets["BTC/USDT"]["info"]["orderTypes"].append("STOP_LOSS")
            with pytest.raises(ccxt.InvalidOrder, match="Stop loss orders are not supported"):
                await binance.create_order(
                    "BTC/USDT", "market", "buy", 0.01, None, {"triggerPrice": 30_300.0}
                )
        finally:
            await binance.close()
    assert venue.orders == {}
