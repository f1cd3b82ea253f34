"""Resting orders on 8082, through a real daemon and a real client: the lifecycle
messages, get_open_orders and cancel_order, and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateways.test_strategy_runtime import config_with, next_second
from tests.support import Client, TestDaemon, running_daemon

ORDER_FIELDS = {
    "orderId",
    "strategyId",
    "symbol",
    "side",
    "quantity",
    "orderType",
    "limitPrice",
    "stopPrice",
    "timeInForce",
    "purpose",
    "parentId",
    "stopLoss",
    "takeProfit",
    "trailing",
    "placedAt",
}


def bracket_config() -> Any:
    return config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
        {"id": "other", "kind": "tests.scripted_strategies:BuyThenHold", "symbols": ["MSFT"]},
    )


async def rest_a_limit(daemon: TestDaemon, client: Client) -> dict[str, Any]:
    """Start ``rest``; its first bar rests a limit buy of 10 at 99 (a 94.05 / 100.98
    bracket). Returns the order_accepted message."""
    await client.request({"type": "start_strategy", "id": "rest"})
    daemon.tick("AAPL", 100.0)
    await next_second(daemon, {"AAPL": 100.0})
    return await client.recv_type("order_accepted")


async def test_a_bracket_is_told_accepted_triggered_armed_and_cancelled_by_its_target() -> None:
    async with running_daemon(bracket_config()) as daemon, daemon.client() as client:
        accepted = await rest_a_limit(daemon, client)
        entry = accepted["data"]
        assert set(entry) == ORDER_FIELDS | {"timestamp"}
        assert {k: entry[k] for k in ("side", "quantity", "orderType", "limitPrice")} == {
            "side": "BUY",
            "quantity": 10.0,
            "orderType": "LIMIT",
            "limitPrice": 99.0,
        }
        assert (entry["stopLoss"], entry["takeProfit"], entry["timeInForce"]) == (
            94.05,
            100.98,
            "GTC",
        )
        assert entry["strategyId"] == "rest" and entry["purpose"] == "signal"
        daemon.tick("AAPL", 98.5)
        triggered = (await client.recv_type("order_triggered"))["data"]
        assert (triggered["orderId"], triggered["triggerPrice"]) == (entry["orderId"], 98.5)
        stop = (await client.recv_type("order_accepted"))["data"]
        target = (await client.recv_type("order_accepted"))["data"]
        assert (stop["purpose"], stop["orderType"], stop["stopPrice"]) == (
            "stop_loss",
            "STOP",
            94.05,
        )
        assert (target["purpose"], target["orderType"], target["limitPrice"]) == (
            "take_profit",
            "LIMIT",
            100.98,
        )
        assert stop["parentId"] == target["parentId"] == entry["orderId"]
        assert stop["side"] == target["side"] == "SELL"
        daemon.tick("AAPL", 101.5)
        fired = (await client.recv_type("order_triggered"))["data"]
        assert fired["orderId"] == target["orderId"]
        cancelled = (await client.recv_type("order_cancelled"))["data"]
        assert cancelled["orderId"] == stop["orderId"]
        assert cancelled["reason"] == "the other exit of its bracket filled"
        # strategy_trade is as the seed defines it: the entry's and the target's fills.
        reply = await client.request({"type": "get_open_orders"})
        assert reply["type"] == "open_orders" and reply["data"]["orders"] == []


async def test_get_open_orders_lists_every_resting_order_or_one_strategys() -> None:
    async with running_daemon(bracket_config()) as daemon, daemon.client() as client:
        entry = (await rest_a_limit(daemon, client))["data"]
        everything = await client.request({"type": "get_open_orders"})
        assert everything["type"] == "open_orders"
        assert everything["data"]["strategyId"] is None
        [listed] = everything["data"]["orders"]
        # As order_accepted showed it, with what its parts filled (none: partial fills off).
        assert listed == {k: v for k, v in entry.items() if k != "timestamp"} | {"filled": 0.0}
        mine = await client.request({"type": "get_open_orders", "strategyId": "rest"})
        assert [o["orderId"] for o in mine["data"]["orders"]] == [entry["orderId"]]
        theirs = await client.request({"type": "get_open_orders", "strategyId": "other"})
        assert theirs["data"] == {"strategyId": "other", "orders": []}
        unknown = await client.request({"type": "get_open_orders", "strategyId": "nope"})
        assert unknown["type"] == "error"
        assert unknown["data"]["code"] == "unknown_strategy"
        assert unknown["data"]["requestType"] == "get_open_orders"


async def test_cancel_order_answers_order_cancelled_to_the_requester_and_everyone() -> None:
    async with (
        running_daemon(bracket_config()) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        entry = (await rest_a_limit(daemon, client))["data"]
        reply = await client.request({"type": "cancel_order", "orderId": entry["orderId"]})
        assert reply["type"] == "order_cancelled"
        assert reply["data"]["orderId"] == entry["orderId"]
        assert reply["data"]["reason"] == "cancelled by a cancel_order command"
        told = await watcher.recv_type("order_cancelled")
        assert told["data"]["orderId"] == entry["orderId"] and "requestId" not in told
        # The cancellation is settled as a REJECTED trade, as the strategy's own are.
        trade = (await watcher.recv_type("strategy_trade"))["data"]
        assert (trade["orderId"], trade["status"]) == (entry["orderId"], "REJECTED")
        listed = await client.request({"type": "get_open_orders"})
        # Nothing rests; the strategy places its next limit on the next bar only.
        assert listed["data"]["orders"] == []
        again = await client.request({"type": "cancel_order", "orderId": entry["orderId"]})
        assert again["type"] == "error"
        assert again["data"]["code"] == "order_not_found"
        assert entry["orderId"] in again["data"]["message"]


async def test_cancelling_a_filled_entry_cancels_its_exits_and_an_exit_alone_is_allowed() -> None:
    async with running_daemon(bracket_config()) as daemon, daemon.client() as client:
        entry = (await rest_a_limit(daemon, client))["data"]
        daemon.tick("AAPL", 98.5)
        stop = (await client.recv_type("order_accepted"))["data"]
        target = (await client.recv_type("order_accepted"))["data"]
        # A protective exit cancelled by hand: allowed, its sibling rests on.
        reply = await client.request({"type": "cancel_order", "orderId": target["orderId"]})
        assert (reply["type"], reply["data"]["orderId"]) == ("order_cancelled", target["orderId"])
        listed = await client.request({"type": "get_open_orders", "strategyId": "rest"})
        assert [o["orderId"] for o in listed["data"]["orders"]] == [stop["orderId"]]
        # The entry's id cancels what its fill armed.
        reply = await client.request({"type": "cancel_order", "orderId": entry["orderId"]})
        assert (reply["type"], reply["data"]["orderId"]) == ("order_cancelled", stop["orderId"])
        listed = await client.request({"type": "get_open_orders"})
        assert listed["data"]["orders"] == []
        status = await client.request({"type": "get_active_strategies"})
        rest = next(s for s in status["data"] if s["id"] == "rest")
        assert rest["positions"][0]["quantity"] == 10.0  # the position stays, unguarded


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "cancel_order"}, "field 'orderId' is required"),
        ({"type": "cancel_order", "orderId": ""}, "orderId"),
        ({"type": "cancel_order", "orderId": 7}, "orderId"),
        ({"type": "cancel_order", "orderId": "a\x1b[2J"}, "control character"),
        ({"type": "get_open_orders", "strategyId": 3}, "strategyId"),
        ({"type": "get_open_orders", "symbol": "AAPL"}, "field 'symbol' is not allowed"),
    ],
)
async def test_bad_order_commands_get_invalid_message_and_the_connection_stays(
    message: dict[str, Any], problem: str
) -> None:
    async with running_daemon(bracket_config()) as daemon, daemon.client() as client:
        reply = await client.request(message)
        assert reply["type"] == "error"
        assert reply["data"]["code"] == "invalid_message"
        assert problem in reply["data"]["message"]
        assert reply["data"]["requestType"] == message["type"]
        alive = await client.request({"type": "get_open_orders"})
        assert alive["type"] == "open_orders"


async def test_order_commands_are_the_orchestrator_servers() -> None:
    async with running_daemon(bracket_config()) as daemon, daemon.client("risk") as risk:
        reply = await risk.request({"type": "get_open_orders"})
        assert reply["type"] == "error" and reply["data"]["code"] == "unknown_type"
