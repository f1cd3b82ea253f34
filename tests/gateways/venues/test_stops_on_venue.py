"""Native stop orders on the loopback exchange (docs/venues.md, per order type): a live
strategy's stop-limit rests on the venue as Binance's STOP_LOSS_LIMIT (its stop, a
STOP_LOSS), triggers there when the venue's price trades through its stop and fills
there in parts, told on 8082 as the pipeline's own stops are; cancelled there by
``cancel_order`` and the kill switch, moved by a replace; across a restart one still
resting rests on and one filled while the daemon was down (a protective sell too) is
settled once; a venue unreachable at restart keeps none that nothing follows; a stop
already reached goes as what it becomes; a market whose exchangeInfo does not list
the type keeps the stop in the daemon."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.model.orders import FILLED, OrderType
from tests.gateways.venues.test_live_trading import LIVE, SYMBOL, first_bar
from tests.gateways.venues.test_resting_on_venue import (
    KEY,
    SECRET,
    config_for,
    credentials,
    eventually,
    exchange,
    late_start_pass_cancels_the_orphan,
    resting_on_venue,
    restored_in_error,
)
from tests.support import Client, running_daemon
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

__all__ = ["credentials", "exchange"]  # the fixtures of the limit orders' tests

STOP_BUYER = "tests.scripted_strategies:RestingStopBuys"
PROTECTED_LONG = "tests.scripted_strategies:ProtectedLong"

ORDER_EVENTS = ("order_accepted", "order_partially_filled", "order_triggered", "strategy_trade")


async def order_events(client: Client, count: int) -> list[dict[str, Any]]:
    """The next ``count`` order lifecycle messages and trades, in the order told."""
    told: list[dict[str, Any]] = []
    while len(told) < count:
        message = await client.recv()
        if message.get("type") in ORDER_EVENTS:
            told.append(message)
    return told


def summary(message: dict[str, Any]) -> tuple[Any, ...]:
    """What a test compares of an order message or trade."""
    data = message["data"]
    if message["type"] == "strategy_trade":
        return ("strategy_trade", data["status"], data["quantity"], data["entryPrice"])
    if message["type"] == "order_partially_filled":
        return ("order_partially_filled", data["orderType"], data["stopPrice"], data["quantity"])
    if message["type"] == "order_triggered":
        return ("order_triggered", data["triggerPrice"])
    return (message["type"], data["orderType"], data["stopPrice"], data["limitPrice"])


async def test_a_stop_limit_rests_on_the_venue_triggers_there_and_fills_in_parts(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.004
    async with running_daemon(config_for(exchange, STOP_BUYER)) as daemon:
        async with daemon.client() as client:
            await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
            await first_bar(daemon)  # closes at 30,000: a stop at 30,300, its limit 30,450
            [accepted] = await order_events(client, 1)
            assert summary(accepted) == ("order_accepted", "STOP_LIMIT", 30_300.0, 30_450.0)
            await eventually(exchange, lambda: exchange.open_orders())
            [order] = exchange.open_orders()
            order_id = accepted["data"]["orderId"]
            assert order.client_order_id == f"orc-{order_id}"
            assert (order.type, order.stop_price, order.price, order.time_in_force) == (
                "STOP_LOSS_LIMIT",
                30_300.0,
                30_450.0,
                "GTC",
            )
            assert order.waiting
            daemon.tick(SYMBOL, 30_400.0)  # the daemon's feed does not trigger it: the venue does
            assert order.waiting and exchange.submissions == 1
            exchange.set_price(SYMBOL, 30_350.0)  # through the stop: triggered, a first part
            first = await order_events(client, 2)
            exchange.set_price(SYMBOL, 30_400.0)
            second = await order_events(client, 2)
            exchange.set_price(SYMBOL, 30_400.0)
            last = await order_events(client, 2)
        assert [summary(m) for m in first + second + last] == [
            ("strategy_trade", "FILLED", 0.004, 30_450.0),
            ("order_partially_filled", "LIMIT", None, pytest.approx(0.006)),  # what it became
            ("strategy_trade", "FILLED", 0.004, 30_450.0),
            ("order_partially_filled", "LIMIT", None, pytest.approx(0.002)),
            ("order_triggered", 30_450.0),
            ("strategy_trade", "FILLED", pytest.approx(0.002), 30_450.0),
        ]
        journal = await daemon.committed_journal()
        fills = journal.fills("buyer")
        assert [(f.order_id, f.status) for f in fills] == [(order_id, FILLED)] * 3
        assert [f.quantity for f in fills] == pytest.approx([0.004, 0.004, 0.002])
        assert daemon.daemon.core.execution.open_orders("buyer") == []
    assert exchange.submissions == 1
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_a_stop_rests_on_the_venue_as_a_stop_loss_and_fills_at_its_gap(
    exchange: LoopbackExchange,
) -> None:
    config = config_for(exchange, STOP_BUYER, {"limit_offset": None})
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        assert (order.type, order.stop_price, order.price) == ("STOP_LOSS", 30_300.0, 0.0)
        exchange.set_price(SYMBOL, 30_500.0)  # a gap through the stop: a market order there
        triggered, trade = await order_events(client, 2)
        assert summary(triggered) == ("order_triggered", 30_500.0)
        assert summary(trade) == ("strategy_trade", "FILLED", 0.01, 30_500.0)
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_a_replace_moves_the_stop_on_the_venue(exchange: LoopbackExchange) -> None:
    async with (
        running_daemon(config_for(exchange, STOP_BUYER)) as daemon,
        daemon.client() as client,
    ):
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        execution = daemon.daemon.core.execution
        assert execution.replace_order("buyer", order_id, stop_price=30_600.0)
        await eventually(
            exchange,
            lambda: [o.client_order_id for o in exchange.open_orders()] == [f"orc-{order_id}.1"],
        )
        [moved] = exchange.open_orders()
        assert (moved.type, moved.stop_price, moved.price) == (
            "STOP_LOSS_LIMIT",
            30_600.0,
            30_450.0,
        )
        assert exchange.orders[order.order_id].status == "CANCELED"
        exchange.set_price(SYMBOL, 30_400.0)  # through the old stop: nothing now
        assert moved.waiting


@pytest.mark.parametrize(
    ("limit_offset", "sent", "filled"),
    [(0.005, ("LIMIT", 29_850.0), False), (None, ("MARKET", 0.0), True)],
    ids=["stop-limit", "stop"],
)
async def test_a_stop_the_venue_price_has_reached_goes_as_what_it_becomes(
    exchange: LoopbackExchange,
    limit_offset: float | None,
    sent: tuple[str, float],
    filled: bool,
) -> None:
    """A stop buy below the market triggers at the next price in the pipeline; Binance
    refuses it ("Order would trigger immediately"): it goes as the limit or market order
    it becomes there, under the same client order id."""
    params = {"stops": [-0.01], "limit_offset": limit_offset}
    async with (
        running_daemon(config_for(exchange, STOP_BUYER, params)) as daemon,
        daemon.client() as client,
    ):
        await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
        await first_bar(daemon)
        [accepted] = await order_events(client, 1)
        order_id = accepted["data"]["orderId"]
        await eventually(exchange, lambda: exchange.submissions == 2 and exchange.orders)
        [order] = exchange.orders.values()
        assert order.client_order_id == f"orc-{order_id}"
        assert (order.type, order.price) == sent
        if filled:
            triggered, trade = await order_events(client, 2)
            assert summary(trade) == ("strategy_trade", "FILLED", 0.01, 30_000.0)
        else:
            [resting] = daemon.daemon.core.execution.open_orders("buyer")
            assert resting.id == order_id and order.is_open
            exchange.set_price(SYMBOL, 29_800.0)  # the limit it became fills
            triggered, trade = await order_events(client, 2)
            assert summary(trade) == ("strategy_trade", "FILLED", 0.01, 29_850.0)
        assert summary(triggered) == ("order_triggered", trade["data"]["entryPrice"])


async def test_cancel_order_cancels_a_stop_on_the_venue(exchange: LoopbackExchange) -> None:
    async with running_daemon(config_for(exchange, STOP_BUYER)) as daemon:
        async with daemon.client() as client:
            order = await resting_on_venue(daemon, client, exchange)
            order_id = order.client_order_id.removeprefix("orc-")
            reply = await client.request({"type": "cancel_order", "orderId": order_id})
            assert reply["type"] == "order_cancelled"
            assert exchange.orders[order.order_id].status == "CANCELED"
            trade = (await client.recv_type("strategy_trade"))["data"]
            assert (trade["orderId"], trade["status"]) == (order_id, "REJECTED")
        exchange.set_price(SYMBOL, 30_500.0)
        assert exchange.position("BTC") == 0.0
        assert daemon.daemon.core.execution.open_orders("buyer") == []


async def test_the_kill_switch_cancels_a_stop_entry_on_the_venue(
    exchange: LoopbackExchange,
) -> None:
    async with running_daemon(config_for(exchange, STOP_BUYER)) as daemon:
        async with daemon.client() as client:
            order = await resting_on_venue(daemon, client, exchange)
            async with daemon.client("risk") as risk:
                await risk.send({"type": "halt_trading", "reason": "test"})
                cancelled = (await client.recv_type("order_cancelled"))["data"]
            assert cancelled["orderId"] == order.client_order_id.removeprefix("orc-")
            assert "trading is halted" in cancelled["reason"]
        assert exchange.open_orders() == []
        assert exchange.orders[order.order_id].status == "CANCELED"
        assert daemon.daemon.core.execution.open_orders("buyer") == []


async def test_a_restart_keeps_the_stop_still_resting_and_settles_the_one_filled_while_down(
    exchange: LoopbackExchange,
) -> None:
    config = config_for(exchange, STOP_BUYER, {"stops": [0.01, 0.03]})
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
        await first_bar(daemon)
        accepted = await order_events(client, 2)
        near, far = (message["data"]["orderId"] for message in accepted)
        await eventually(exchange, lambda: len(exchange.open_orders()) == 2)
    exchange.set_price(SYMBOL, 30_350.0)  # the near stop triggers and fills while down
    assert [o.client_order_id for o in exchange.open_orders()] == [f"orc-{far}"]
    async with running_daemon(config) as daemon, daemon.client() as client:
        triggered, trade = await order_events(client, 2)
        assert (triggered["data"]["orderId"], trade["data"]["orderId"]) == (near, near)
        assert summary(trade) == ("strategy_trade", "FILLED", 0.01, 30_450.0)
        [resting] = daemon.daemon.core.execution.open_orders("buyer")
        assert (resting.id, resting.order_type, resting.stop_price) == (
            far,
            OrderType.STOP_LIMIT,
            30_900.0,
        )
        assert [o.client_order_id for o in exchange.open_orders()] == [f"orc-{far}"]
        exchange.set_price(SYMBOL, 30_950.0)  # the far one, followed on the venue again
        triggered, trade = await order_events(client, 2)
        assert (trade["data"]["orderId"], summary(trade)) == (
            far,
            ("strategy_trade", "FILLED", 0.01, 31_050.0),
        )
        journal = await daemon.committed_journal()
        fills = journal.fills("buyer")
        assert sorted(f.order_id for f in fills) == sorted([near, far])
    async with running_daemon(config) as daemon:
        assert daemon.daemon.core.execution.open_orders("buyer") == []
        journal = await daemon.committed_journal()
        assert len(journal.fills("buyer")) == 2  # nothing settled twice
    assert exchange.submissions == 2 and len(exchange.orders) == 2
    assert exchange.position("BTC") == pytest.approx(0.02)


async def test_a_protective_stop_on_the_venue_sells_while_the_daemon_is_down(
    exchange: LoopbackExchange,
) -> None:
    config = config_for(exchange, PROTECTED_LONG)
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
        await first_bar(daemon)  # a market buy of 0.01
        bought = (await client.recv_type("strategy_trade"))["data"]
        assert (bought["side"], bought["status"]) == ("BUY", "FILLED")
        daemon.advance(1.0)
        daemon.tick(SYMBOL, 30_000.0)  # the next bar: its stop sell, 29,700 / 29,550
        accepted = (await client.recv_type("order_accepted"))["data"]
        assert (accepted["side"], accepted["stopPrice"]) == ("SELL", 29_700.0)
        await eventually(exchange, lambda: exchange.open_orders())
        [stop] = exchange.open_orders()
        assert (stop.type, stop.side, stop.stop_price, stop.price) == (
            "STOP_LOSS_LIMIT",
            "SELL",
            29_700.0,
            29_550.0,
        )
        assert exchange.balances["BTC"][1] == pytest.approx(0.01)  # locked by the stop
    exchange.set_price(SYMBOL, 29_650.0)  # the daemon is down: the venue sells
    assert exchange.position("BTC") == pytest.approx(0.0)
    async with running_daemon(config) as daemon, daemon.client() as client:
        triggered, sold = await order_events(client, 2)
        assert triggered["data"]["orderId"] == accepted["orderId"]
        assert summary(sold) == ("strategy_trade", "FILLED", 0.01, 29_550.0)
        assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == 0.0
        journal = await daemon.committed_journal()
        assert journal.rebuild_book().quantity("buyer", SYMBOL) == 0.0


@pytest.mark.parametrize(
    ("order_types", "limit_offset", "sent"),
    [
        (("LIMIT", "MARKET"), 0.005, ("LIMIT", "IOC", 30_450.0)),
        (("LIMIT", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"), None, ("MARKET", "GTC", 0.0)),
    ],
    ids=["stop-limit without STOP_LOSS_LIMIT", "stop without STOP_LOSS"],
)
async def test_a_market_that_does_not_list_the_type_keeps_the_stop_in_the_daemon(
    order_types: tuple[str, ...], limit_offset: float | None, sent: tuple[str, str, float]
) -> None:
    market = LoopbackMarket("BTC", "USDT", 30_000.0, order_types=order_types)
    async with LoopbackExchange(KEY, SECRET, [market], {"USDT": 100_000.0}, seed=5) as venue:
        config = config_for(venue, STOP_BUYER, {"limit_offset": limit_offset})
        async with running_daemon(config) as daemon, daemon.client() as client:
            await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
            await first_bar(daemon)
            await order_events(client, 1)
            [emulated] = daemon.daemon.core.execution.open_orders("buyer")
            assert emulated.stop_price == 30_300.0
            assert venue.submissions == 0  # it rests in the daemon
            venue.set_price(SYMBOL, 30_400.0)  # the venue's price does not trigger it
            daemon.tick(SYMBOL, 30_350.0)  # the daemon's feed does
            triggered, trade = await order_events(client, 2)
            assert triggered["type"] == "order_triggered"
            assert (trade["data"]["status"], trade["data"]["quantity"]) == ("FILLED", 0.01)
        [order] = venue.orders.values()
        assert (order.type, order.time_in_force, order.price) == sent


async def test_a_venue_unreachable_at_restart_leaves_no_stop_unfollowed_on_it(
    exchange: LoopbackExchange,
) -> None:
    """Restarted while the venue cannot be reached, the live strategy is not restored
    (realTrading needs the venue) and its stop is cancelled, in the journal at once and
    on the venue once it answers (an orphan): no stop rests there that nothing follows,
    and the daemon's feed does not trigger it either."""
    config = config_for(exchange, STOP_BUYER)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
    await exchange.go_down()
    async with running_daemon(config) as daemon:
        restored_in_error(daemon)
        daemon.tick(SYMBOL, 30_350.0)
        await exchange.come_back()
        broker = daemon.daemon.venues["main"]
        await eventually(exchange, lambda: broker.state.connected, timeout=60.0)
        await late_start_pass_cancels_the_orphan(daemon)
    assert exchange.orders[order.order_id].status == "CANCELED"
    exchange.set_price(SYMBOL, 30_350.0)
    assert exchange.submissions == 1 and exchange.position("BTC") == 0.0
