"""Encoding server-to-client messages: the stock-bot envelope, field for field."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from gateways.api import outbound
from orchestrator.model.events import (
    CommandOrigin,
    ExecutionStatus,
    ExecutionStatusChanged,
    QuoteUpdated,
    StrategyStatus,
    StrategyStatusChanged,
)
from orchestrator.model.market import Tick
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.strategy.registry import PositionView, StrategyView

TS = 1_689_000_000.25
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def decode(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(raw)
    return message


def status_event(status: StrategyStatus, reason: str | None = None) -> StrategyStatusChanged:
    return StrategyStatusChanged(
        strategy_id="strategy-123",
        name="Moving Average Crossover",
        status=status,
        previous=StrategyStatus.STOPPED,
        symbols=("AAPL", "MSFT"),
        ts=TS,
        origin=CommandOrigin("orchestrator", "orchestrator-1", "r"),
        reason=reason,
    )


def test_envelope_without_request_id() -> None:
    message = decode(outbound.encode("strategy_stopped", {"a": 1}, TS))
    assert list(message) == ["type", "timestamp", "data"]
    assert message["type"] == "strategy_stopped"
    assert message["timestamp"] == "2023-07-10T14:40:00.250Z"
    assert message["data"] == {"a": 1}


@pytest.mark.parametrize("request_id", ["r-1", 0, 17])
def test_envelope_with_request_id(request_id: str | int) -> None:
    message = decode(outbound.encode("x", [], TS, request_id))
    assert set(message) == {"type", "timestamp", "data", "requestId"}
    assert message["requestId"] == request_id
    assert type(message["requestId"]) is type(request_id)


def test_timestamps_are_iso_utc_with_z() -> None:
    for ts in (0.0, TS, 1_700_000_000.999):
        assert ISO_Z.match(decode(outbound.encode("x", None, ts))["timestamp"])


def test_error_payload() -> None:
    assert outbound.error_data("invalid_json", "bad", None) == {
        "code": "invalid_json",
        "message": "bad",
        "requestType": None,
    }


def test_strategy_entry_is_exactly_the_documented_shape() -> None:
    view = StrategyView(
        id="strategy-123",
        name="Moving Average Crossover",
        status=StrategyStatus.ACTIVE,
        symbols=("AAPL", "MSFT"),
        positions=(PositionView("AAPL", 10.0, 150.25, 1550.5, realized_pnl=3.0),),
        config=StrategyRunConfig(symbols=("AAPL", "MSFT")),
        params={"fast": 5, "slow": 30},
        error=None,
    )
    assert outbound.strategy_list([view]) == [
        {
            "id": "strategy-123",
            "name": "Moving Average Crossover",
            "status": "ACTIVE",
            "symbols": ["AAPL", "MSFT"],
            "positions": [
                {"symbol": "AAPL", "quantity": 10.0, "entryPrice": 150.25, "currentValue": 1550.5}
            ],
            "params": {"fast": 5, "slow": 30},
        }
    ]


def test_lifecycle_messages_are_exactly_the_documented_shapes() -> None:
    assert outbound.status_change(status_event(StrategyStatus.ACTIVE)) == (
        "strategy_started",
        {
            "strategyId": "strategy-123",
            "name": "Moving Average Crossover",
            "symbols": ["AAPL", "MSFT"],
        },
    )
    assert outbound.status_change(status_event(StrategyStatus.STOPPED)) == (
        "strategy_stopped",
        {"strategyId": "strategy-123", "name": "Moving Average Crossover"},
    )
    assert outbound.status_change(status_event(StrategyStatus.PAUSED)) == (
        "strategy_paused",
        {"strategyId": "strategy-123", "name": "Moving Average Crossover"},
    )
    kind, data = outbound.status_change(status_event(StrategyStatus.ERROR, "ValueError: x"))
    assert kind == "strategy_error"
    assert data["strategyId"] == "strategy-123" and data["error"] == "ValueError: x"


def test_execution_service_status() -> None:
    event = ExecutionStatusChanged(ExecutionStatus.RUNNING, TS)
    assert outbound.event_message(event) == ("execution_service_status", {"status": "RUNNING"})


def test_events_clients_do_not_see_have_no_message() -> None:
    assert outbound.event_message(QuoteUpdated(Tick("AAPL", 1.0, 1.0, TS))) is None
