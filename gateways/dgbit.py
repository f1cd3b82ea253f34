"""The dgbit event API on the orchestrator server: ``/api/ws/events`` and
``/api/ws/jobs/{job_uuid}``.

Envelope ``{"type", "timestamp", "payload"}`` with exactly the event types and
payload fields of the dgbit document: ``job.created``, ``job.started``,
``job.completed``, ``job.failed``, ``trade.entered``, ``trade.exited``,
``signal.generated``. Each event is encoded once and written to every client
whose filter admits it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.http11 import Response

from orchestrator.model.clock import Clock, iso_utc
from orchestrator.model.events import Event, OrderSubmitted, SignalEmitted, TradeExecuted
from orchestrator.model.orders import OrderPurpose, Side
from orchestrator.trading.portfolio import PositionChange

log = structlog.get_logger("gateways.dgbit")

JOB_EVENTS = ("job.created", "job.started", "job.completed", "job.failed")
EVENT_TYPES = (*JOB_EVENTS, "trade.entered", "trade.exited", "signal.generated")
EVENTS_PATH = "/api/ws/events"
JOBS_PATH = re.compile(r"^/api/ws/jobs/(?P<job>[^/]+)$")

Payload = dict[str, Any]
DgbitMessage = tuple[str, Payload, str | None]
"""An event for dgbit clients: its type, its payload and the job it belongs to."""

StopLossOf = Callable[[str], float]
"""The stop-loss fraction of a strategy (0 when it has none)."""
JobExists = Callable[[str], bool]


def encode(kind: str, payload: Payload, ts: float) -> bytes:
    return orjson.dumps({"type": kind, "timestamp": iso_utc(ts), "payload": payload})


def _direction(sign: int) -> str:
    return "long" if sign > 0 else "short"


def _confidence_label(confidence: float) -> str:
    if confidence >= 0.7:
        return "high"
    if confidence >= 0.4:
        return "medium"
    return "low"


class DgbitTranslator:
    """Turns core events into dgbit messages; remembers why each order exists."""

    def __init__(self, stop_loss_of: StopLossOf) -> None:
        self._stop_loss_of = stop_loss_of
        self._purposes: dict[str, OrderPurpose] = {}

    def messages(self, event: Event) -> list[DgbitMessage]:
        if isinstance(event, OrderSubmitted):
            self._purposes[event.order.id] = event.order.purpose
            return []
        if isinstance(event, TradeExecuted):
            purpose = self._purposes.pop(event.fill.order_id, OrderPurpose.SIGNAL)
            return self._trade(event.change, purpose) if event.change is not None else []
        if isinstance(event, SignalEmitted):
            return [self._signal(event)]
        job = _job_message(event)
        return [job] if job is not None else []

    def _trade(self, change: PositionChange, purpose: OrderPurpose) -> list[DgbitMessage]:
        messages: list[DgbitMessage] = []
        if change.is_exit:
            messages.append(("trade.exited", self._exited(change, purpose), None))
        if change.is_entry:
            messages.append(("trade.entered", self._entered(change), None))
        return messages

    def _entered(self, change: PositionChange) -> Payload:
        fill = change.fill
        direction = change.opened_direction
        fraction = self._stop_loss_of(fill.strategy_id)
        entry = change.entry_price_after
        return {
            "symbol": fill.symbol,
            "side": _direction(direction),
            "quantity": change.opened_quantity,
            "entry_price": entry,
            "take_profit": None,
            "stop_loss": entry * (1 - direction * fraction) if fraction > 0 else None,
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


_JOB_KINDS = {
    "pending": "job.created",
    "running": "job.started",
    "completed": "job.completed",
    "failed": "job.failed",
}


def _job_message(event: Event) -> DgbitMessage | None:
    """job.* from a job event, read by attribute so the core keeps its own type."""
    job: Any = event
    job_id, status = getattr(job, "job_id", None), getattr(job, "status", None)
    kind = _JOB_KINDS.get(str(status)) if job_id is not None else None
    if kind is None:
        return None
    payload: Payload = {"job_id": job_id, "job_type": job.job_type, "status": str(status)}
    if kind == "job.completed":
        payload["result"] = job.result
    if kind == "job.failed":
        payload["error"] = job.error
    return kind, payload, job_id


class DgbitEndpoints:
    """Both dgbit paths; an Endpoint of the orchestrator server."""

    def __init__(self, translator: DgbitTranslator, clock: Clock, job_exists: JobExists) -> None:
        self._translator = translator
        self._clock = clock
        self._job_exists = job_exists
        self._by_type: dict[str, set[ServerConnection]] = {kind: set() for kind in EVENT_TYPES}
        self._filters: dict[ServerConnection, frozenset[str]] = {}
        self._by_job: dict[str, set[ServerConnection]] = {}

    # ------------------------------------------------------------ bus

    def publish(self, event: Event) -> None:
        for kind, payload, job_id in self._translator.messages(event):
            watchers = self._by_type[kind]
            job_watchers = self._by_job.get(job_id, set()) if job_id is not None else set()
            if not watchers and not job_watchers:
                continue
            frame = encode(kind, payload, self._clock.now())
            broadcast(watchers | job_watchers, frame, text=True)

    # ------------------------------------------------------------ Endpoint

    def match(self, path: str) -> tuple[str, str | None] | None:
        if path == EVENTS_PATH:
            return ("events", None)
        found = JOBS_PATH.match(path)
        return ("job", found.group("job")) if found else None

    def admit(self, connection: ServerConnection, route: tuple[str, str | None]) -> Response | None:
        kind, job = route
        if kind != "job" or job is None:
            return None
        try:
            canonical = str(uuid.UUID(job))
        except ValueError:
            return connection.respond(
                HTTPStatus.BAD_REQUEST, f"{job[:64]!r} is not a job uuid (e.g. 550e8400-e29b-...)\n"
            )
        if not self._job_exists(canonical):
            return connection.respond(HTTPStatus.NOT_FOUND, f"No job {canonical}\n")
        return None

    async def serve(self, ws: ServerConnection, route: tuple[str, str | None]) -> None:
        kind, job = route
        if kind == "job" and job is not None:
            await self._serve_job(ws, str(uuid.UUID(job)))
        else:
            await self._serve_events(ws)

    # ------------------------------------------------------------ /api/ws/events

    async def _serve_events(self, ws: ServerConnection) -> None:
        self._set_filter(ws, frozenset(EVENT_TYPES))
        try:
            async for frame in ws:
                await ws.send(self._answer(ws, frame), text=True)
        finally:
            self._set_filter(ws, frozenset())
            self._filters.pop(ws, None)

    def _answer(self, ws: ServerConnection, frame: str | bytes) -> bytes:
        now = self._clock.now()
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return _error("invalid_json", "the message is not valid JSON", now)
        if not isinstance(message, dict):
            return _error("invalid_message", "send a JSON object", now)
        if message.get("type") == "ping":
            return encode("pong", {}, now)
        if message.get("type") != "filter":
            return _error(
                "unsupported_message",
                'this stream accepts {"type": "filter", "events": [...]} and {"type": "ping"}',
                now,
            )
        return self._apply_filter(ws, message.get("events"), now)

    def _apply_filter(self, ws: ServerConnection, events: Any, now: float) -> bytes:
        if events is None:
            chosen = frozenset(EVENT_TYPES)
        elif isinstance(events, list) and all(isinstance(e, str) for e in events):
            unknown = sorted(set(events) - set(EVENT_TYPES))
            if unknown:
                return _error(
                    "unknown_event_type",
                    f"unknown event types {unknown}; choose from {list(EVENT_TYPES)}",
                    now,
                )
            chosen = frozenset(events)
        else:
            return _error("invalid_message", '"events" must be a list of event type names', now)
        self._set_filter(ws, chosen)
        return encode("filter.updated", {"events": sorted(chosen)}, now)

    def _set_filter(self, ws: ServerConnection, chosen: frozenset[str]) -> None:
        for kind in self._filters.get(ws, frozenset()) - chosen:
            self._by_type[kind].discard(ws)
        for kind in chosen:
            self._by_type[kind].add(ws)
        self._filters[ws] = chosen

    # ------------------------------------------------------------ /api/ws/jobs/{uuid}

    async def _serve_job(self, ws: ServerConnection, job_id: str) -> None:
        hello = {"type": "subscribed", "job_uuid": job_id, "message": f"Subscribed to job {job_id}"}
        # Written and registered without awaiting in between: no job event can
        # slip before the hello or be missed after it.
        broadcast([ws], orjson.dumps(hello), text=True)
        watchers = self._by_job.setdefault(job_id, set())
        watchers.add(ws)
        try:
            async for _ in ws:
                await ws.send(orjson.dumps({"type": "ack", "job_uuid": job_id}), text=True)
        finally:
            watchers.discard(ws)
            if not watchers:
                self._by_job.pop(job_id, None)


def _error(code: str, message: str, now: float) -> bytes:
    return encode("error", {"code": code, "message": message}, now)
