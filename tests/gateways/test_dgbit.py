"""The dgbit event API on 8082: /api/ws/events and /api/ws/jobs/{job_uuid}."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateways.api.outbound import DgbitTranslator
from orchestrator.model.events import OrderSubmitted, TradeExecuted
from orchestrator.model.orders import Fill, Order, OrderPurpose, Side, TradeStatus
from orchestrator.trading.portfolio import PortfolioBook
from tests.gateways.test_daemon_process import (
    SERVERS,
    clean_env,
    daemon_process,
    free_ports,
    write_config,
)
from tests.gateways.test_strategy_runtime import config_with, next_second
from tests.support import START, Client, TestDaemon, running_daemon, test_config

EXAMPLES = Path(__file__).parent / "dgbit_examples"
ENTERED = {"symbol", "side", "quantity", "entry_price", "take_profit", "stop_loss", "strategy"}
EXITED = {
    "symbol",
    "side",
    "quantity",
    "entry_price",
    "exit_price",
    "exit_type",
    "pnl",
    "pnl_pct",
    "duration_minutes",
}
SIGNAL = {"strategy", "symbol", "signal_value", "direction", "confidence"}


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(30):  # a guard against a hang, not a deadline
        message: dict[str, Any] = orjson.loads(await ws.recv())
    assert set(message) == {"type", "timestamp", "payload"}, message
    assert message["timestamp"].endswith("Z")
    return message


def holding_config() -> Any:
    return config_with(
        {
            "id": "hold",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "symbols": ["AAPL"],
            "defaults": {"stop_loss_percentage": 0.05},
        }
    )


async def enter_and_stop(daemon: TestDaemon, client: Client) -> None:
    """One round trip: bought on the first bar at 101, sold by stop_strategy at 110."""
    await client.request({"type": "start_strategy", "id": "hold"})
    daemon.tick("AAPL", 100.0)
    await next_second(daemon, {"AAPL": 101.0})  # the bar closes: BUY 10
    daemon.tick("AAPL", 101.0)  # fills
    await client.recv_type("strategy_trade")
    daemon.advance(60.0)  # held for a minute
    await client.send({"type": "stop_strategy", "id": "hold"})
    await daemon.next_event(lambda e: type(e).__name__ == "OrderSubmitted")
    daemon.tick("AAPL", 110.0)
    await client.recv_type("strategy_stopped")


async def test_trades_and_signals_arrive_with_the_dgbit_payloads() -> None:
    async with (
        running_daemon(holding_config()) as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        await enter_and_stop(daemon, client)
        signal_event = await recv(events)
        assert signal_event["type"] == "signal.generated"
        assert set(signal_event["payload"]) == SIGNAL
        assert signal_event["payload"]["direction"] == "long"
        assert signal_event["payload"]["confidence"] in {"high", "medium", "low"}
        entered = await recv(events)
        assert entered["type"] == "trade.entered"
        assert set(entered["payload"]) == ENTERED
        payload = entered["payload"]
        assert (payload["side"], payload["quantity"], payload["strategy"]) == (
            "long",
            10.0,
            "hold",
        )
        assert payload["take_profit"] is None
        assert payload["stop_loss"] == pytest.approx(payload["entry_price"] * 0.95)
        exited = await recv(events)
        assert exited["type"] == "trade.exited"
        assert set(exited["payload"]) == EXITED
        out = exited["payload"]
        assert out["exit_type"] == "strategy_stop"
        assert out["duration_minutes"] == pytest.approx(1.0)
        gain = (out["exit_price"] - out["entry_price"]) * 10
        assert out["pnl"] == pytest.approx(gain)
        assert out["pnl_pct"] == pytest.approx(gain / (out["entry_price"] * 10) * 100)


def buy(book: PortfolioBook, strategy_id: str, price: float) -> TradeExecuted:
    fill = Fill(
        id=f"trade-{strategy_id}",
        order_id=f"order-{strategy_id}",
        strategy_id=strategy_id,
        symbol="AAPL",
        side=Side.BUY,
        quantity=10.0,
        price=price,
        commission=0.0,
        ts=START,
        status=TradeStatus.FILLED,
    )
    return TradeExecuted(fill, book.apply_fill(fill))


def test_an_entry_takes_its_stop_loss_from_the_trade_event_alone() -> None:
    book = PortfolioBook()
    translator = DgbitTranslator()  # nothing to ask about the strategy: the event says it
    with_stop = replace(buy(book, "guarded", 101.0), stop_price=95.95)
    [(kind, payload, job)] = translator.messages(with_stop)
    assert (kind, job) == ("trade.entered", None)
    assert (payload["stop_loss"], payload["take_profit"]) == (95.95, None)
    [(_, unguarded, _)] = translator.messages(buy(book, "unguarded", 101.0))
    assert (unguarded["stop_loss"], unguarded["take_profit"]) == (None, None)


def test_an_exit_nobody_watched_being_ordered_still_reports_why_it_was_ordered() -> None:
    """With no dgbit client, an order's messages are not built, but its purpose is kept:
    a client that connects before its fill is told the exit type all the same."""
    book = PortfolioBook()
    translator = DgbitTranslator()
    translator.remember(buy(book, "guarded", 100.0))  # nobody watching: remembered only
    exit_order = Order(
        "order-exit", "guarded", "AAPL", Side.SELL, 10.0, START, OrderPurpose.STOP_LOSS
    )
    translator.remember(OrderSubmitted(exit_order))
    fill = Fill(
        id="trade-exit",
        order_id="order-exit",
        strategy_id="guarded",
        symbol="AAPL",
        side=Side.SELL,
        quantity=10.0,
        price=95.0,
        commission=0.0,
        ts=START + 60,
        status=TradeStatus.FILLED,
    )
    [(kind, payload, _)] = translator.messages(TradeExecuted(fill, book.apply_fill(fill)))
    assert (kind, payload["exit_type"]) == ("trade.exited", "stop_loss")


async def test_a_reversal_is_one_fill_reported_as_an_exit_then_an_entry() -> None:
    config = config_with(
        {
            "id": "flip",
            "kind": "tests.scripted_strategies:AlwaysReverse",
            "symbols": ["AAPL"],
            "defaults": {"max_position_value": 1000, "stop_loss_percentage": 0.0},
        }
    )
    async with (
        running_daemon(config) as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        await client.request({"type": "start_strategy", "id": "flip"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 1: long 9
        await next_second(daemon, {"AAPL": 101.0})  # bar 2: one SELL 18, filled at 101
        messages = [await recv(events) for _ in range(5)]
        kinds = [(m["type"], m["payload"].get("side")) for m in messages]
        assert kinds == [
            ("signal.generated", None),
            ("trade.entered", "long"),
            ("signal.generated", None),
            ("trade.exited", "long"),
            ("trade.entered", "short"),
        ]
        exited, entered = messages[3]["payload"], messages[4]["payload"]
        # Both halves of the one fill: its price closes the long and opens the short.
        assert (exited["quantity"], entered["quantity"]) == (9.0, 9.0)
        assert exited["exit_price"] == entered["entry_price"] == pytest.approx(101.0, rel=1e-3)
        assert exited["pnl"] < 9.0 * (exited["exit_price"] - exited["entry_price"]) + 1e-9


async def test_a_filter_limits_the_event_types_and_other_messages_are_answered() -> None:
    async with (
        running_daemon(holding_config()) as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        await events.send(orjson.dumps({"type": "filter", "events": ["trade.exited"]}).decode())
        updated = await recv(events)
        assert updated["type"] == "filter.updated"
        assert updated["payload"] == {"events": ["trade.exited"]}
        await events.send("hello")
        error = await recv(events)
        assert error["type"] == "error"
        assert error["payload"]["code"] == "invalid_json"
        await events.send(orjson.dumps({"type": "echo", "x": 1}).decode())
        assert (await recv(events))["payload"]["code"] == "unsupported_message"
        await events.send(orjson.dumps({"type": "filter", "events": ["trade.nope"]}).decode())
        assert (await recv(events))["payload"]["code"] == "unknown_event_type"
        await events.send(orjson.dumps({"type": "ping"}).decode())
        assert (await recv(events))["type"] == "pong"
        await enter_and_stop(daemon, client)
        only = await recv(events)
        assert only["type"] == "trade.exited"


async def test_job_paths_refuse_malformed_and_unknown_uuids() -> None:
    async with running_daemon() as daemon:
        with pytest.raises(InvalidStatus) as malformed:
            async with connect(daemon.url(path="/api/ws/jobs/not-a-uuid")):
                pass
        assert malformed.value.response.status_code == 400
        assert b"not a job uuid" in malformed.value.response.body
        with pytest.raises(InvalidStatus) as unknown:
            async with connect(daemon.url(path=f"/api/ws/jobs/{uuid.uuid4()}")):
                pass
        assert unknown.value.response.status_code == 404


@pytest.mark.parametrize(
    ("example", "expected"),
    [("listener.py", "Event: trade.entered"), ("event_client.py", "Trade entered: {")],
)
async def test_the_dgbit_documents_client_examples_run_against_the_daemon(
    tmp_path: Path, example: str, expected: str
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with daemon_process(write_config(tmp_path, ports)) as daemon:
        await daemon.wait_for_log("daemon_ready")
        script = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / example),
            str(ports["orchestrator"]),
            stdout=asyncio.subprocess.PIPE,
            env=clean_env(),
        )
        assert script.stdout is not None
        try:
            async with asyncio.timeout(15):
                first = (await script.stdout.readline()).decode()
                assert first.startswith("Connected")
                async with connect(f"ws://127.0.0.1:{ports['orchestrator']}/") as ws:
                    await Client(ws).request({"type": "start_strategy", "id": "strategy-123"})
                    while expected not in (await script.stdout.readline()).decode():
                        pass
        finally:
            script.send_signal(signal.SIGINT)
            await script.wait()
        daemon.proc.send_signal(signal.SIGTERM)
        code, _ = await daemon.finish()
    assert code == 0


FLOOD_LIMITS = {"commands_per_second": 1, "command_burst": 5, "flood_close_after": 20}


async def flood(ws: ClientConnection, message: bytes) -> tuple[dict[str, int], int | None]:
    """Send 200 messages as fast as possible; what came back, and the close code."""
    with contextlib.suppress(ConnectionClosed):  # it may close before the last
        for _ in range(200):
            await ws.send(message.decode())
    kinds: dict[str, int] = {}
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(10):
            while True:
                reply = orjson.loads(await ws.recv())
                kind = reply["payload"]["code"] if reply["type"] == "error" else reply["type"]
                kinds[kind] = kinds.get(kind, 0) + 1
    return kinds, caught.value.rcvd.code if caught.value.rcvd is not None else None


async def test_a_flood_on_the_events_path_is_closed_1008_and_quotes_keep_flowing() -> None:
    config = test_config(connections=FLOOD_LIMITS)
    async with (
        running_daemon(config) as daemon,
        daemon.client("market_data") as quotes,
        connect(daemon.url(path="/api/ws/events")) as flooder,
    ):
        await quotes.request({"type": "subscribe", "symbols": ["AAPL"]})
        kinds, code = await flood(flooder, orjson.dumps({"type": "ping"}))
        daemon.tick("AAPL", 101.0)  # after the flood: another client is served at once
        quote = await quotes.recv_type("quote")
    assert kinds == {"pong": 5, "rate_limited": 19}
    assert code == 1008
    assert quote["data"]["price"] == 101.0


async def test_a_flood_on_a_job_path_is_closed_1008() -> None:
    config = test_config(connections=FLOOD_LIMITS)
    async with running_daemon(config) as daemon, daemon.client() as client:
        source = {"kind": "synthetic", "durationSeconds": 3600, "resolution": "1m"}
        job = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": source}
        )
        job_id = job["data"]["jobId"]
        async with connect(daemon.url(path=f"/api/ws/jobs/{job_id}")) as watcher:
            kinds, code = await flood(watcher, b'{"type": "hello"}')
    assert kinds.get("ack") == 5 and kinds.get("rate_limited") == 19
    assert code == 1008


RESULT_HEADLINE = {"total_trades", "win_rate", "total_return"}
RESULT_REPORT = {"statistics", "trades", "open_trade", "series", "buy_and_hold_return"}
TRADE = {
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "pnl",
    "pnl_pct",
    "commission",
    "duration_seconds",
    "exit_reason",
    "entry_bar",
    "exit_bar",
}


async def test_a_job_reports_progress_then_completes_with_its_report_in_snake_case() -> None:
    async with (
        running_daemon() as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        source = {"kind": "synthetic", "durationSeconds": 86_400, "resolution": "1m"}
        await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": source}
        )
        messages = [await recv(events)]
        while messages[-1]["type"] != "job.completed":
            messages.append(await recv(events))
    kinds = [message["type"] for message in messages]
    assert kinds[:2] == ["job.created", "job.started"] and kinds[-2] == "job.progress"
    progress = messages[-2]["payload"]
    assert progress["status"] == "running" and progress["progress"] == 1.0
    assert progress["bars_done"] == progress["bars_total"] == 1_440
    result = messages[-1]["payload"]["result"]
    assert set(result) >= RESULT_HEADLINE | RESULT_REPORT
    assert result["statistics"]["trade_count"] == result["total_trades"] > 0
    assert "max_drawdown_pct" in result["statistics"] and "sharpe_ratio" in result["statistics"]
    assert all(set(trade) == TRADE for trade in result["trades"])
    assert set(result["series"]) == {"time", "equity", "drawdown_pct", "buy_and_hold"}
    assert len(result["series"]["time"]) <= 500


ORDER = {
    "order_id",
    "strategy",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "purpose",
    "parent_id",
    "stop_loss",
    "take_profit",
}


async def test_a_brackets_trade_entered_carries_its_take_profit_and_stop_loss() -> None:
    config = config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
    )
    async with (
        running_daemon(config) as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # a limit buy at 99 rests
        daemon.tick("AAPL", 98.5)  # fills it, which arms the 94.05 stop and 100.98 target
        daemon.tick("AAPL", 101.5)  # the target fills, the stop is cancelled
        await client.recv_type("order_cancelled")
        received = []
        while not received or received[-1]["type"] != "order.cancelled":
            received.append(await recv(events))
        kinds = [m["type"] for m in received if m["type"] != "signal.generated"]
        assert kinds == [
            "order.accepted",
            "order.triggered",
            "trade.entered",
            "order.accepted",
            "order.accepted",
            "order.triggered",
            "trade.exited",
            "order.cancelled",
        ]
        orders = [m["payload"] for m in received if m["type"].startswith("order.")]
        assert all(set(p) - {"trigger_price", "reason"} == ORDER for p in orders)
        entry = orders[0]
        assert (entry["side"], entry["order_type"], entry["limit_price"]) == ("buy", "limit", 99.0)
        assert (entry["stop_loss"], entry["take_profit"]) == (94.05, 100.98)
        assert orders[1]["trigger_price"] == 98.5
        assert orders[2]["purpose"] == "stop_loss" and orders[2]["parent_id"] == entry["order_id"]
        assert orders[-1]["reason"] == "the other exit of its bracket filled"
        entered = next(m["payload"] for m in received if m["type"] == "trade.entered")
        assert set(entered) == ENTERED
        assert (entered["take_profit"], entered["stop_loss"]) == (100.98, 94.05)
        exited = next(m["payload"] for m in received if m["type"] == "trade.exited")
        assert exited["exit_type"] == "take_profit"


async def test_a_filter_can_ask_for_the_order_events_alone() -> None:
    config = config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
    )
    async with (
        running_daemon(config) as daemon,
        daemon.client() as client,
        connect(daemon.url(path="/api/ws/events")) as events,
    ):
        await events.send(orjson.dumps({"type": "filter", "events": ["order.cancelled"]}))
        assert (await recv(events))["type"] == "filter.updated"
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})
        accepted = (await client.recv_type("order_accepted"))["data"]
        await client.request({"type": "cancel_order", "orderId": accepted["orderId"]})
        cancelled = await recv(events)
        assert cancelled["type"] == "order.cancelled"
        assert cancelled["payload"]["order_id"] == accepted["orderId"]
        assert cancelled["payload"]["reason"] == "cancelled by a cancel_order command"
