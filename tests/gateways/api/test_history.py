"""History on load: get_recent_activity (8082) and get_bars (3001), with a real client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.model.clock import iso_utc
from orchestrator.model.events import OrderSubmitted
from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import running_daemon, test_config


async def test_recent_activity_is_what_the_stream_said_with_pnl_per_trade() -> None:
    config = test_config(broker={"commission_per_share": 0.01})
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "strategy-123"})
        await drive_uptrend(daemon, 12)
        exits = daemon.next_event(
            lambda e: isinstance(e, OrderSubmitted) and e.order.symbol == "MSFT"
        )
        await client.send({"type": "stop_strategy", "id": "strategy-123", "requestId": "stop"})
        await exits  # the stop closes both positions at market: AAPL's order came first
        daemon.advance(1.0)
        daemon.tick("AAPL", 130.0)
        daemon.tick("MSFT", 190.0)
        live: dict[str, list[dict[str, Any]]] = {"strategy_trade": [], "strategy_signal": []}
        while (message := await client.recv())["type"] != "strategy_stopped":
            live.get(message["type"], []).append(message["data"])

        reply = await client.request({"type": "get_recent_activity", "limit": 10})
        assert reply["type"] == "recent_activity"
        trades = reply["data"]["trades"]
        # The same payloads as the live stream, so a page joins them by id.
        assert trades == live["strategy_trade"]
        assert [t["side"] for t in trades] == ["BUY", "BUY", "SELL", "SELL"]
        # Each says why its order existed and what position it left: a closed trade's
        # exit reason, and where a round trip starts and ends.
        assert [t["purpose"] for t in trades] == ["signal", "signal"] + ["strategy_stop"] * 2
        assert [t["positionQuantity"] for t in trades] == [t["quantity"] for t in trades[:2]] + [
            0.0,
            0.0,
        ]
        assert reply["data"]["signals"] == live["strategy_signal"]
        book = daemon.daemon.core.execution.book.portfolio("strategy-123")
        assert sum(t["realizedPnl"] for t in trades) == pytest.approx(book.realized_pnl)
        aapl = [t for t in trades if t["symbol"] == "AAPL"]
        # An opening fill realizes only its commission.
        assert aapl[0]["realizedPnl"] == pytest.approx(-0.01 * aapl[0]["quantity"])
        assert aapl[1]["realizedPnl"] > 0  # bought on the way up, sold at 130

        last = await client.request({"type": "get_recent_activity", "limit": 1})
        assert last["data"]["trades"] == trades[-1:]


async def test_recent_activity_refuses_a_bad_limit_and_a_daemon_without_journal(
    tmp_path: Path,
) -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        for limit in (0, 501, "10"):
            error = await client.request({"type": "get_recent_activity", "limit": limit})
            assert error["type"] == "error"
            assert error["data"]["code"] == "invalid_message"
            assert "limit" in error["data"]["message"]
    config = test_config(journal={"enabled": False, "state_dir": str(tmp_path)})
    async with running_daemon(config) as daemon, daemon.client() as client:
        error = await client.request({"type": "get_recent_activity"})
        assert error["data"]["code"] == "history_unavailable"


async def test_get_bars_gives_the_closed_bars_the_live_stream_gave() -> None:
    async with running_daemon() as daemon, daemon.client("market_data") as client:
        await client.request({"type": "subscribe", "symbols": ["AAPL"], "resolution": "1s"})
        live = []
        for step in range(4):
            daemon.tick("AAPL", 100.0 + step, size=1 + step)
            daemon.advance(1.0)
            live.append((await client.recv_type("bar"))["data"])
        daemon.tick("AAPL", 200.0)  # in the open bucket: not a closed bar yet

        reply = await client.request(
            {"type": "get_bars", "symbol": "aapl", "resolution": "1s", "limit": 3}
        )
        assert reply["type"] == "bars"
        assert reply["data"] == {"symbol": "AAPL", "resolution": "1s", "bars": live[-3:]}
        minute = await client.request({"type": "get_bars", "symbol": "AAPL", "resolution": "1m"})
        assert minute["data"]["bars"] == []  # the minute has not ended


async def test_get_bars_refuses_unknown_symbols_resolutions_and_limits() -> None:
    async with running_daemon() as daemon, daemon.client("market_data") as client:
        cases = [
            ({"symbol": "NOPE", "resolution": "1m"}, "unknown_symbol"),
            ({"symbol": "AAPL", "resolution": "7m"}, "unknown_resolution"),
            ({"symbol": "AAPL", "resolution": "1m", "limit": 1001}, "invalid_message"),
            ({"resolution": "1m"}, "invalid_message"),
        ]
        for fields, code in cases:
            error = await client.request({"type": "get_bars", **fields})
            assert error["type"] == "error"
            assert error["data"]["code"] == code, fields


async def test_indicator_lines_live_and_on_load_are_the_strategys_smas() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "strategy-123"})  # SMA 3 / 8
        closes = [100.0 + step for step in range(12)]
        live: list[dict[str, Any]] = []
        for close in closes:
            daemon.tick("AAPL", close)
            daemon.tick("MSFT", 2 * close)
            daemon.advance(1.0)  # the 1s bars close on the clock
        while len(live) < 5:  # the 8th to 12th AAPL bars: both averages ready
            message = await client.recv_type("strategy_indicators")
            if message["data"]["symbol"] == "AAPL":
                live.append(message["data"])
        for n, point in enumerate(live, start=8):
            assert point["strategyId"] == "strategy-123" and point["resolution"] == "1s"
            window = closes[:n]
            assert point["values"] == {
                "SMA 3": pytest.approx(sum(window[-3:]) / 3),
                "SMA 8": pytest.approx(sum(window[-8:]) / 8),
            }
        assert live[-1]["start"] == iso_utc(daemon.clock.now() - 1.0)  # the last closed bar

        reply = await client.request(
            {"type": "get_indicators", "strategyId": "strategy-123", "symbol": "aapl", "limit": 3}
        )
        assert reply["type"] == "indicators"
        data = reply["data"]
        assert (data["strategyId"], data["symbol"], data["resolution"]) == (
            "strategy-123",
            "AAPL",
            "1s",
        )
        # On load, the same points the stream carried: a chart joins them by start.
        assert data["points"] == [{"start": p["start"], "values": p["values"]} for p in live[-3:]]

        unknown = await client.request(
            {"type": "get_indicators", "strategyId": "nope", "symbol": "AAPL"}
        )
        assert unknown["data"]["code"] == "unknown_strategy"
        other = await client.request(
            {"type": "get_indicators", "strategyId": "rsi-reversion", "symbol": "AAPL"}
        )
        assert other["data"]["points"] == []  # not running: no lines
