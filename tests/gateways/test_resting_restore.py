"""Resting orders over restarts of the daemon on one journal: a restored entry fills
once and arms its bracket, the restored exits fill once; a strategy that does not run
after the restart has its resting orders cancelled. (A kill -9 in the middle of
trading: tests/test_resting_restart.py.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from gateways.daemon import NOT_RESTORED
from orchestrator.journal.store import Journal, journal_path
from tests.gateways.test_strategy_runtime import config_with, next_second
from tests.support import running_daemon

REST = {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]}
OTHER = {"id": "other", "kind": "tests.scripted_strategies:BuyThenHold", "symbols": ["MSFT"]}


def journaled(tmp_path: Path, *entries: dict[str, Any]) -> Any:
    return config_with(*entries, journal={"state_dir": str(tmp_path), "synchronous": "NORMAL"})


async def test_a_restored_entry_fills_once_arms_its_bracket_and_its_exit_fills_once(
    tmp_path: Path,
) -> None:
    config = journaled(tmp_path, REST)
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})
        entry = (await client.recv_type("order_accepted"))["data"]

    async with running_daemon(config) as daemon, daemon.client() as client:
        listed = await client.request({"type": "get_open_orders"})
        assert [o["orderId"] for o in listed["data"]["orders"]] == [entry["orderId"]]
        restored = {k: v for k, v in entry.items() if k != "timestamp"} | {"filled": 0.0}
        assert listed["data"]["orders"][0] == restored
        # Through the restored limit, at the first price since the restart: the risk
        # check at its trigger values it at this price (the book has no other yet).
        daemon.tick("AAPL", 98.5)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["orderId"], trade["status"], trade["quantity"]) == (
            entry["orderId"],
            "FILLED",
            10.0,
        )
        stop = (await client.recv_type("order_accepted"))["data"]
        target = (await client.recv_type("order_accepted"))["data"]
        assert stop["parentId"] == target["parentId"] == entry["orderId"]
        assert (stop["stopPrice"], target["limitPrice"]) == (94.05, 100.98)

    async with running_daemon(config) as daemon, daemon.client() as client:
        listed = await client.request({"type": "get_open_orders", "strategyId": "rest"})
        assert [o["orderId"] for o in listed["data"]["orders"]] == [
            stop["orderId"],
            target["orderId"],
        ]
        daemon.tick("AAPL", 101.5)  # the restored target fills; its stop is cancelled
        sold = (await client.recv_type("strategy_trade"))["data"]
        assert (sold["orderId"], sold["side"], sold["status"]) == (
            target["orderId"],
            "SELL",
            "FILLED",
        )
        cancelled = (await client.recv_type("order_cancelled"))["data"]
        assert cancelled["orderId"] == stop["orderId"]
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"][0]["positions"] == []

    with Journal.open_readonly(journal_path(config.journal)) as journal:
        filled = Counter(f.order_id for f in journal.fills() if f.status.value == "FILLED")
        assert filled == {entry["orderId"]: 1, target["orderId"]: 1}
        assert journal.resting_orders() == []


async def test_the_resting_orders_of_a_strategy_not_restored_are_cancelled(
    tmp_path: Path,
) -> None:
    async with (
        running_daemon(journaled(tmp_path, REST, OTHER)) as daemon,
        daemon.client() as client,
    ):
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})
        entry = (await client.recv_type("order_accepted"))["data"]

    config = journaled(tmp_path, OTHER)  # "rest" is gone from the catalog
    async with running_daemon(config) as daemon, daemon.client() as client:
        listed = await client.request({"type": "get_open_orders"})
        assert listed["data"]["orders"] == []
        daemon.tick("AAPL", 98.5)  # nothing rests to fill
        assert daemon.daemon.core.execution.open_orders("rest") == []

    with Journal.open_readonly(journal_path(config.journal)) as journal:
        [fill] = [f for f in journal.fills() if f.order_id == entry["orderId"]]
        assert (fill.status.value, fill.reason) == ("REJECTED", NOT_RESTORED)
        assert journal.resting_orders() == []
