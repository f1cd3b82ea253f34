"""Every message the daemon sends, in one place: the envelopes (stock-bot, dgbit),
the payloads, and :data:`MESSAGES`, the one table from event type to message.

Every function here is pure but :class:`DgbitTranslator`, which remembers why each
order exists. Each delivered event is wrapped once in an :class:`Outgoing`, handed
to the three servers and the NNG publisher alike: the first of them that needs the
event's message builds it, payload and the payload's JSON, and the others embed the
same JSON bytes in their own envelopes (each with its own ``seq``). Within a server,
one frame goes to every member of a channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from orchestrator.backtest.jobs import JobInfo
from orchestrator.journal.store import JournaledTrade
from orchestrator.model.clock import iso_utc
from orchestrator.model.events import (
    JOB_PROGRESS,
    BarClosed,
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    JobProgress,
    JobStateChanged,
    JobStatus,
    KillSwitchChanged,
    LimitBreached,
    OrderReduced,
    OrderRejected,
    OrderSubmitted,
    PositionMismatch,
    QuoteUpdated,
    SignalEmitted,
    StopLossTriggered,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
    VenueState,
)
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Fill, Order, OrderPurpose, Side, Signal
from orchestrator.risk.guardian import RiskSnapshot, StrategyRisk
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.strategy.registry import StrategyView
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.portfolio import PositionChange

Payload = dict[str, Any]
Message = tuple[str, Any]
"""A message before encoding: its ``type`` and its ``data``."""
DgbitMessage = tuple[str, Payload, str | None]
"""An event for dgbit clients: its type, its payload and the job it belongs to."""


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


def encode_dgbit(kind: str, payload: Any, ts: float) -> bytes:
    """The dgbit envelope: ``payload`` where the stock-bot one says ``data``."""
    return orjson.dumps({"type": kind, "timestamp": iso_utc(ts), "payload": payload})


def error_data(code: str, message: str, request_type: str | None) -> Payload:
    return {"code": code, "message": message, "requestType": request_type}


class HeldPosition(Protocol):
    """A position as a strategy's entry and the risk status both show it."""

    @property
    def symbol(self) -> str: ...
    @property
    def quantity(self) -> float: ...
    @property
    def entry_price(self) -> float: ...
    @property
    def current_value(self) -> float: ...


def position_data(position: HeldPosition) -> Payload:
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
    data = execution_status_data(event.status, event.reason, event.venues)
    return "execution_service_status", data


def execution_status_data(
    status: ExecutionStatus, reason: str | None, venues: Sequence[VenueState] = ()
) -> Payload:
    """The broadcast's data and the snapshot's alike: a halt's reason when there is one,
    and each live venue's connection when venues are configured."""
    data: Payload = {"status": status.value}
    if reason is not None:
        data["reason"] = reason
    if venues:
        data["venues"] = [venue_state_data(v) for v in venues]
    return data


def venue_state_data(venue: VenueState) -> Payload:
    data: Payload = {"name": venue.name, "connected": venue.connected, "reason": venue.reason}
    if venue.mismatches:
        data["mismatches"] = list(venue.mismatches)
    return data


def signal(event: SignalEmitted) -> Message:
    return "strategy_signal", signal_data(event.signal)


def signal_data(sig: Signal) -> Payload:
    return {
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
    change = event.change
    pnl = change.realized_pnl if change is not None and change.applied else None
    return "strategy_trade", {**trade_data(event.fill), "realizedPnl": pnl}


def trade_data(fill: Fill) -> Payload:
    filled_at = iso_utc(fill.ts)  # both fields say when it filled: formatted once
    data: Payload = {
        "id": fill.id,
        "strategyId": fill.strategy_id,
        "orderId": fill.order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "entryPrice": fill.price,
        "entryTime": filled_at,
        "status": fill.status.value,
        "timestamp": filled_at,
    }
    if fill.reason is not None:
        data["reason"] = fill.reason
    return data


# ---------------------------------------------------------------- market data (3001)


def quote_data(tick: Tick) -> Payload:
    return {
        "symbol": tick.symbol,
        "price": tick.price,
        "size": tick.size,
        "timestamp": iso_utc(tick.ts),
    }


def bar_data(bar: Bar) -> Payload:
    return {
        "symbol": bar.symbol,
        "resolution": bar.resolution,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "start": iso_utc(bar.start),
        "end": iso_utc(bar.end),
    }


def quote(event: QuoteUpdated) -> Message:
    return "quote", quote_data(event.tick)


def bar(event: BarClosed) -> Message:
    return "bar", bar_data(event.bar)


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


def position_mismatch(event: PositionMismatch) -> Message:
    return "position_mismatch", {
        "venue": event.venue,
        "asset": event.asset,
        "expected": event.expected,
        "actual": event.actual,
        "difference": event.actual - event.expected,
        "strategies": list(event.strategies),
        "action": "ACKNOWLEDGED" if event.acknowledged else "REDUCE_ONLY",
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


def risk_status_data(
    snapshot: RiskSnapshot,
    execution: ExecutionService,
    statuses: Mapping[str, StrategyStatus],
) -> Payload:
    halt = execution.halt
    config = snapshot.config
    switch = (
        kill_switch_data(True, halt.reason, halt.block_all, halt.source.value, halt.since)
        if halt is not None
        else kill_switch_data(False, None, False, None, None)
    )
    return {
        "executionStatus": execution.status.value,
        "killSwitch": switch,
        "limits": {
            "maxGrossExposure": config.max_gross_exposure,
            "maxOrdersPerSecond": config.max_orders_per_second,
            "maxDailyLoss": config.max_daily_loss,
            "positionLimitMode": config.position_limit_mode,
        },
        "usage": {
            "grossExposure": snapshot.gross_exposure,
            "ordersLastSecond": snapshot.orders_last_second,
            "dailyPnl": snapshot.daily_pnl,
            "dailyLoss": max(0.0, -snapshot.daily_pnl),
            "dayStart": iso_utc(snapshot.day_start),
        },
        "strategies": [
            _strategy_risk_data(s, statuses.get(s.strategy_id, StrategyStatus.STOPPED))
            for s in snapshot.strategies
        ],
    }


def _strategy_risk_data(risk: StrategyRisk, status: StrategyStatus) -> Payload:
    return {
        "strategyId": risk.strategy_id,
        "status": status.value,
        "limits": _limits_data(risk.limits) if risk.limits is not None else None,
        "exposure": risk.exposure,
        "ordersLastMinute": risk.orders_last_minute,
        "realizedPnl": risk.realized_pnl,
        "unrealizedPnl": risk.unrealized_pnl,
        "positions": [{**position_data(p), "stopPrice": p.stop_price} for p in risk.positions],
    }


def _limits_data(limits: StrategyRunConfig) -> Payload:
    return {
        "maxPositionValue": limits.max_position_value,
        "maxOrdersPerMinute": limits.max_orders_per_minute,
        "stopLossPercentage": limits.stop_loss_percentage,
    }


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


def job_progress(event: JobProgress) -> Message:
    data = {
        "jobId": event.job_id,
        "jobType": event.job_type,
        "fraction": event.fraction,
        "barsDone": event.done,
        "barsTotal": event.total,
    }
    return "backtest_progress", data


def backtest_report(job_id: str, page: Payload) -> Payload:
    """The ``backtest_report`` reply: the job and one page of its report (snake_case
    inside, as the job's result)."""
    return {"jobId": job_id, "report": page}


# ---------------------------------------------------------------- history on load (dashboard)


def recent_activity_data(trades: list[JournaledTrade], signals: list[Signal]) -> Payload:
    """``recent_activity``: the journal's last trades and signals, oldest first.

    A trade is ``strategy_trade``'s data and ``realizedPnl``, what the fill added to its
    position's realized P&L (commission included; null when it moved no position)."""
    return {
        "trades": [{**trade_data(t.fill), "realizedPnl": t.realized_pnl} for t in trades],
        "signals": [signal_data(s) for s in signals],
    }


def bars_data(symbol: str, resolution: str, bars: Sequence[Bar]) -> Payload:
    """``bars``: closed bars of one symbol at one resolution, oldest first."""
    return {"symbol": symbol, "resolution": resolution, "bars": [bar_data(b) for b in bars]}


# ---------------------------------------------------------------- the table


MESSAGES: Final[Mapping[type[Any], Callable[[Any], Message]]] = {
    StrategyStatusChanged: status_change,
    ExecutionStatusChanged: execution_status,
    SignalEmitted: signal,
    TradeExecuted: trade,
    OrderSubmitted: order_submitted,
    QuoteUpdated: quote,
    BarClosed: bar,
    OrderRejected: order_rejected,
    OrderReduced: order_reduced,
    StopLossTriggered: stop_loss_triggered,
    LimitBreached: limit_breach,
    KillSwitchChanged: kill_switch,
    PositionMismatch: position_mismatch,
    JobStateChanged: job_state,
    JobProgress: job_progress,
}
"""The message of every event, as the WebSocket servers and NNG send it. Which
server sends which to whom is the routes' business (:mod:`gateways.api.routes`)."""

_FOLLOWED_NOT_BROADCAST = frozenset({QuoteUpdated, BarClosed, OrderSubmitted})
"""Quotes and bars go to their channels' members only; no client sees an order on
its way (NNG does)."""


def event_message(event: Event) -> Message | None:
    """The message a server sends to every client for ``event``, or None if it sends
    it to no client or only to the members of a channel."""
    if type(event) in _FOLLOWED_NOT_BROADCAST:
        return None
    build = MESSAGES.get(type(event))
    return build(event) if build is not None else None


def nng_message(event: Event) -> Message:
    """The ``type`` and ``data`` NNG publishes for ``event``: its WebSocket message,
    but dgbit's job.* for a job (as on the dgbit streams), and for an event added
    later without a message, its topic and its fields (so that none is lost)."""
    if isinstance(event, JobStateChanged | JobProgress):
        kind, payload, _ = dgbit_job(event)
        return kind, payload
    build = MESSAGES.get(type(event))
    return build(event) if build is not None else (str(event.topic), event)


def preencoded(message: Message) -> Message:
    """``message`` with its data as JSON already, which every envelope embeds as is."""
    kind, data = message
    return kind, orjson.Fragment(orjson.dumps(data))


_UNBUILT: Any = object()


class Outgoing:
    """One delivered event on its way out, and its message, built once when first asked.

    The composition root makes one per event and hands the same object to every
    server and to the NNG publisher, so the payload and its JSON are built once
    however many servers and subscribers send it, and not at all if none does.
    """

    __slots__ = ("_message", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self._message: Message | None = _UNBUILT

    @property
    def message(self) -> Message | None:
        """The event's message from :data:`MESSAGES`, its data JSON already (None: it has
        none)."""
        if self._message is _UNBUILT:
            build = MESSAGES.get(type(self.event))
            self._message = preencoded(build(self.event)) if build is not None else None
        return self._message

    @property
    def nng_message(self) -> Message:
        """What NNG publishes (:func:`nng_message`): the same object as :attr:`message`
        wherever NNG sends the WebSocket message."""
        if not isinstance(self.event, JobStateChanged | JobProgress):
            shared = self.message
            if shared is not None:
                return shared
        return preencoded(nng_message(self.event))


# ---------------------------------------------------------------- dgbit (8082 /api/ws/...)


def _direction(sign: int) -> str:
    return "long" if sign > 0 else "short"


def _confidence_label(confidence: float) -> str:
    if confidence >= 0.7:
        return "high"
    if confidence >= 0.4:
        return "medium"
    return "low"


def dgbit_job(event: JobStateChanged | JobProgress) -> DgbitMessage:
    """job.created, job.started, job.completed or job.failed, by the job's status;
    job.progress while it runs."""
    if isinstance(event, JobProgress):
        return JOB_PROGRESS, dgbit_progress(event), event.job_id
    payload: Payload = {
        "job_id": event.job_id,
        "job_type": event.job_type,
        "status": str(event.status),
    }
    if event.status is JobStatus.COMPLETED:
        payload["result"] = event.result
    if event.status is JobStatus.FAILED:
        payload["error"] = event.error
    return event.event_type, payload, event.job_id


def dgbit_progress(event: JobProgress) -> Payload:
    return {
        "job_id": event.job_id,
        "job_type": event.job_type,
        "status": str(JobStatus.RUNNING),
        "progress": event.fraction,
        "bars_done": event.done,
        "bars_total": event.total,
    }


class DgbitTranslator:
    """Turns core events into dgbit messages; remembers why each order exists."""

    def __init__(self) -> None:
        self._purposes: dict[str, OrderPurpose] = {}

    def messages(self, event: Event) -> list[DgbitMessage]:
        if isinstance(event, OrderSubmitted):
            self._purposes[event.order.id] = event.order.purpose
            return []
        if isinstance(event, TradeExecuted):
            purpose = self._purposes.pop(event.fill.order_id, OrderPurpose.SIGNAL)
            change = event.change
            return self._trade(change, event.stop_price, purpose) if change is not None else []
        if isinstance(event, SignalEmitted):
            return [self._signal(event)]
        if isinstance(event, JobStateChanged | JobProgress):
            return [dgbit_job(event)]
        return []

    def _trade(
        self, change: PositionChange, stop_price: float | None, purpose: OrderPurpose
    ) -> list[DgbitMessage]:
        messages: list[DgbitMessage] = []
        if change.is_exit:
            messages.append(("trade.exited", self._exited(change, purpose), None))
        if change.is_entry:
            messages.append(("trade.entered", self._entered(change, stop_price), None))
        return messages

    def _entered(self, change: PositionChange, stop_price: float | None) -> Payload:
        fill = change.fill
        return {
            "symbol": fill.symbol,
            "side": _direction(change.opened_direction),
            "quantity": change.opened_quantity,
            "entry_price": change.entry_price_after,
            "take_profit": None,
            "stop_loss": stop_price,
            "strategy": fill.strategy_id,
        }

    def _exited(self, change: PositionChange, purpose: OrderPurpose) -> Payload:
        cost = change.closed_quantity * change.entry_price_before
        commission_share = change.fill.commission * change.closed_quantity / change.fill.quantity
        pnl = change.closed_pnl - commission_share
        return {
            "symbol": change.symbol,
            "side": _direction(change.closed_direction),
            "quantity": change.closed_quantity,
            "entry_price": change.entry_price_before,
            "exit_price": change.exit_price,
            "exit_type": purpose.value,
            "pnl": pnl,
            "pnl_pct": pnl / cost * 100.0 if cost > 0 else 0.0,
            "duration_minutes": change.closed_duration_minutes,
        }

    def _signal(self, event: SignalEmitted) -> DgbitMessage:
        signal = event.signal
        payload = {
            "strategy": signal.strategy_id,
            "symbol": signal.symbol,
            "signal_value": signal.confidence,
            "direction": _direction(1 if signal.action is Side.BUY else -1),
            "confidence": _confidence_label(signal.confidence),
        }
        return "signal.generated", payload, None
