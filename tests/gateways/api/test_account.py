"""The three P&L figures and the account on the wire, through a real daemon.

``realizedPnlToday`` (fills since 00:00 UTC of the daemon's clock),
``realizedPnlSinceStart`` (every journaled fill of the strategy) and
``unrealizedPnl`` (open positions at the last price), on the strategy entries,
the risk status and ``get_account``: checked across a stop, a restart of the
daemon on the same journal, and midnight. Fills are exact: no slippage, no
commission, prices pushed by the test on a ManualClock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateways.config import DaemonConfig
from tests.support import START, Client, TestDaemon, running_daemon, test_config

MIDNIGHT = (START // 86_400 + 1) * 86_400
"""The first 00:00 UTC after the test daemon's start (22:13 UTC)."""


def holders_config(state_dir: Path) -> DaemonConfig:
    """Two strategies that buy 10 units on their first bar and hold, on one journal."""
    strategies = [
        {
            "id": strategy_id,
            "name": f"Hold {symbol}",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "defaults": {"symbols": [symbol], "data_resolution": "1s"},
        }
        for strategy_id, symbol in (("holder", "AAPL"), ("other", "MSFT"))
    ]
    return test_config(
        strategies=strategies,
        broker={"slippage_bps": 0.0, "initial_cash": 10_000.0},
        journal={"state_dir": str(state_dir), "synchronous": "NORMAL"},
    )


async def pnl_by_strategy(client: Client) -> dict[str, tuple[float, float, float]]:
    reply = await client.request({"type": "get_strategies"})
    return {
        e["id"]: (e["realizedPnlToday"], e["realizedPnlSinceStart"], e["unrealizedPnl"])
        for e in reply["data"]
    }


async def account(client: Client) -> dict[str, Any]:
    reply = await client.request({"type": "get_account"})
    assert reply["type"] == "account"
    data: dict[str, Any] = reply["data"]
    return data


async def stop_and_close(test: TestDaemon, client: Client, strategy_id: str, price: float) -> None:
    """stop_strategy closes at market: its order fills on the symbol's next tick."""
    stopping = asyncio.create_task(client.request({"type": "stop_strategy", "id": strategy_id}))
    async with asyncio.timeout(5.0):
        while not stopping.done():
            test.tick("AAPL", price)
            await asyncio.sleep(0.01)
    assert stopping.result()["type"] == "strategy_stopped"


async def test_pnl_is_kept_after_a_stop_across_a_restart_and_resets_at_midnight(
    tmp_path: Path,
) -> None:
    config = holders_config(tmp_path / "state")
    async with running_daemon(config) as test, test.client() as client:
        for strategy_id in ("holder", "other"):
            await client.request({"type": "start_strategy", "id": strategy_id})
        for symbol, price in (("AAPL", 100.0), ("MSFT", 200.0)):
            test.tick(symbol, price)
        test.advance(1.0)  # the bars close: each holder buys 10
        test.tick("AAPL", 100.0)
        test.tick("MSFT", 200.0)
        test.tick("AAPL", 95.0)
        test.tick("MSFT", 205.0)
        assert await pnl_by_strategy(client) == {
            "holder": (0.0, 0.0, -50.0),
            "other": (0.0, 0.0, 50.0),
        }
        before = await account(client)
        assert before == {
            "equity": 10_000.0,  # -50 + 50
            "cash": 7_000.0,  # 1,000 for AAPL, 2,000 for MSFT
            "exposure": 3_000.0,  # 950 + 2,050
            "realizedPnlToday": 0.0,
            "realizedPnlSinceStart": 0.0,
            "unrealizedPnl": 0.0,
        }

        await stop_and_close(test, client, "holder", 95.0)
        # The stopped strategy's loss is realized and stays in every total.
        assert await pnl_by_strategy(client) == {
            "holder": (-50.0, -50.0, 0.0),
            "other": (0.0, 0.0, 50.0),
        }
        after = await account(client)
        assert after["equity"] == before["equity"]  # closing at the mark moves no equity
        assert (after["realizedPnlToday"], after["realizedPnlSinceStart"]) == (-50.0, -50.0)
        assert (after["cash"], after["exposure"]) == (7_950.0, 2_050.0)
        async with test.client("risk") as risk:
            status = (await risk.request({"type": "get_risk_status"}))["data"]
        assert status["account"] == after
        held = {s["strategyId"]: s for s in status["strategies"]}
        assert held["holder"]["status"] == "STOPPED"
        assert held["holder"]["realizedPnlSinceStart"] == held["holder"]["realizedPnl"] == -50.0

    # The same day, after a restart: every figure from the journal.
    async with running_daemon(config) as test, test.client() as client:
        test.clock.set(START + 60)
        figures = await pnl_by_strategy(client)
        assert figures["holder"] == (-50.0, -50.0, 0.0)
        assert figures["other"][:2] == (0.0, 0.0)
        restored = await account(client)
        assert (restored["realizedPnlToday"], restored["realizedPnlSinceStart"]) == (-50.0, -50.0)
        assert restored["cash"] == 7_950.0

        # Past 00:00 UTC nothing is realized today; since start still holds the loss.
        test.clock.set(MIDNIGHT + 1)
        assert (await pnl_by_strategy(client))["holder"] == (0.0, -50.0, 0.0)
        tomorrow = await account(client)
        assert (tomorrow["realizedPnlToday"], tomorrow["realizedPnlSinceStart"]) == (0.0, -50.0)


@pytest.mark.parametrize("server", ["orchestrator", "market_data", "risk"])
async def test_every_server_answers_get_account(server: str, tmp_path: Path) -> None:
    async with running_daemon(holders_config(tmp_path)) as test, test.client(server) as client:
        reply = await client.request({"type": "get_account"})
        assert reply["type"] == "account"
        assert reply["data"] == {
            "equity": 10_000.0,
            "cash": 10_000.0,
            "exposure": 0.0,
            "realizedPnlToday": 0.0,
            "realizedPnlSinceStart": 0.0,
            "unrealizedPnl": 0.0,
        }
