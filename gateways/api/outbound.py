"""Server-to-client messages: the stock-bot envelope and its camelCase payloads.

Every function here is pure. A broadcast event is turned into bytes once, by
:func:`encode`, and the same bytes go to every client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.backtest.jobs import JobInfo
from orchestrator.model.clock import iso_utc
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    JobStateChanged,
    KillSwitchChanged,
    LimitBreached,
    OrderReduced,
    OrderRejected,
    OrderSubmitted,
    SignalEmitted,
    StopLossTriggered,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
)
from orchestrator.model.orders import Order
from orchestrator.strategy.registry import PositionView, StrategyView

Payload = dict[str, Any]
Message = tuple[str, Any]
"""A message before encoding: its ``type`` and its ``data``."""


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a message stands in its server's stream (additive envelope fields)."""

    seq: int
    epoch: int
    snapshot: bool = False


def encode(
    kind: str,
    data: Any,
    ts: float,
    request_id: str | int | None = None,
    position: StreamPosition | None = None,
) -> bytes:
    message: dict[str, Any] = {"type": kind, "timestamp": iso_utc(ts), "data": data}
    if request_id is not None:
        message["requestId"] = request_id
    if position is not None:
        message["seq"] = position.seq
        message["epoch"] = position.epoch
        if position.snapshot:
            message["snapshot"] = True
    return orjson.dumps(message)


def error_data(code: str, message: str, request_type: str | None) -> Payload:
    return {"code": code, "message": message, "requestType": request_type}


def position_data(position: PositionView) -> Payload:
    return {
        "symbol": position.symbol,
        "quantity": position.quantity,
        "entryPrice": position.entry_price,
        "currentValue": position.current_value,
    }


def strategy_entry(view: StrategyView) -> Payload:
    return {
        "id": view.id,
        "name": view.name,
        "status": view.status.value,
        "symbols": list(view.symbols),
        "positions": [position_data(p) for p in view.positions],
    }


def strategy_list(views: list[StrategyView]) -> list[Payload]:
    return [strategy_entry(view) for view in views]


def status_change(event: StrategyStatusChanged) -> Message:
    base = {"strategyId": event.strategy_id, "name": event.name}
    if event.status is StrategyStatus.ACTIVE:
        return "strategy_started", {**base, "symbols": list(event.symbols)}
    if event.status is StrategyStatus.PAUSED:
        return "strategy_paused", base
    if event.status is StrategyStatus.STOPPED:
        return "strategy_stopped", base
    return "strategy_error", {**base, "status": event.status.value, "error": event.reason}


def execution_status(event: ExecutionStatusChanged) -> Message:
    return "execution_service_status", execution_status_data(event.status, event.reason)


def execution_status_data(status: ExecutionStatus, reason: str | None) -> Payload:
    """The broadcast's data and the snapshot's alike: a halt's reason when there is one."""
    data: Payload = {"status": status.value}
    if reason is not None:
        data["reason"] = reason
    return data


def signal(event: SignalEmitted) -> Message:
    sig = event.signal
    return "strategy_signal", {
        "id": sig.id,
        "strategyId": sig.strategy_id,
        "name": sig.strategy_name,
        "symbol": sig.symbol,
        "price": sig.price,
        "action": sig.action.value,
        "quantity": sig.quantity,
        "metadata": dict(sig.metadata),
        "timestamp": iso_utc(sig.ts),
        "confidence": sig.confidence,
    }


def trade(event: TradeExecuted) -> Message:
    fill = event.fill
    data: Payload = {
        "id": fill.id,
        "strategyId": fill.strategy_id,
        "orderId": fill.order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "entryPrice": fill.price,
        "entryTime": iso_utc(fill.ts),
        "status": fill.status.value,
        "timestamp": iso_utc(fill.ts),
    }
    if fill.reason is not None:
        data["reason"] = fill.reason
    return "strategy_trade", data


ENCODERS: dict[type[Any], Callable[[Any], Message]] = {
    StrategyStatusChanged: status_change,
    ExecutionStatusChanged: execution_status,
    SignalEmitted: signal,
    TradeExecuted: trade,
}


def event_message(event: Event) -> Message | None:
    """The stock-bot message for a core event, or None if clients don't see it."""
    encoder = ENCODERS.get(type(event))
    return encoder(event) if encoder is not None else None


# ---------------------------------------------------------------- risk guardian (3002)


def _order_fields(order: Order) -> Payload:
    return {
        "orderId": order.id,
        "strategyId": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "quantity": order.quantity,
        "purpose": order.purpose.value,
    }


def order_submitted(event: OrderSubmitted) -> Message:
    """An order on its way to the broker; no WebSocket server sends it (NNG does)."""
    order = event.order
    return "order_submitted", {
        **_order_fields(order),
        "signalId": order.signal_id,
        "timestamp": iso_utc(order.ts),
    }


def order_rejected(event: OrderRejected) -> Message:
    return "order_rejected", {
        **_order_fields(event.order),
        "limit": event.limit.value,
        "limitValue": event.limit_value,
        "actualValue": event.actual_value,
        "reason": event.reason,
        "timestamp": iso_utc(event.ts),
    }


def order_reduced(event: OrderReduced) -> Message:
    return "order_reduced", {
        **_order_fields(event.order),
        "reducedQuantity": event.quantity,
        "limit": event.limit.value,
        "limitValue": event.limit_value,
        "actualValue": event.actual_value,
        "reason": event.reason,
        "timestamp": iso_utc(event.ts),
    }


def stop_loss_triggered(event: StopLossTriggered) -> Message:
    return "stop_loss_triggered", {
        **_order_fields(event.order),
        "positionQuantity": event.position_quantity,
        "entryPrice": event.entry_price,
        "triggerPrice": event.trigger_price,
        "stopPrice": event.stop_price,
        "stopLossPercentage": event.stop_loss_percentage,
        "unrealizedPnl": event.unrealized_pnl,
        "timestamp": iso_utc(event.ts),
    }


def limit_breach(event: LimitBreached) -> Message:
    return "limit_breach", {
        "limit": event.limit.value,
        "limitValue": event.limit_value,
        "actualValue": event.actual_value,
        "strategyId": event.strategy_id,
        "symbol": event.symbol,
        "action": "KILL_SWITCH" if event.engages_kill_switch else "NONE",
        "reason": event.reason,
        "timestamp": iso_utc(event.ts),
    }


def kill_switch_data(
    engaged: bool, reason: str | None, block_all: bool, source: str | None, since: float | None
) -> Payload:
    return {
        "engaged": engaged,
        "reason": reason,
        "blockAll": block_all,
        "source": source,
        "since": iso_utc(since) if since is not None else None,
    }


def kill_switch(event: KillSwitchChanged) -> Message:
    since = event.ts if event.engaged else None
    source = event.source.value
    return "kill_switch", kill_switch_data(
        event.engaged, event.reason, event.block_all, source, since
    )


ENCODERS.update(
    {
        OrderRejected: order_rejected,
        OrderReduced: order_reduced,
        StopLossTriggered: stop_loss_triggered,
        LimitBreached: limit_breach,
        KillSwitchChanged: kill_switch,
    }
)


# ---------------------------------------------------------------- backtest jobs (8082)


def job_data(info: JobInfo | JobStateChanged) -> Payload:
    data: Payload = {"jobId": info.job_id, "jobType": info.job_type, "status": str(info.status)}
    if info.result is not None:
        data["result"] = dict(info.result)
    if info.error is not None:
        data["error"] = info.error
    return data


def job_state(event: JobStateChanged) -> Message:
    return "backtest_job", job_data(event)


ENCODERS[JobStateChanged] = job_state
