"""The strategy runtime through a real server: isolation, pause, stop, sizing, warm-up."""

from __future__ import annotations

from typing import Any

from orchestrator.model.events import OrderSubmitted
from tests.support import Client, TestDaemon, running_daemon, test_config


def catalog(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": entry["id"],
            "name": entry.get("name", entry["id"]),
            "kind": entry["kind"],
            "params": entry.get("params", {}),
            "defaults": {
                "symbols": entry["symbols"],
                "data_resolution": "1s",
                **entry.get("defaults", {}),
            },
        }
        for entry in entries
    ]


def config_with(*entries: dict[str, Any], **overrides: Any) -> Any:
    return test_config(strategies=catalog(*entries), **overrides)


async def next_second(daemon: TestDaemon, prices: dict[str, float]) -> None:
    """Close the current 1 s bar, then print a tick per symbol in the new bucket."""
    daemon.advance(1.0)
    for symbol, price in prices.items():
        daemon.tick(symbol, price)


async def trades_of(client: Client, count: int) -> list[dict[str, Any]]:
    return [(await client.recv_type("strategy_trade"))["data"] for _ in range(count)]


async def test_a_strategy_that_raises_goes_to_error_and_the_others_keep_running() -> None:
    config = config_with(
        {
            "id": "boom",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "symbols": ["AAPL"],
            "params": {"fail_on_bar": 2},
        },
        {"id": "calm", "kind": "tests.scripted_strategies:BuyThenHold", "symbols": ["MSFT"]},
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "boom"})
        await client.request({"type": "start_strategy", "id": "calm"})
        daemon.tick("AAPL", 100.0)
        daemon.tick("MSFT", 200.0)
        await next_second(daemon, {"AAPL": 101.0, "MSFT": 201.0})  # bar 1: both buy
        await next_second(daemon, {"AAPL": 102.0, "MSFT": 202.0})  # bar 2: boom raises
        error = await client.recv_type("strategy_error")
        assert error["data"]["strategyId"] == "boom"
        assert error["data"]["status"] == "ERROR"
        assert "scripted failure" in error["data"]["error"]
        status = await client.request({"type": "get_active_strategies"})
        statuses = {entry["id"]: entry["status"] for entry in status["data"]}
        assert statuses == {"boom": "ERROR", "calm": "ACTIVE"}
        # calm keeps trading: its position is valued at the latest price.
        await next_second(daemon, {"MSFT": 210.0})
        status = await client.request({"type": "get_active_strategies"})
        calm = next(entry for entry in status["data"] if entry["id"] == "calm")
        assert calm["positions"] == [
            {
                "symbol": "MSFT",
                "quantity": 10.0,
                "entryPrice": calm["positions"][0]["entryPrice"],
                "currentValue": 2100.0,
            }
        ]
        # An ERROR strategy can be started again.
        restarted = await client.request({"type": "start_strategy", "id": "boom"})
        assert restarted["type"] == "strategy_started"


async def test_paused_strategy_opens_nothing_but_is_still_valued_and_stopped_flat() -> None:
    config = config_with(
        {
            "id": "flip",
            "kind": "tests.scripted_strategies:AlwaysEnter",
            "symbols": ["AAPL"],
            "defaults": {"max_position_value": 1000},
        },
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "flip"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 1: enter long, sized
        [entry] = await trades_of(client, 1)
        assert entry["side"] == "BUY"
        assert entry["quantity"] == 9.0  # floor(1000 * 0.95 / 100)
        paused = await client.request({"type": "pause_strategy", "id": "flip"})
        assert paused["type"] == "strategy_paused"
        await next_second(daemon, {"AAPL": 110.0})  # bar 2: the exit passes while paused
        [exit_trade] = await trades_of(client, 1)
        assert exit_trade["side"] == "SELL"
        await next_second(daemon, {"AAPL": 111.0})  # bar 3: an entry is dropped while paused
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"][0]["status"] == "PAUSED"
        assert status["data"][0]["positions"] == []


async def test_a_reversal_is_one_trade_and_paused_keeps_only_its_closing_part() -> None:
    config = config_with(
        {
            "id": "flip",
            "kind": "tests.scripted_strategies:AlwaysReverse",
            "symbols": ["AAPL"],
            "defaults": {"max_position_value": 1000},
        },
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "flip"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 1: long 9
        await next_second(daemon, {"AAPL": 100.0})  # bar 2: 9 + 9 reverses to short 9
        opened, reversed_ = await trades_of(client, 2)
        assert (opened["side"], opened["quantity"]) == ("BUY", 9.0)
        assert (reversed_["side"], reversed_["quantity"]) == ("SELL", 18.0)
        await client.request({"type": "pause_strategy", "id": "flip"})
        await next_second(daemon, {"AAPL": 100.0})  # bar 3: paused, it only covers the 9
        [covered] = await trades_of(client, 1)
        assert (covered["side"], covered["quantity"]) == ("BUY", 9.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 4: an entry is dropped while paused
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"][0]["positions"] == []


async def test_stop_closes_positions_and_reports_the_trades_before_strategy_stopped() -> None:
    config = config_with(
        {
            "id": "hold",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "symbols": ["AAPL", "MSFT"],
        },
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "hold"})
        daemon.tick("AAPL", 100.0)
        daemon.tick("MSFT", 200.0)
        await next_second(daemon, {"AAPL": 100.0, "MSFT": 200.0})
        await trades_of(client, 2)
        closing = daemon.next_event(
            lambda e: isinstance(e, OrderSubmitted) and e.order.symbol == "MSFT"
        )
        await client.send({"type": "stop_strategy", "id": "hold", "requestId": "stop"})
        await closing  # both closing orders are pending: the next prices fill them
        daemon.tick("AAPL", 105.0)
        daemon.tick("MSFT", 195.0)
        received = [await client.recv() for _ in range(3)]
        assert [m["type"] for m in received] == [
            "strategy_trade",
            "strategy_trade",
            "strategy_stopped",
        ]
        assert {m["data"]["side"] for m in received[:2]} == {"SELL"}
        assert received[2]["requestId"] == "stop"
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"] == []


async def test_unknown_symbol_in_start_config_is_refused() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        error = await client.request(
            {"type": "start_strategy", "id": "strategy-123", "config": {"symbols": ["ZZZZ"]}}
        )
        assert error["data"]["code"] == "invalid_config"
        assert "ZZZZ" in error["data"]["message"]


async def test_strategy_with_bad_params_is_refused_with_a_clear_error() -> None:
    config = config_with(
        {
            "id": "broken",
            "kind": "sma_crossover",
            "symbols": ["AAPL"],
            "params": {"fast": 9, "slow": 3},
        },
        {"id": "missing", "kind": "no.such.module:Thing", "symbols": ["AAPL"]},
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        error = await client.request({"type": "start_strategy", "id": "broken"})
        assert error["data"]["code"] == "strategy_unavailable"
        error = await client.request({"type": "start_strategy", "id": "missing"})
        assert error["data"]["code"] == "strategy_unavailable"
        assert "no.such.module" in error["data"]["message"]


async def test_warm_up_from_history_lets_a_strategy_signal_on_its_first_live_bar() -> None:
    # Without warm-up the 3/8 SMA strategy needs 8 bars before it can signal;
    # with 60 s of feed history it signals on the first live bar of a jump.
    overrides = {"market_data": {"feed": {"kind": "synthetic", "history_seconds": 60}}}
    async with running_daemon(test_config(**overrides)) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "strategy-123"})
        await next_second(daemon, {"AAPL": 250.0, "MSFT": 500.0})
        await next_second(daemon, {"AAPL": 250.0, "MSFT": 500.0})
        signal = await client.recv_type("strategy_signal")
        assert signal["data"]["action"] == "BUY"


async def test_a_refused_order_is_not_sent_again_on_every_bar() -> None:
    config = config_with(
        {
            "id": "greedy",
            "kind": "tests.scripted_strategies:BuyEveryBar",
            "symbols": ["AAPL"],
            "params": {"quantity": 100},
            "defaults": {"max_position_value": 1000},
        },
    )
    # The watcher sees every event; the client's requests skip what is not their reply.
    async with (
        running_daemon(config) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        await client.request({"type": "start_strategy", "id": "greedy"})
        daemon.tick("AAPL", 100.0)
        for price in (100.0, 100.5, 99.5, 100.0):  # four bars, each asks for 10,000
            await next_second(daemon, {"AAPL": price})
        await client.request({"type": "stop_strategy", "id": "greedy"})
        wider = {"maxPositionValue": 20000}
        await client.request({"type": "start_strategy", "id": "greedy", "config": wider})
        await next_second(daemon, {"AAPL": 100.0})
        await next_second(daemon, {"AAPL": 100.0})  # the limit changed: it is sent
        first, second = await trades_of(watcher, 2)
    assert (first["status"], second["status"]) == ("REJECTED", "FILLED")


async def test_a_resting_bracket_fills_by_the_ticks_and_stop_cancels_what_rests() -> None:
    config = config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # bar 1 closes: a limit buy at 99 rests
        daemon.tick("AAPL", 99.5)  # above the limit: nothing
        daemon.tick("AAPL", 98.5)  # through it: filled at that price, never above 99
        [entry] = await trades_of(client, 1)
        assert (entry["side"], entry["quantity"]) == ("BUY", 10.0)
        assert 98.5 <= entry["entryPrice"] <= 99.0
        daemon.tick("AAPL", 101.5)  # beyond the take-profit at 100.98: the stop is cancelled
        [target] = await trades_of(client, 1)
        assert target["side"] == "SELL" and target["entryPrice"] >= 100.98
        await next_second(daemon, {"AAPL": 101.0})  # flat again: the next limit rests
        await client.send({"type": "stop_strategy", "id": "rest", "requestId": "stop"})
        received = []
        while not received or received[-1]["type"] != "strategy_stopped":
            message = await client.recv()
            if message["type"] in ("strategy_trade", "strategy_stopped"):
                received.append(message)
        cancelled = [m["data"] for m in received if m["type"] == "strategy_trade"]
        assert [(t["side"], t["status"]) for t in cancelled][-1] == ("BUY", "REJECTED")
        assert received[-1]["requestId"] == "stop"


async def test_pausing_cancels_a_resting_entry() -> None:
    config = config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "rest"})
        daemon.tick("AAPL", 100.0)
        await next_second(daemon, {"AAPL": 100.0})  # a limit buy at 99 rests
        await client.send({"type": "pause_strategy", "id": "rest"})
        [cancelled] = await trades_of(client, 1)
        assert (cancelled["side"], cancelled["status"]) == ("BUY", "REJECTED")
        assert cancelled["reason"] == "strategy paused"
        daemon.tick("AAPL", 98.0)  # through the old limit: nothing fills
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"][0]["positions"] == []
