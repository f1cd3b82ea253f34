"""The dgbit event API on the orchestrator server: ``/api/ws/events`` and
``/api/ws/jobs/{job_uuid}``.

Envelope ``{"type", "timestamp", "payload"}`` with exactly the event types and
payload fields of the dgbit document: ``job.created``, ``job.started``,
``job.completed``, ``job.failed``, ``trade.entered``, ``trade.exited``,
``signal.generated``, and ours for resting orders in the same style:
``order.accepted``, ``order.triggered``, ``order.cancelled``, ``order.replaced``,
``order.expired``. The messages are built by :mod:`gateways.api.outbound`;
each is encoded once and written to every client whose filter admits it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.frames import CloseCode
from websockets.http11 import Response

from gateways.api.outbound import ORDER_EVENT_TYPES, DgbitTranslator, Outgoing, encode_dgbit
from gateways.config import ConnectionConfig
from gateways.ws.budget import Admission, MessageBudget
from orchestrator.model.clock import Clock
from orchestrator.model.events import JOB_EVENT_TYPES, JOB_PROGRESS, ORDER_TOPICS, Topic

log = structlog.get_logger("gateways.dgbit")

JOB_EVENTS = tuple(JOB_EVENT_TYPES.values())
EVENT_TYPES = (
    *JOB_EVENTS,
    JOB_PROGRESS,
    "trade.entered",
    "trade.exited",
    "signal.generated",
    *ORDER_EVENT_TYPES.values(),
)
EVENTS_PATH = "/api/ws/events"
JOBS_PATH = re.compile(r"^/api/ws/jobs/(?P<job>[^/]+)$")
DGBIT_TOPICS = frozenset(
    {
        Topic.ORDER_SUBMITTED,
        Topic.STRATEGY_TRADE,
        Topic.STRATEGY_SIGNAL,
        Topic.JOB,
        Topic.JOB_PROGRESS,
        *ORDER_TOPICS,
    }
)
"""The bus topics the dgbit messages come from (orders: why each trade happened)."""

JobExists = Callable[[str], bool]


UNKNOWN_JOB_CLOSE = 4404
"""Close code for a job path whose job does not exist, found once the client
authenticated by message (before that, a stranger must not learn which ids exist)."""


class DgbitEndpoints:
    """Both dgbit paths; an Endpoint of the orchestrator server."""

    def __init__(
        self,
        translator: DgbitTranslator,
        clock: Clock,
        job_exists: JobExists,
        limits: ConnectionConfig,
    ) -> None:
        self._translator = translator
        self._clock = clock
        self._job_exists = job_exists
        self._limits = limits
        self._closing: set[asyncio.Task[None]] = set()
        """Flood closes in progress, referenced until they end."""
        self._by_type: dict[str, set[ServerConnection]] = {kind: set() for kind in EVENT_TYPES}
        self._filters: dict[ServerConnection, frozenset[str]] = {}
        self._by_job: dict[str, set[ServerConnection]] = {}

    # ------------------------------------------------------------ bus

    def publish(self, outgoing: Outgoing) -> None:
        if not self._filters and not self._by_job:
            # Nobody on either path: no payload to build, only what later ones need.
            self._translator.remember(outgoing.event)
            return
        for kind, payload, job_id in self._translator.messages(outgoing.event):
            watchers = self._by_type[kind]
            job_watchers = self._by_job.get(job_id, set()) if job_id is not None else set()
            if not watchers and not job_watchers:
                continue
            frame = encode_dgbit(kind, payload, self._clock.now())
            broadcast(watchers | job_watchers, frame, text=True)

    # ------------------------------------------------------------ Endpoint

    def match(self, path: str) -> tuple[str, str | None] | None:
        if path == EVENTS_PATH:
            return ("events", None)
        found = JOBS_PATH.match(path)
        return ("job", found.group("job")) if found else None

    def admit(
        self, connection: ServerConnection, route: tuple[str, str | None], known: bool
    ) -> Response | None:
        kind, job = route
        if kind != "job" or job is None:
            return None
        try:
            canonical = str(uuid.UUID(job))
        except ValueError:
            return connection.respond(
                HTTPStatus.BAD_REQUEST, f"{job[:64]!r} is not a job uuid (e.g. 550e8400-e29b-...)\n"
            )
        if known and not self._job_exists(canonical):
            return connection.respond(HTTPStatus.NOT_FOUND, f"No job {canonical}\n")
        return None  # a stranger is told after it authenticates (see _serve_job)

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
            await self._answer_each(ws, lambda frame: self._answer(ws, frame))
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
            return encode_dgbit("pong", {}, now)
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
        return encode_dgbit("filter.updated", {"events": sorted(chosen)}, now)

    def _set_filter(self, ws: ServerConnection, chosen: frozenset[str]) -> None:
        for kind in self._filters.get(ws, frozenset()) - chosen:
            self._by_type[kind].discard(ws)
        for kind in chosen:
            self._by_type[kind].add(ws)
        self._filters[ws] = chosen

    # ------------------------------------------------------------ /api/ws/jobs/{uuid}

    async def _serve_job(self, ws: ServerConnection, job_id: str) -> None:
        if not self._job_exists(job_id):
            await ws.close(UNKNOWN_JOB_CLOSE, f"No job {job_id}")
            return
        hello = {"type": "subscribed", "job_uuid": job_id, "message": f"Subscribed to job {job_id}"}
        # Written and registered without awaiting in between: no job event can
        # slip before the hello or be missed after it.
        broadcast([ws], orjson.dumps(hello), text=True)
        watchers = self._by_job.setdefault(job_id, set())
        watchers.add(ws)
        ack = orjson.dumps({"type": "ack", "job_uuid": job_id})
        try:
            await self._answer_each(ws, lambda _: ack)
        finally:
            watchers.discard(ws)
            if not watchers:
                self._by_job.pop(job_id, None)

    async def _answer_each(self, ws: ServerConnection, answer: Callable[[Any], bytes]) -> None:
        """Answer every message within the connection's budget, as the main path does:
        one over it gets ``rate_limited``, a flood closes the connection with 1008."""
        budget = MessageBudget(self._limits, log.bind(path=ws.request.path if ws.request else ""))
        async for frame in ws:
            admission = budget.admit()
            if admission is Admission.SERVE:
                await ws.send(answer(frame), text=True)
            elif admission is Admission.REFUSE:
                await ws.send(
                    _error("rate_limited", budget.refusal(), self._clock.now()), text=True
                )
            elif admission is Admission.CLOSE:
                # Not awaited here: the loop goes on draining what the client sent, or
                # its close frame would wait behind them for close_timeout.
                closing = asyncio.get_running_loop().create_task(
                    ws.close(CloseCode.POLICY_VIOLATION, "command flood")
                )
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)


def _error(code: str, message: str, now: float) -> bytes:
    return encode_dgbit("error", {"code": code, "message": message}, now)
