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
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from orchestrator.backtest.engine import BacktestSpec, FileSource, FilesSource
from orchestrator.backtest.jobs import JobInfo
from orchestrator.journal.store import JournaledTrade, StreamRecord
from orchestrator.model.clock import iso_utc
from orchestrator.model.events import (
    JOB_PROGRESS,
    BarClosed,
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    FeedState,
    FeedStatusChanged,
    IndicatorsUpdated,
    JobProgress,
    JobStateChanged,
    JobStatus,
    KillSwitchChanged,
    LimitBreached,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderLifecycle,
    OrderPartiallyFilled,
    OrderReduced,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    OrderTriggered,
    PositionMismatch,
    QuoteUpdated,
    SignalEmitted,
    StopLossTriggered,
    StrategyStatus,
    StrategyStatusChanged,
    SweepProgress,
    Topic,
    TradeExecuted,
    VenueState,
)
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import (
    BUY,
    SELL,
    Bracket,
    Fill,
    Order,
    OrderPurpose,
    Side,
    Signal,
    Trailing,
)
from orchestrator.risk.guardian import RiskSnapshot, StrategyRisk
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.strategy.lines import IndicatorPoint, LineValues
from orchestrator.strategy.registry import StrategyView
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.portfolio import Account, Pnl, PositionChange

Payload = dict[str, Any]
Message = tuple[str, Any]
"""A message before encoding: its ``type`` and its ``data``."""
DgbitMessage = tuple[str, Payload, str | None]
"""An event for dgbit clients: its type, its payload and the job it belongs to."""


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a message stands in its server's stream (additive envelope fields).
    ``journal``: the journal position of a committed event (a snapshot's: of the last
    one it shows), which outlives the daemon run; None for what the journal does not
    write."""

    seq: int | None
    epoch: int | None
    snapshot: bool = False
    journal: int | None = None


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
        if position.seq is not None:
            message["seq"] = position.seq
            message["epoch"] = position.epoch
        if position.journal is not None:
            message["position"] = position.journal
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
    entry: Payload = {
        "id": view.id,
        "name": view.name,
        "status": view.status.value,
        "symbols": list(view.symbols),
        "positions": [position_data(p) for p in view.positions],
        "params": dict(view.params),
    }
    if view.pnl is not None:
        entry.update(pnl_data(view.pnl))
    return entry


def pnl_data(pnl: Pnl) -> Payload:
    """The three P&L figures, named for their period (README: "P&L")."""
    return {
        "realizedPnlToday": pnl.realized_today,
        "realizedPnlSinceStart": pnl.realized_since_start,
        "unrealizedPnl": pnl.unrealized,
    }


def account_data(account: Account) -> Payload:
    return {
        "equity": account.equity,
        "cash": account.cash,
        "exposure": account.exposure,
        **pnl_data(account.pnl),
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
    applied = change is not None and change.applied
    return "strategy_trade", {
        **trade_data(event.fill),
        "realizedPnl": change.realized_pnl if change is not None and applied else None,
        "positionQuantity": change.quantity_after if change is not None and applied else None,
        "purpose": event.purpose.value,
    }


def journaled_trade(trade: JournaledTrade) -> Message:
    """``strategy_trade`` as read back from the journal: the same message as the live one."""
    return "strategy_trade", journaled_trade_data(trade)


def journaled_trade_data(trade: JournaledTrade) -> Payload:
    """A journaled fill as ``strategy_trade``'s data."""
    return {
        **trade_data(trade.fill),
        "realizedPnl": trade.realized_pnl,
        "positionQuantity": trade.position_quantity,
        "purpose": trade.purpose.value,
    }


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
    if fill.remaining > 0.0:
        # Partial fills: the seed has no PARTIAL status, so a part says it beside FILLED.
        data["partial"] = True
        data["remainingQuantity"] = fill.remaining
    return data


# ---------------------------------------------------------------- resting orders (8082)


def _trailing_data(trailing: Trailing | None) -> Payload | None:
    if trailing is None:
        return None
    return {"amount": trailing.amount, "fraction": trailing.fraction}


def order_data(order: Order) -> Payload:
    """A resting order as ``open_orders`` and every order lifecycle message show it.
    ``stopPrice`` is the stop it waits for (a trailing stop's, when last announced);
    ``stopLoss``/``takeProfit``/``trailing`` are an entry's bracket, armed by its fill,
    and ``parentId`` an exit's entry."""
    bracket = order.bracket
    return {
        "orderId": order.id,
        "strategyId": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "quantity": order.quantity,
        "orderType": order.order_type.value,
        "limitPrice": order.limit_price,
        "stopPrice": order.stop_price,
        "timeInForce": order.time_in_force.value,
        "purpose": order.purpose.value,
        "parentId": order.parent_id,
        "stopLoss": bracket.stop_loss if bracket is not None else None,
        "takeProfit": bracket.take_profit if bracket is not None else None,
        "trailing": _trailing_data(order.trailing or (bracket.trailing if bracket else None)),
        "placedAt": iso_utc(order.ts),
    }


def open_orders_data(
    strategy_id: str | None, orders: Sequence[Order], filled: Callable[[str], float]
) -> Payload:
    """The ``open_orders`` reply: every committed resting order (of one strategy), with
    ``filled``, what its parts filled so far (partial fills; its ``quantity`` rests)."""
    return {
        "strategyId": strategy_id,
        "orders": [order_data(order) | {"filled": filled(order.id)} for order in orders],
    }


def order_accepted(event: OrderAccepted) -> Message:
    return "order_accepted", {**order_data(event.order), "timestamp": iso_utc(event.ts)}


def order_triggered(event: OrderTriggered) -> Message:
    return "order_triggered", {
        **order_data(event.order),
        "triggerPrice": event.price,
        "timestamp": iso_utc(event.ts),
    }


def order_cancelled(event: OrderCancelled) -> Message:
    return "order_cancelled", {
        **order_data(event.order),
        "reason": event.reason,
        "timestamp": iso_utc(event.ts),
    }


def order_replaced(event: OrderReplaced) -> Message:
    previous = event.previous
    return "order_replaced", {
        **order_data(event.order),
        "previous": {
            "quantity": previous.quantity,
            "limitPrice": previous.limit_price,
            "stopPrice": previous.stop_price,
        },
        "timestamp": iso_utc(event.ts),
    }


def order_partially_filled(event: OrderPartiallyFilled) -> Message:
    """``quantity`` is what rests now; the part is ``filledQuantity`` at ``fillPrice``."""
    return "order_partially_filled", {
        **order_data(event.order),
        "filledQuantity": event.filled_quantity,
        "fillPrice": event.fill_price,
        "timestamp": iso_utc(event.ts),
    }


def order_expired(event: OrderExpired) -> Message:
    return "order_expired", {
        **order_data(event.order),
        "reason": event.reason,
        "timestamp": iso_utc(event.ts),
    }


# ---------------------------------------------------------------- market data (3001)


def quote_data(tick: Tick) -> Payload:
    return {
        "symbol": tick.symbol,
        "price": tick.price,
        "size": tick.size,
        "timestamp": iso_utc(tick.ts),
    }


def feed_status(event: FeedStatusChanged) -> Message:
    return "feed_status", feed_state_data(event.state)


def feed_state_data(state: FeedState) -> Payload:
    """The broadcast's data and the 3001 snapshot's alike."""
    return {
        "kind": state.kind,
        "source": state.source,
        "state": state.condition.value,
        "since": iso_utc(state.since),
        "reason": state.reason,
        "lastData": None if state.last_data is None else iso_utc(state.last_data),
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


def indicators(event: IndicatorsUpdated) -> Message:
    return "strategy_indicators", {
        "strategyId": event.strategy_id,
        "symbol": event.symbol,
        "resolution": event.resolution,
        **indicator_point_data(event.start, event.values),
    }


def indicator_point_data(start: float, values: LineValues) -> Payload:
    """One point of a strategy's lines: its bar's start and each line's value by name."""
    return {"start": iso_utc(start), "values": dict(values)}


def indicator_history_data(
    strategy_id: str, symbol: str, resolution: str | None, points: Sequence[IndicatorPoint]
) -> Payload:
    """``indicators``: the recent points of one strategy's lines in one symbol."""
    return {
        "strategyId": strategy_id,
        "symbol": symbol,
        "resolution": resolution,
        "points": [indicator_point_data(p.start, p.values) for p in points],
    }


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
    account: Account,
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
        "account": account_data(account),
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
        "realizedPnl": risk.realized_pnl,  # since start, as before the three figures
        **pnl_data(risk.pnl),
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


def job_request(spec: BacktestSpec, info: JobInfo, data_dir: Path | None) -> Payload:
    """What a job runs and when (replies and listings; a broadcast state has the id only):
    a file's path as the client named it, relative to ``data_dir``."""
    source = spec.source
    described: Payload = {"kind": source.kind}
    if isinstance(source, FileSource):
        described["path"] = _as_named(source.path, data_dir)
    elif isinstance(source, FilesSource):
        described["paths"] = {symbol: _as_named(p, data_dir) for symbol, p in source.paths.items()}
    else:
        described |= {
            "resolution": source.resolution or spec.run_config.data_resolution,
            "durationSeconds": source.duration_seconds,
            "seed": source.seed,
        }
    return {
        "strategyId": spec.strategy.id,
        "strategyName": spec.strategy.name,
        "symbol": spec.traded_symbol,
        "symbols": _several_symbols(spec),
        "source": described,
        "params": dict(spec.strategy.params),
        "initialCapital": spec.initial_capital,
        "partialFills": spec.partial_fills,
        "maxVolumeFraction": spec.max_volume_fraction,
        "createdAt": iso_utc(info.created_at),
        "finishedAt": iso_utc(info.finished_at) if info.finished_at is not None else None,
    }


def _several_symbols(spec: BacktestSpec) -> list[str] | None:
    """The symbols of a job of several (``symbols``, or a files source's keys); else None."""
    several = spec.symbols is not None or isinstance(spec.source, FilesSource)
    return list(spec.traded_symbols) if several else None


def _as_named(path: Path, data_dir: Path | None) -> str:
    """A file's path as the client named it: relative to ``data_dir`` when inside it."""
    root = data_dir.resolve() if data_dir is not None else None
    inside = root is not None and path.is_relative_to(root)
    return str(path.relative_to(root) if inside and root else path)


def job_state(event: JobStateChanged) -> Message:
    """``backtest_job``, or ``sweep_job`` for a sweep."""
    return f"{event.job_type}_job", job_data(event)


def job_progress(event: JobProgress) -> Message:
    data = {
        "jobId": event.job_id,
        "jobType": event.job_type,
        "fraction": event.fraction,
        "barsDone": event.done,
        "barsTotal": event.total,
    }
    return "backtest_progress", data


def sweep_progress(event: SweepProgress) -> Message:
    data = {
        "jobId": event.job_id,
        "jobType": event.job_type,
        "fraction": event.fraction,
        "trialsDone": event.done,
        "trialsTotal": event.total,
        "bestValue": event.best_value,
        "bestParams": dict(event.best_params) if event.best_params is not None else None,
        "etaSeconds": event.eta_seconds,
    }
    return "sweep_progress", data


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
        "trades": [journaled_trade_data(t) for t in trades],
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
    OrderAccepted: order_accepted,
    OrderTriggered: order_triggered,
    OrderCancelled: order_cancelled,
    OrderReplaced: order_replaced,
    OrderExpired: order_expired,
    OrderPartiallyFilled: order_partially_filled,
    QuoteUpdated: quote,
    BarClosed: bar,
    FeedStatusChanged: feed_status,
    IndicatorsUpdated: indicators,
    OrderRejected: order_rejected,
    OrderReduced: order_reduced,
    StopLossTriggered: stop_loss_triggered,
    LimitBreached: limit_breach,
    KillSwitchChanged: kill_switch,
    PositionMismatch: position_mismatch,
    JobStateChanged: job_state,
    JobProgress: job_progress,
    SweepProgress: sweep_progress,
}
"""The message of every event, as the WebSocket servers and NNG send it. Which
server sends which to whom is the routes' business (:mod:`gateways.api.routes`)."""

_FOLLOWED_NOT_BROADCAST = frozenset({QuoteUpdated, BarClosed, OrderSubmitted})
"""Quotes and bars go to their channels' members only; no client sees an order on
its way (NNG does)."""


def stream_message(record: StreamRecord) -> tuple[Topic, Message]:
    """The topic and message of an event read back from the journal (a resume after a
    restart): what was sent when it was delivered, built by the same functions."""
    if isinstance(record, JournaledTrade):
        return Topic.STRATEGY_TRADE, journaled_trade(record)
    return record.topic, MESSAGES[type(record)](record)


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
    if isinstance(event, JobStateChanged | JobProgress | SweepProgress):
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

    __slots__ = ("_message", "event", "position")

    def __init__(self, event: Event, position: int | None = None) -> None:
        self.event = event
        self.position = position
        """The event's journal position (None: the journal does not write it)."""
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
        if not isinstance(self.event, JobStateChanged | JobProgress | SweepProgress):
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


def dgbit_job(event: JobStateChanged | JobProgress | SweepProgress) -> DgbitMessage:
    """job.created, job.started, job.completed or job.failed, by the job's status;
    job.progress while it runs."""
    if isinstance(event, JobProgress):
        return JOB_PROGRESS, dgbit_progress(event), event.job_id
    if isinstance(event, SweepProgress):
        return JOB_PROGRESS, dgbit_sweep_progress(event), event.job_id
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


def dgbit_sweep_progress(event: SweepProgress) -> Payload:
    return {
        "job_id": event.job_id,
        "job_type": event.job_type,
        "status": str(JobStatus.RUNNING),
        "progress": event.fraction,
        "trials_done": event.done,
        "trials_total": event.total,
        "best_value": event.best_value,
        "best_params": dict(event.best_params) if event.best_params is not None else None,
        "eta_seconds": event.eta_seconds,
    }


ORDER_EVENT_TYPES: Final[Mapping[type[Any], str]] = {
    OrderAccepted: "order.accepted",
    OrderTriggered: "order.triggered",
    OrderCancelled: "order.cancelled",
    OrderReplaced: "order.replaced",
    OrderExpired: "order.expired",
    OrderPartiallyFilled: "order.partially_filled",
}
"""The dgbit event type of each order lifecycle event (ours: dgbit's document has none)."""


def dgbit_order(event: OrderLifecycle) -> DgbitMessage:
    """An order lifecycle event in dgbit's style: dotted type, snake_case payload."""
    order, bracket = event.order, event.order.bracket
    payload: Payload = {
        "order_id": order.id,
        "strategy": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side.value.lower(),
        "quantity": order.quantity,
        "order_type": order.order_type.value.lower(),
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "time_in_force": order.time_in_force.value,
        "purpose": order.purpose.value,
        "parent_id": order.parent_id,
        "stop_loss": bracket.stop_loss if bracket is not None else None,
        "take_profit": bracket.take_profit if bracket is not None else None,
    }
    if isinstance(event, OrderTriggered):
        payload["trigger_price"] = event.price
    if isinstance(event, OrderCancelled | OrderExpired):
        payload["reason"] = event.reason
    if isinstance(event, OrderPartiallyFilled):
        payload["filled_quantity"] = event.filled_quantity
        payload["fill_price"] = event.fill_price
    return ORDER_EVENT_TYPES[type(event)], payload, None


def bracket_exits(
    bracket: Bracket | None, price: float, direction: int
) -> tuple[float | None, ...]:
    """(take_profit, stop_loss) the fill of an entry with ``bracket`` at ``price``
    arms, ``direction`` +1 for a long: a trailing stop starts at its stop-loss when it
    has one, else ``price`` less its distance (as the pipeline arms it)."""
    if bracket is None:
        return None, None
    stop = bracket.stop_loss
    if stop is None and bracket.trailing is not None:
        stop = bracket.trailing.stop_from(price, SELL if direction > 0 else BUY)
    return bracket.take_profit, stop


class DgbitTranslator:
    """Turns core events into dgbit messages; remembers why each order exists and
    the bracket it carries."""

    def __init__(self) -> None:
        self._orders: dict[str, tuple[OrderPurpose, Bracket | None]] = {}

    def remember(self, event: Event) -> None:
        """What :meth:`messages` keeps of ``event`` (an order's purpose and bracket, until
        its fill), without building its messages: for an event nobody is sent."""
        if isinstance(event, OrderSubmitted):
            self._orders[event.order.id] = (event.order.purpose, event.order.bracket)
        elif isinstance(event, TradeExecuted):
            self._order_of(event.fill)

    def _order_of(self, fill: Fill) -> tuple[OrderPurpose, Bracket | None]:
        orders = self._orders
        # A part (partial fills) leaves its order's purpose for the next parts.
        known = orders.get(fill.order_id) if fill.remaining > 0.0 else None
        return known or orders.pop(fill.order_id, (OrderPurpose.SIGNAL, None))

    def messages(self, event: Event) -> list[DgbitMessage]:
        if isinstance(event, OrderSubmitted):
            self.remember(event)
            return []
        if isinstance(event, TradeExecuted):
            purpose, bracket = self._order_of(event.fill)
            change = event.change
            if change is None:
                return []
            return self._trade(change, event.stop_price, purpose, bracket)
        if isinstance(event, SignalEmitted):
            return [self._signal(event)]
        if isinstance(event, JobStateChanged | JobProgress | SweepProgress):
            return [dgbit_job(event)]
        if isinstance(
            event,
            OrderAccepted
            | OrderTriggered
            | OrderCancelled
            | OrderReplaced
            | OrderExpired
            | OrderPartiallyFilled,
        ):
            return [dgbit_order(event)]
        return []

    def _trade(
        self,
        change: PositionChange,
        stop_price: float | None,
        purpose: OrderPurpose,
        bracket: Bracket | None,
    ) -> list[DgbitMessage]:
        messages: list[DgbitMessage] = []
        if change.is_exit:
            messages.append(("trade.exited", self._exited(change, purpose), None))
        if change.is_entry:
            messages.append(("trade.entered", self._entered(change, stop_price, bracket), None))
        return messages

    def _entered(
        self, change: PositionChange, stop_price: float | None, bracket: Bracket | None
    ) -> Payload:
        fill = change.fill
        # The bracket's exits are the trade's; without one, the guardian's stop-loss.
        take_profit, stop_loss = bracket_exits(bracket, fill.price, change.opened_direction)
        return {
            "symbol": fill.symbol,
            "side": _direction(change.opened_direction),
            "quantity": change.opened_quantity,
            "entry_price": change.entry_price_after,
            "take_profit": take_profit,
            "stop_loss": stop_loss if stop_loss is not None else stop_price,
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
