"""The risk guardian on 3002 through real servers: status, kill switch, risk events.

Every message is checked field for field. Fills are exact: the paper broker runs
without slippage, and prices are pushed by the test on a ManualClock.
"""

from __future__ import annotations

from typing import Any

from orchestrator.model.clock import iso_utc
from orchestrator.model.orders import Order, Side
from orchestrator.strategy.config import StrategyRunConfig
from tests.support import START, Client, TestDaemon, running_daemon, test_config

ENVELOPE = {"type", "timestamp", "data"}
ORDER_KEYS = {"orderId", "strategyId", "symbol", "side", "quantity", "purpose"}
NO_SLIPPAGE = {"slippage_bps": 0.0}
DAY_START = iso_utc(START // 86_400 * 86_400)


STREAM_FIELDS = {"seq", "epoch", "snapshot", "position"}
"""Additive envelope fields of the resumable stream, not part of these messages' shape."""


def exact(message: dict[str, Any], kind: str, request_id: str | None = None) -> Any:
    """Assert the envelope (with ``requestId`` only when given) and return the data."""
    keys = set(message) - STREAM_FIELDS
    assert keys == ENVELOPE | ({"requestId"} if request_id else set()), message
    assert message["type"] == kind, message
    if request_id:
        assert message["requestId"] == request_id
    return message["data"]


def scripted(**defaults: Any) -> list[dict[str, Any]]:
    """One strategy that buys 10 units of each symbol on its first bar, then holds."""
    return [
        {
            "id": "holder",
            "name": "Buy and hold",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "defaults": {"symbols": ["AAPL"], "data_resolution": "1s", **defaults},
        }
    ]


def submit(daemon: TestDaemon, side: Side, quantity: float, **limits: Any) -> Order:
    """Send an order straight into the execution service, as a strategy would."""
    execution = daemon.daemon.core.execution
    order = Order(execution.new_order_id(), "manual", "AAPL", side, quantity, daemon.clock.now())
    run = StrategyRunConfig(symbols=("AAPL",), **{"stop_loss_percentage": 0.0, **limits})
    execution.submit(order, run)
    return order


async def buy_on_first_bar(daemon: TestDaemon, price: float = 100.0) -> None:
    """Let ``holder`` see its first bar and buy 10 AAPL, filled at ``price``."""
    daemon.tick("AAPL", price)
    daemon.advance(1.0)  # the bar closes: holder buys
    daemon.tick("AAPL", price)  # the buy fills


# ---------------------------------------------------------------- status


async def test_get_risk_status_reports_limits_and_usage() -> None:
    config = test_config(strategies=scripted(stop_loss_percentage=0.05), broker=NO_SLIPPAGE)
    async with running_daemon(config) as daemon, daemon.client("risk") as client:
        started = await client.request({"type": "start_strategy", "id": "holder"})
        assert started["type"] == "strategy_started"
        await buy_on_first_bar(daemon)
        daemon.tick("AAPL", 110.0)
        reply = await client.request({"type": "get_risk_status", "requestId": "r1"})
        data = exact(reply, "risk_status", reply["requestId"])
        assert data == {
            "executionStatus": "RUNNING",
            "killSwitch": {
                "engaged": False,
                "reason": None,
                "blockAll": False,
                "source": None,
                "since": None,
            },
            "limits": {
                "maxGrossExposure": 100_000.0,
                "maxOrdersPerSecond": 50,
                "maxDailyLoss": 5_000.0,
                "positionLimitMode": "reject",
            },
            "usage": {
                "grossExposure": 1_100.0,
                "ordersLastSecond": 1,  # the buy, sent at this very second
                "dailyPnl": 100.0,
                "dailyLoss": 0.0,
                "dayStart": DAY_START,
            },
            # 100,000 of starting cash, 1,000 paid for the 10 AAPL now worth 1,100.
            "account": {
                "equity": 100_100.0,
                "cash": 99_000.0,
                "exposure": 1_100.0,
                "realizedPnlToday": 0.0,
                "realizedPnlSinceStart": 0.0,
                "unrealizedPnl": 100.0,
            },
            "strategies": [
                {
                    "strategyId": "holder",
                    "status": "ACTIVE",
                    "limits": {
                        "maxPositionValue": 10_000.0,
                        "maxOrdersPerMinute": 5,
                        "stopLossPercentage": 0.05,
                    },
                    "exposure": 1_100.0,
                    "ordersLastMinute": 1,
                    "realizedPnl": 0.0,
                    "realizedPnlToday": 0.0,
                    "realizedPnlSinceStart": 0.0,
                    "unrealizedPnl": 100.0,
                    "positions": [
                        {
                            "symbol": "AAPL",
                            "quantity": 10.0,
                            "entryPrice": 100.0,
                            "currentValue": 1_100.0,
                            "stopPrice": 95.0,
                        }
                    ],
                }
            ],
        }


async def test_the_risk_server_accepts_the_strategy_commands_and_its_own() -> None:
    async with running_daemon() as daemon, daemon.client("risk") as client:
        listed = await client.request({"type": "get_active_strategies"})
        assert listed["type"] == "strategy_status_list"
        unknown = await client.request({"type": "subscribe", "symbols": ["AAPL"]})
        data = exact(unknown, "error", unknown["requestId"])
        assert data["code"] == "unknown_type"
        for name in ("get_risk_status", "halt_trading", "resume_trading", "start_strategy"):
            assert name in data["message"]


async def test_kill_switch_commands_are_validated() -> None:
    async with running_daemon() as daemon, daemon.client("risk") as client:
        for bad in (
            {"type": "halt_trading"},
            {"type": "halt_trading", "reason": ""},
            {"type": "halt_trading", "reason": "x", "blockAll": "yes"},
            {"type": "halt_trading", "reason": "x", "everything": True},
        ):
            reply = await client.request(bad)
            data = exact(reply, "error", reply["requestId"])
            assert (data["code"], data["requestType"]) == ("invalid_message", "halt_trading")
        reply = await client.request({"type": "resume_trading"})
        data = exact(reply, "error", reply["requestId"])
        assert data == {
            "code": "invalid_transition",
            "message": "trading is not halted: there is nothing to resume",
            "requestType": "resume_trading",
        }
        assert daemon.daemon.core.execution.halt is None


# ---------------------------------------------------------------- kill switch


async def test_halt_and_resume_are_announced_to_every_client_of_every_server() -> None:
    async with (
        running_daemon() as daemon,
        daemon.client("risk") as operator,
        daemon.client("risk") as watcher,
        daemon.client("orchestrator") as frontend,
        daemon.client("market_data") as quotes,
    ):
        reply = await operator.request({"type": "halt_trading", "reason": "maintenance"})
        engaged = {
            "engaged": True,
            "reason": "maintenance",
            "blockAll": False,
            "source": "COMMAND",
            "since": iso_utc(START),
        }
        assert exact(reply, "kill_switch", reply["requestId"]) == engaged
        assert exact(await watcher.recv(), "kill_switch") == engaged
        stopped = {"status": "STOPPED", "reason": "maintenance"}
        for client in (operator, watcher, frontend, quotes):
            assert exact(await client.recv(), "execution_service_status") == stopped

        daemon.clock.advance(5.0)
        reply = await operator.request({"type": "resume_trading", "reason": "done"})
        released = {
            "engaged": False,
            "reason": "done",
            "blockAll": False,
            "source": "COMMAND",
            "since": None,
        }
        assert exact(reply, "kill_switch", reply["requestId"]) == released
        assert exact(await watcher.recv(), "kill_switch") == released
        for client in (operator, watcher, frontend, quotes):
            assert exact(await client.recv(), "execution_service_status") == {"status": "RUNNING"}


async def test_halted_at_start_by_config() -> None:
    config = test_config(risk={"halted_at_start": True})
    async with running_daemon(config) as daemon, daemon.client("risk") as client:
        [status, _] = client.snapshot
        assert exact(status, "execution_service_status") == {
            "status": "STOPPED",
            "reason": "engaged by config (risk.halted_at_start)",
        }
        reply = await client.request({"type": "get_risk_status"})
        assert reply["data"]["killSwitch"] == {
            "engaged": True,
            "reason": "engaged by config (risk.halted_at_start)",
            "blockAll": False,
            "source": "CONFIG",
            "since": iso_utc(START),
        }


async def test_while_halted_entries_are_rejected_and_the_strategy_keeps_running() -> None:
    config = test_config(strategies=scripted(), broker=NO_SLIPPAGE)
    async with (
        running_daemon(config) as daemon,
        daemon.client("risk") as risk,
        daemon.client() as frontend,
    ):
        await risk.request({"type": "halt_trading", "reason": "lunch"})
        await frontend.request({"type": "start_strategy", "id": "holder"})
        await buy_on_first_bar(daemon)
        rejected = exact(await risk.recv_type("order_rejected"), "order_rejected")
        assert set(rejected) == ORDER_KEYS | {
            "limit",
            "limitValue",
            "actualValue",
            "reason",
            "timestamp",
        }
        assert {k: rejected[k] for k in ("strategyId", "symbol", "side", "quantity")} == {
            "strategyId": "holder",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 10.0,
        }
        assert (rejected["limit"], rejected["limitValue"], rejected["actualValue"]) == (
            "killSwitch",
            0.0,
            1_000.0,
        )
        assert rejected["reason"] == (
            "trading is halted (lunch): only orders that reduce a position pass"
        )
        trade = await frontend.recv_type("strategy_trade")
        assert trade["data"]["status"] == "REJECTED"
        assert trade["data"]["orderId"] == rejected["orderId"]
        status = await frontend.request({"type": "get_active_strategies"})
        assert [entry["status"] for entry in status["data"]] == ["ACTIVE"]


# ---------------------------------------------------------------- risk events


async def test_order_rejected_names_the_limit_and_the_value_that_broke_it() -> None:
    config = test_config(broker=NO_SLIPPAGE, risk={"max_gross_exposure": 500.0})
    async with running_daemon(config) as daemon, daemon.client("risk") as client:
        daemon.tick("AAPL", 100.0)
        order = submit(daemon, Side.BUY, 6)
        data = exact(await client.recv(), "order_rejected")
        assert data == {
            "orderId": order.id,
            "strategyId": "manual",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 6,
            "purpose": "signal",
            "limit": "maxGrossExposure",
            "limitValue": 500.0,
            "actualValue": 600.0,
            "reason": "max_gross_exposure 500 exceeded: gross exposure would be 600.00",
            "timestamp": iso_utc(START),
        }


async def test_order_reduced_says_what_was_sent_instead() -> None:
    config = test_config(broker=NO_SLIPPAGE, risk={"position_limit_mode": "reduce"})
    async with running_daemon(config) as daemon, daemon.client("risk") as client:
        daemon.tick("AAPL", 100.0)
        order = submit(daemon, Side.BUY, 150, max_position_value=10_000.0)
        data = exact(await client.recv(), "order_reduced")
        assert data == {
            "orderId": order.id,
            "strategyId": "manual",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 150,
            "purpose": "signal",
            "reducedQuantity": 100,
            "limit": "maxPositionValue",
            "limitValue": 10_000.0,
            "actualValue": 15_000.0,
            "reason": "maxPositionValue 10000: 150 AAPL would be worth 15000.00; sent 100",
            "timestamp": iso_utc(START),
        }
        daemon.tick("AAPL", 100.0)
        assert daemon.daemon.core.execution.book.portfolio("manual").position("AAPL") == 100


async def test_a_paused_strategy_keeps_its_stop_loss_and_exits_with_a_normal_trade() -> None:
    config = test_config(strategies=scripted(stop_loss_percentage=0.02), broker=NO_SLIPPAGE)
    async with (
        running_daemon(config) as daemon,
        daemon.client("risk") as risk,
        daemon.client() as frontend,
    ):
        await frontend.request({"type": "start_strategy", "id": "holder"})
        await buy_on_first_bar(daemon)
        entry = await frontend.recv_type("strategy_trade")
        assert entry["data"]["status"] == "FILLED"
        await frontend.request({"type": "pause_strategy", "id": "holder"})
        daemon.tick("AAPL", 98.0)  # exactly 2 % down: the stop fires
        daemon.tick("AAPL", 97.0)  # the exit fills
        daemon.tick("AAPL", 96.0)
        risk_messages, reply = await until_reply(risk, {"type": "get_risk_status"})
        [stop] = [exact(m, m["type"]) for m in risk_messages if m["type"] == "stop_loss_triggered"]
        assert stop == {
            "orderId": stop["orderId"],
            "strategyId": "holder",
            "symbol": "AAPL",
            "side": "SELL",
            "quantity": 10.0,
            "purpose": "stop_loss",
            "positionQuantity": 10.0,
            "entryPrice": 100.0,
            "triggerPrice": 98.0,
            "stopPrice": 98.0,
            "stopLossPercentage": 0.02,
            "unrealizedPnl": -20.0,
            "timestamp": iso_utc(START + 1.0),
        }
        assert reply["data"]["strategies"][0]["realizedPnl"] == -30.0
        exit_trade = await frontend.recv_type("strategy_trade")
        assert {k: exit_trade["data"][k] for k in ("orderId", "side", "status", "entryPrice")} == {
            "orderId": stop["orderId"],
            "side": "SELL",
            "status": "FILLED",
            "entryPrice": 97.0,
        }
        status = await frontend.request({"type": "get_active_strategies"})
        [holder] = status["data"]
        assert (holder["status"], holder["positions"]) == ("PAUSED", [])


async def until_reply(
    client: Client, message: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Send ``message``; return what arrived before its reply, and the reply."""
    await client.send({**message, "requestId": "until"})
    before = []
    while (received := await client.recv()).get("requestId") != "until":
        before.append(received)
    return before, received


async def test_the_daily_loss_limit_engages_the_kill_switch_for_everyone() -> None:
    config = test_config(broker=NO_SLIPPAGE, risk={"max_daily_loss": 100.0})
    async with (
        running_daemon(config) as daemon,
        daemon.client("risk") as risk,
        daemon.client() as frontend,
        daemon.client("market_data") as quotes,
    ):
        daemon.tick("AAPL", 100.0)
        submit(daemon, Side.BUY, 10)
        daemon.tick("AAPL", 100.0)
        daemon.tick("AAPL", 90.0)  # -100: at the limit
        breach = exact(await risk.recv(), "limit_breach")
        reason = "daily loss 100.00 reached max_daily_loss 100"
        assert breach == {
            "limit": "maxDailyLoss",
            "limitValue": 100.0,
            "actualValue": 100.0,
            "strategyId": None,
            "symbol": None,
            "action": "KILL_SWITCH",
            "reason": reason,
            "timestamp": iso_utc(START),
        }
        assert exact(await risk.recv(), "kill_switch") == {
            "engaged": True,
            "reason": reason,
            "blockAll": False,
            "source": "DAILY_LOSS",
            "since": iso_utc(START),
        }
        stopped = {"status": "STOPPED", "reason": reason}
        for client in (risk, frontend, quotes):
            status = await client.recv_type("execution_service_status")
            assert exact(status, "execution_service_status") == stopped
        assert daemon.daemon.core.execution.status.value == "STOPPED"


async def test_a_restarted_daemon_keeps_the_stop_loss_of_a_restored_position() -> None:
    config = test_config(strategies=scripted(stop_loss_percentage=0.02), broker=NO_SLIPPAGE)
    async with running_daemon(config) as daemon, daemon.client() as frontend:
        await frontend.request({"type": "start_strategy", "id": "holder"})
        await buy_on_first_bar(daemon)
        assert (await frontend.recv_type("strategy_trade"))["data"]["status"] == "FILLED"
    async with running_daemon(config) as daemon, daemon.client("risk") as risk:
        reply = await risk.request({"type": "get_risk_status"})
        [holder] = reply["data"]["strategies"]
        assert holder["positions"] == [
            {
                "symbol": "AAPL",
                "quantity": 10.0,
                "entryPrice": 100.0,
                "currentValue": 1_000.0,
                "stopPrice": 98.0,
            }
        ]
        assert reply["data"]["usage"]["grossExposure"] == 1_000.0
        daemon.tick("AAPL", 97.0)
        stop = exact(await risk.recv_type("stop_loss_triggered"), "stop_loss_triggered")
        assert (stop["strategyId"], stop["side"], stop["quantity"]) == ("holder", "SELL", 10.0)


async def test_an_engaged_kill_switch_stays_engaged_across_a_restart() -> None:
    config = test_config()
    async with running_daemon(config) as daemon, daemon.client("risk") as operator:
        reply = await operator.request(
            {"type": "halt_trading", "reason": "maintenance", "blockAll": True}
        )
        exact(reply, "kill_switch", reply["requestId"])
    for _ in range(2):  # restarted twice: restored, not engaged anew
        async with running_daemon(config) as daemon, daemon.client() as frontend:
            halt = daemon.daemon.core.execution.halt
            assert halt is not None
            assert (halt.reason, halt.block_all, halt.source) == ("maintenance", True, "COMMAND")
            [status] = [m for m in frontend.snapshot if m["type"] == "execution_service_status"]
            assert (status["data"]["status"], status["data"]["reason"]) == (
                "STOPPED",
                "maintenance",
            )
            journal = daemon.daemon.journal
            assert journal is not None and journal.counts()["kill_switch"] == 1
    async with running_daemon(config) as daemon, daemon.client("risk") as operator:
        reply = await operator.request({"type": "resume_trading", "reason": "done"})
        assert exact(reply, "kill_switch", reply["requestId"])["engaged"] is False
    async with running_daemon(config) as daemon:
        assert daemon.daemon.core.execution.halt is None  # released before the stop


async def test_halted_at_start_halts_every_start_whatever_the_journal_says() -> None:
    config = test_config(risk={"halted_at_start": True})
    async with running_daemon(config) as daemon, daemon.client("risk") as operator:
        reply = await operator.request({"type": "resume_trading"})
        assert exact(reply, "kill_switch", reply["requestId"])["engaged"] is False
    async with running_daemon(config) as daemon:  # the release is journaled; config wins
        halt = daemon.daemon.core.execution.halt
        assert halt is not None and halt.source == "CONFIG"
        async with daemon.client("risk") as operator:
            reply = await operator.request({"type": "halt_trading", "reason": "audit"})
            exact(reply, "kill_switch", reply["requestId"])
    async with running_daemon(config) as daemon:  # a journaled engagement replaces it
        halt = daemon.daemon.core.execution.halt
        assert halt is not None and (halt.reason, halt.source) == ("audit", "COMMAND")
