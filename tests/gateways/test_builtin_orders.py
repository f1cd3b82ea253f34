"""The built-in Bollinger breakout with its order options, live: started over 8082
from a catalog entry with ``entry = "stop"`` and a bracket, on a daemon whose prices
the test prints. Its breakout stop rests at the upper band with the bracket it will
arm (``order_accepted``), follows the band when it moves, and the price through it
fills the entry and arms the stop-loss and the take-profit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateways.test_strategy_runtime import config_with
from tests.support import Client, TestDaemon, running_daemon

BOLLINGER = {
    "id": "bands",
    "kind": "bollinger_breakout",
    "symbols": ["AAPL"],
    "params": {"period": 5, "entry": "stop", "stop_loss_pct": 0.02, "take_profit_pct": 0.04},
}


def bar(test: TestDaemon, close: float) -> None:
    test.tick("AAPL", close)
    test.advance(1.0)


async def upper_band(client: Client) -> float:
    upper: float = (await client.recv_type("strategy_indicators"))["data"]["values"]["upper"]
    return upper


async def test_a_breakout_stop_with_its_bracket_rests_follows_the_band_and_fills() -> None:
    async with running_daemon(config_with(BOLLINGER)) as test, test.client() as client:
        await client.request({"type": "start_strategy", "id": "bands"})
        for close in (100.0, 101.0, 100.0, 101.0):
            bar(test, close)
        bar(test, 101.0)  # the bands are ready (the first lines); the close is above the middle
        entry = (await client.recv_type("order_accepted"))["data"]
        upper = await upper_band(client)  # the bar's lines follow its orders
        assert (entry["orderType"], entry["side"], entry["purpose"]) == ("STOP", "BUY", "signal")
        assert entry["stopPrice"] == upper
        assert entry["stopLoss"] == pytest.approx(upper * 0.98)
        assert entry["takeProfit"] == pytest.approx(upper * 1.04)
        assert entry["quantity"] > 0  # sized by the runtime at the stop

        bar(test, 101.2)  # the band moves: the stop is placed again at the new band
        cancelled = (await client.recv_type("order_cancelled"))["data"]
        assert cancelled["orderId"] == entry["orderId"]
        moved = (await client.recv_type("order_accepted"))["data"]
        upper = await upper_band(client)
        assert moved["stopPrice"] == upper != entry["stopPrice"]
        listed = await client.request({"type": "get_open_orders", "strategyId": "bands"})
        assert [o["orderId"] for o in listed["data"]["orders"]] == [moved["orderId"]]

        test.tick("AAPL", upper + 1.0)  # through the band: the entry fills, its bracket arms
        triggered: dict[str, Any] = (await client.recv_type("order_triggered"))["data"]
        assert triggered["orderId"] == moved["orderId"]
        filled = (await client.recv_type("strategy_trade"))["data"]
        assert (filled["orderId"], filled["status"], filled["side"]) == (
            moved["orderId"],
            "FILLED",
            "BUY",
        )
        exits = [(await client.recv_type("order_accepted"))["data"] for _ in range(2)]
        assert {(e["purpose"], e["orderType"]) for e in exits} == {
            ("stop_loss", "STOP"),
            ("take_profit", "LIMIT"),
        }
        by_purpose = {e["purpose"]: e for e in exits}
        assert by_purpose["stop_loss"]["stopPrice"] == moved["stopLoss"]
        assert by_purpose["take_profit"]["limitPrice"] == moved["takeProfit"]
        assert {e["parentId"] for e in exits} == {moved["orderId"]}
        assert {e["quantity"] for e in exits} == {filled["quantity"]}
