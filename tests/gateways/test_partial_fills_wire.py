"""Partial fills on 8082 (docs/orders.md#partial-fills), through a real daemon with
``broker.partial_fills`` on and a real client: a resting limit buy of 10 fills in two
parts, each its own strategy_trade; the first says it is partial and what is left, the
order_partially_filled between them and get_open_orders show the rest resting, and
the bracket's exits arm for the first part and grow with the second."""

from __future__ import annotations

from typing import Any

from tests.gateways.api.test_order_commands import rest_a_limit
from tests.gateways.test_strategy_runtime import config_with
from tests.support import running_daemon


def partial_config() -> Any:
    return config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
        broker={"partial_fills": True, "slippage_bps": 0.0},
    )


async def test_a_limit_order_fills_in_two_parts_on_the_wire() -> None:
    async with running_daemon(partial_config()) as daemon, daemon.client() as client:
        entry = (await rest_a_limit(daemon, client))["data"]
        daemon.tick("AAPL", 98.5, size=4.0)
        first = (await client.recv_type("strategy_trade"))["data"]
        assert (first["orderId"], first["quantity"], first["entryPrice"]) == (
            entry["orderId"],
            4.0,
            98.5,
        )
        assert (first["status"], first["partial"], first["remainingQuantity"]) == (
            "FILLED",
            True,
            6.0,
        )
        armed = [(await client.recv_type("order_accepted"))["data"] for _ in range(2)]
        assert sorted((a["purpose"], a["quantity"]) for a in armed) == [
            ("stop_loss", 4.0),
            ("take_profit", 4.0),
        ]
        part = (await client.recv_type("order_partially_filled"))["data"]
        assert (part["orderId"], part["quantity"], part["filledQuantity"], part["fillPrice"]) == (
            entry["orderId"],
            6.0,
            4.0,
            98.5,
        )
        listed = (await client.request({"type": "get_open_orders", "strategyId": "rest"}))["data"]
        by_id = {o["orderId"]: (o["quantity"], o["filled"]) for o in listed["orders"]}
        assert by_id[entry["orderId"]] == (6.0, 4.0) and len(by_id) == 3  # 6 rest, 4 filled
        assert sorted(by_id.values()) == [(4.0, 0.0), (4.0, 0.0), (6.0, 4.0)]

        daemon.tick("AAPL", 98.7, size=10.0)
        second = (await client.recv_type("strategy_trade"))["data"]
        assert (second["orderId"], second["quantity"], second["entryPrice"]) == (
            entry["orderId"],
            6.0,
            98.7,
        )
        assert second["status"] == "FILLED" and "partial" not in second
        assert second["positionQuantity"] == 10.0
        grown = [(await client.recv_type("order_replaced"))["data"] for _ in range(2)]
        assert sorted((g["purpose"], g["previous"]["quantity"], g["quantity"]) for g in grown) == [
            ("stop_loss", 4.0, 10.0),
            ("take_profit", 4.0, 10.0),
        ]
        listed = (await client.request({"type": "get_open_orders", "strategyId": "rest"}))["data"]
        assert sorted((o["purpose"], o["quantity"], o["filled"]) for o in listed["orders"]) == [
            ("stop_loss", 10.0, 0.0),
            ("take_profit", 10.0, 0.0),
        ]
