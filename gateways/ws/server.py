"""One WebSocket server: connections, command dispatch, and event fan-out.

The three servers of the daemon are instances of :class:`WebSocketServer` that
differ in their path, the commands they accept and the events they publish.
Clients join *channels*; an event is encoded once, with the next ``seq`` of
this server's stream, kept in the replay window and written to every member of
its channel with websockets' ``broadcast``. A channel nobody is in, and that no
client can resume into any more, keeps nothing: the server then tells the
fan-out (``on_hearing``) that it does not hear the channel's topics, so their
events never reach it (a keyed channel such as ``quote:AAPL``, and the topics
sent to everyone while no client is connected).

Defences, each a named limit of :class:`ConnectionConfig`: frames over
``max_message_bytes`` close 1009 (websockets); connections over
``max_connections`` get HTTP 503; a client more than ``max_outbound_bytes``
behind is closed 1013; commands over ``commands_per_second`` are answered
``rate_limited`` and a flood of them closes 1008.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Origin

from gateways.api import outbound
from gateways.api.inbound import Command, CommandParser, ResumeStream, request_context
from gateways.api.outbound import Outgoing
from gateways.config import ConnectionConfig, SecurityConfig, ServerConfig
from gateways.ws.auth import RefusalLog, TokenChecker, bearer_token
from gateways.ws.budget import Admission, MessageBudget
from gateways.ws.observability import (
    HEALTH_PATH,
    METRICS_PATH,
    Health,
    Metrics,
    health_response,
    metrics_response,
)
from gateways.ws.static_files import StaticFiles
from gateways.ws.stream import Archive, Replayed, Resync, StreamLog
from orchestrator.marketdata.config import is_loopback_host
from orchestrator.model.clock import Clock
from orchestrator.model.errors import OrchestratorError
from orchestrator.model.events import ANSWER_TOPICS, CommandOrigin, Topic

EVERYONE = "*"
"""The channel every client of a server is in."""
NEVER_JOINED = -(2**62)
"""The emptied-at seq of a channel nobody has joined yet: stale from the start, since no
client holds a seq of it to resume from (a daemon nobody watches encodes nothing)."""


def to_everyone(_: object) -> str:
    """The route of a topic that goes to every client (the EVERYONE channel)."""
    return EVERYONE


class RateLimited(OrchestratorError):
    code = "rate_limited"


class GuardedConnection(ServerConnection):
    """A connection that tells its server when the peer stops keeping up.

    websockets calls ``pause_writing`` when the unsent bytes pass ``write_limit``,
    which the server sets to ``max_outbound_bytes``.
    """

    on_overflow: Callable[[GuardedConnection], None] | None = None
    authenticated: bool = False
    route: tuple[Endpoint, Any] | None = None
    """The endpoint that admitted the handshake and its match (None: the server's own path)."""

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.on_overflow is not None:
            self.on_overflow(self)


class _NoDebugTraces(logging.LoggerAdapter[logging.Logger]):
    """websockets' logger without its DEBUG traces, which print request headers
    (Authorization) and frame contents (auth messages): tokens never reach a log."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


@dataclass(eq=False, slots=True)
class Session:
    """One client connection and what it has subscribed to."""

    conn_id: str
    ws: ServerConnection
    log: Any
    budget: MessageBudget
    channels: set[str] = field(default_factory=set)
    evicted: bool = False


Replies = list[bytes]
CommandHandler = Callable[[Any, Session], Awaitable[Replies]]
SnapshotMessages = Callable[[Session], list[outbound.Message]]


Routes = Mapping[Topic, Callable[[Any], str]]
"""A server's table from bus topic to the channel an event of that topic goes to."""


class Pages(Protocol):
    """Plain HTTP pages a server answers besides its WebSocket paths (a report)."""

    def respond(self, request: Request, authenticated: bool) -> Response | None:
        """The response, or None when the request is not for these pages.
        ``authenticated``: the request carries a valid token (or none is needed)."""


class Endpoint(Protocol):
    """Another WebSocket API served on the same port under its own paths."""

    def match(self, path: str) -> Any | None:
        """The route for ``path`` (anything but None), or None if it is not ours."""

    def admit(self, connection: ServerConnection, route: Any, known: bool) -> Response | None:
        """Refuse the handshake (e.g. 404 for an unknown id), or None to accept.
        ``known``: the client is authenticated (or need not be), so the answer may
        tell what exists; a stranger learns nothing before it authenticates."""

    async def serve(self, ws: ServerConnection, route: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerSetup:
    """What the composition root gives every server."""

    connection: ConnectionConfig
    security: SecurityConfig
    auth: TokenChecker
    epoch: int
    replay_window: int
    clock: Clock
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    settled: Callable[[], Awaitable[None]] = field(default=lambda: _nothing_pending())
    """Awaits the delivery of every event published so far (the journal commits
    first), so that a reply never overtakes what an earlier command caused."""
    archive: Archive | None = None
    """The journal read back by position, for clients that resume after a restart
    (None with the journal off: they get a snapshot)."""
    delivered: Callable[[], int] = lambda: 0
    """The journal position of the last committed event delivered to the edges (heard
    here or not): what a snapshot shows, and where a resume's read of the journal ends."""


class WebSocketServer:
    def __init__(
        self,
        name: str,
        config: ServerConfig,
        setup: ServerSetup,
        parser: CommandParser,
        handlers: Mapping[str, CommandHandler],
        routes: Routes,
        snapshot: SnapshotMessages,
        on_disconnect: Callable[[Session], None] | None = None,
        endpoints: Iterable[Endpoint] = (),
        static: StaticFiles | None = None,
        pages: Sequence[Pages] = (),
        keyed: Mapping[str, Topic] | None = None,
    ) -> None:
        self.name = name
        self._keyed = {
            prefix: topic
            for prefix, topic in (keyed or {}).items()
            if topic in routes and topic not in ANSWER_TOPICS
        }
        """Channel prefix to topic, for the topics sent per key (``quote:AAPL``): this
        server hears such a topic only while it keeps a channel of it."""
        self._keyed_channels: Counter[Topic] = Counter()
        self._to_everyone = frozenset(
            topic
            for topic, route in routes.items()
            if route is to_everyone and topic not in ANSWER_TOPICS
        )
        """The topics sent to every client: heard only while EVERYONE is kept."""
        self._everyone_kept = False
        """Whether EVERYONE has a member, or had one recently enough for a resume."""
        self.on_hearing: Callable[[Topic, bool], None] = lambda topic, hearing: None
        """Told when this server starts or stops hearing a keyed topic or the topics
        sent to everyone (the fan-out then hands it that topic's events, or stops)."""
        self._endpoints = tuple(endpoints)
        self._static = static
        self._pages = tuple(pages)
        self._config = config
        self._setup = setup
        self._limits = setup.connection
        self._clock = setup.clock
        self._parser = parser
        self._handlers: dict[str, CommandHandler] = {**handlers, "resume": self._resume}
        self._routes = routes
        self._snapshot = snapshot
        self._on_disconnect = on_disconnect
        self._stream = StreamLog(setup.epoch, setup.replay_window)
        self._sessions: dict[str, Session] = {}
        self._local_connections = 0
        """Connections (sessions and endpoints') whose client is on this machine."""
        self._by_ws: dict[ServerConnection, Session] = {}
        self._channels: dict[str, set[ServerConnection]] = {EVERYONE: set()}
        self._emptied_at: dict[str, int] = {EVERYONE: NEVER_JOINED}
        """When each empty channel lost its last member (seq)."""
        self._overflowing: list[ServerConnection] = []
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._idle = asyncio.Event()
        self.log = structlog.get_logger("gateways.ws.server").bind(server=name)
        self._refusals = RefusalLog(self.log)
        """Strangers' refusals: a few lines per interval, the rest counted."""
        self._messages_in = setup.metrics.messages_in.labels(name)
        self._messages_out = setup.metrics.messages_out.labels(name)
        self.slow_clients_closed = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The bound port (useful when the config asked for port 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def client_count(self) -> int:
        return len(self._sessions)

    @property
    def local_client_count(self) -> int:
        """Clients connected from this machine's loopback (an endpoint's included)."""
        return self._local_connections

    @property
    def stream_seq(self) -> int:
        return self._stream.seq

    @property
    def topics(self) -> frozenset[Topic]:
        """What this server hears: what it sends, and what can answer its clients' commands."""
        return frozenset(self._routes) | ANSWER_TOPICS

    @property
    def deaf_topics(self) -> frozenset[Topic]:
        """The keyed topics of which this server keeps no channel now, and those sent
        to everyone while nobody is connected (and no resume could want them)."""
        deaf = frozenset(self._keyed.values()) - self._keyed_channels.keys()
        return deaf if self._everyone_kept else deaf | self._to_everyone

    async def start(self) -> None:
        """Bind and start accepting; raises OSError if the address is taken."""
        await self.bind()
        await self.start_serving()

    async def start_serving(self) -> None:
        """Accept connections on the bound address (a no-op if already accepting)."""
        assert self._server is not None, "bind() first"
        if self._server.is_serving():
            return
        await self._server.start_serving()
        self.log.info(
            "server_listening",
            host=self._config.host,
            port=self.port,
            path=self._config.path,
            tls=self._setup.security.tls_cert is not None,
        )

    async def bind(self) -> None:
        """Take the address without accepting yet: a client connecting before
        ``start_serving`` is refused, so it never sees a half-started daemon.
        Raises OSError if the address is taken."""
        limits = self._limits
        security = self._setup.security
        origins: list[Origin | None] | None = None
        if security.allowed_origins is not None:
            origins = [*(Origin(o) for o in security.allowed_origins), None]
        self._server = await serve(
            self._serve_connection,
            self._config.host,
            self._config.port,
            process_request=self._admit,
            origins=origins,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=limits.close_timeout,
            max_size=limits.max_message_bytes,
            write_limit=limits.max_outbound_bytes,
            compression="deflate" if limits.compression else None,
            create_connection=GuardedConnection,
            ssl=_tls_context(security),
            logger=_NoDebugTraces(logging.getLogger("websockets.server")),
            start_serving=False,
        )

    async def close(self) -> None:
        """Stop accepting, close every client with 1001 (going away), wait for handlers."""
        if self._server is None:
            return
        closing = self._server.close_task is None
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        if closing:
            self.log.info("server_closed")

    async def wait_for_no_clients(self) -> None:
        """Return once every connection handler has finished."""
        while self._sessions:
            self._idle.clear()
            await self._idle.wait()

    # ------------------------------------------------------------ fan-out

    def publish(self, outgoing: Outgoing) -> None:
        """Fan-out sink: the event to its channel's members, encoded once; the client
        whose command caused it gets it with its requestId."""
        event = outgoing.event
        origin: CommandOrigin | None = getattr(event, "origin", None)
        requester = self._requester(origin)
        channel_of = self._routes.get(event.topic)
        delivered = False
        if channel_of is not None:
            delivered = self._broadcast(outgoing, channel_of(event), requester, origin)
        if requester is not None and not delivered:
            self._reply_directly(outgoing, requester, origin)
        self._evict_overflowing()

    def _broadcast(
        self,
        outgoing: Outgoing,
        channel: str,
        requester: Session | None,
        origin: CommandOrigin | None,
    ) -> bool:
        """Send to the channel's members; True if the requester was one of them."""
        members = self._channels.get(channel)
        if members is None:
            return False  # nobody is or recently was in this channel: nothing to keep
        if not members and self._stale(channel):
            self._forget_if_stale(channel)
            return False
        message = outgoing.message
        if message is None:
            return False
        kind, data = message
        seq = self._stream.next_seq()
        position = outbound.StreamPosition(seq, self._stream.epoch, journal=outgoing.position)
        now = self._clock.now()
        frame = outbound.encode(kind, data, now, position=position)
        self._stream.append(seq, channel, frame)
        delivered = False
        if requester is not None and requester.ws in members:
            broadcast(members - {requester.ws}, frame, text=True)
            request_id = origin.request_id if origin is not None else None
            self._write(requester, outbound.encode(kind, data, now, request_id, position))
            delivered = True
        else:
            broadcast(members, frame, text=True)
        self._messages_out.inc(len(members))
        if not members:
            self._forget_if_stale(channel)
        return delivered

    def join(self, session: Session, channel: str) -> None:
        session.channels.add(channel)
        members = self._channels.get(channel)
        if members is None:
            members = self._channels[channel] = set()
            self._count_channel(channel, 1)
        members.add(session.ws)
        self._emptied_at.pop(channel, None)
        if channel == EVERYONE:
            self._keep_everyone(True)

    def _count_channel(self, channel: str, change: int) -> None:
        """Keep count of the keyed channels kept; tell when a topic gains its first
        or loses its last (an emptied channel is kept while a resume may want it)."""
        topic = self._keyed.get(channel.partition(":")[0])
        if topic is None:
            return
        self._keyed_channels[topic] += change
        if self._keyed_channels[topic] <= 0:
            del self._keyed_channels[topic]
            self.on_hearing(topic, False)
        elif change > 0 and self._keyed_channels[topic] == 1:
            self.on_hearing(topic, True)

    def leave(self, session: Session, channel: str) -> None:
        session.channels.discard(channel)
        members = self._channels.get(channel)
        if members is not None:
            members.discard(session.ws)
            if not members:
                # Kept while its messages are in the window: a client that
                # reconnects and resumes must find what it missed here.
                self._emptied_at[channel] = self._stream.seq

    def _stale(self, channel: str) -> bool:
        """Empty for longer than the replay window: no client can resume into it, so
        its messages need neither a seq, nor encoding, nor keeping (an idle daemon's
        indicators and trades cost nothing here)."""
        emptied = self._emptied_at.get(channel)
        return emptied is not None and self._stream.seq - emptied > self._setup.replay_window

    def _keep_from_now(self, channel: str) -> None:
        """A client joins ``channel`` once it has read the journal: what is broadcast
        there meanwhile is its tail, to number and keep even if nobody is in it."""
        if not self._channels.get(channel) and self._stale(channel):
            self._emptied_at[channel] = self._stream.seq
        if channel == EVERYONE:
            self._keep_everyone(True)

    def _forget_if_stale(self, channel: str) -> None:
        if not self._stale(channel):
            return
        if channel == EVERYONE:
            self._keep_everyone(False)  # always there: its topics stop reaching it
            return
        del self._channels[channel]
        del self._emptied_at[channel]
        self._count_channel(channel, -1)

    def _keep_everyone(self, kept: bool) -> None:
        if kept != self._everyone_kept:
            self._everyone_kept = kept
            for topic in self._to_everyone:
                self.on_hearing(topic, kept)

    def _requester(self, origin: CommandOrigin | None) -> Session | None:
        if origin is None or origin.server != self.name:
            return None
        return self._sessions.get(origin.conn_id)

    def _reply_directly(
        self, outgoing: Outgoing, session: Session, origin: CommandOrigin | None
    ) -> None:
        # The requester is on a server that does not broadcast this event: it
        # still gets the stock-bot message as the reply to its command.
        message = outgoing.message
        if message is not None:
            request_id = origin.request_id if origin is not None else None
            self._write(
                session, outbound.encode(message[0], message[1], self._clock.now(), request_id)
            )

    def _write(self, session: Session, frame: bytes) -> None:
        """Write without awaiting, so nothing can interleave with what is written next."""
        broadcast([session.ws], frame, text=True)
        self._messages_out.inc()

    # ------------------------------------------------------------ admission

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: path, capacity and Authorization header."""
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            return health_response(self._setup.health)
        if path == METRICS_PATH:
            return self._metrics_for(connection, request)
        for pages in self._pages:
            answer = pages.respond(request, self._authenticated_request(request))
            if answer is not None:
                return answer
        page = self._static.respond(request) if self._static is not None else None
        if page is not None:
            return page  # the dashboard: a plain GET, not an upgrade
        route = None if path == self._config.path else self._route(path)
        if path != self._config.path and route is None:
            self.log.info("http_not_found", path=path[:200])
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"No WebSocket endpoint at {path}; use {self._config.path}\n"
            )
        if (
            self._server is not None
            and len(self._server.connections) >= self._limits.max_connections
        ):
            self.log.warning("connection_refused_full", limit=self._limits.max_connections)
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"This server is at its limit of {self._limits.max_connections} connections\n",
            )
        refusal = self._check_header_token(connection, request)
        if refusal is None and self._needs_auth_message(connection):
            refusal = self._check_unauthenticated_room(connection)
        if refusal is None and route is not None:
            endpoint, match = route
            _guarded(connection).route = route
            return endpoint.admit(connection, match, not self._needs_auth_message(connection))
        return refusal

    def _check_unauthenticated_room(self, connection: ServerConnection) -> Response | None:
        """Strangers (no valid header token) may hold only so many connections while
        they authenticate, per server and per address: the rest stays for clients
        with a token."""
        address = _host(connection)
        waiting = [ws for ws in self._connections() if self._needs_auth_message(ws)]
        limit, per_address = (
            self._limits.unauthenticated_limit,
            self._limits.max_unauthenticated_per_address,
        )
        from_there = sum(1 for ws in waiting if _host(ws) == address)
        if len(waiting) < limit and from_there < per_address:
            return None
        self._refusals.warning(
            "connection_refused_unauthenticated", remote=_remote(connection), waiting=len(waiting)
        )
        return connection.respond(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "Too many connections waiting to authenticate; send an Authorization header\n",
        )

    def _connections(self) -> Iterable[ServerConnection]:
        return self._server.connections if self._server is not None else ()

    def _authenticated_request(self, request: Request) -> bool:
        """Whether a plain HTTP request may see what a client with a token sees."""
        if not self._setup.auth.required:
            return True
        token = bearer_token(request.headers.get("Authorization"))
        return token is not None and self._setup.auth.accepts(token)

    def _metrics_for(self, connection: ServerConnection, request: Request) -> Response:
        """/metrics: the order, fill and rejection totals are no stranger's business.
        Served to all while no authentication is required, else to a loopback
        client or one with a valid Authorization header (or to all with
        ``security.public_metrics``)."""
        if (
            self._setup.security.public_metrics
            or is_loopback_host(_host(connection))
            or self._authenticated_request(request)
        ):
            return metrics_response(self._setup.metrics)
        self.log.warning("metrics_refused", remote=_remote(connection))
        return connection.respond(
            HTTPStatus.UNAUTHORIZED,
            "Metrics need a token (Authorization: Bearer) or a loopback client\n",
        )

    def _route(self, path: str) -> tuple[Endpoint, Any] | None:
        for endpoint in self._endpoints:
            match = endpoint.match(path)
            if match is not None:
                return endpoint, match
        return None

    def _check_header_token(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        guarded = _guarded(connection)
        guarded.on_overflow = self._on_overflow
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return None  # a browser authenticates with its first message instead
        if not self._setup.auth.accepts(token):
            self._refusals.warning("auth_refused", how="header", remote=_remote(connection))
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid token\n")
        guarded.authenticated = True
        return None

    async def _refuse(self, ws: ServerConnection, reason: str) -> None:
        self._refusals.warning("auth_refused", how="message", reason=reason, remote=_remote(ws))
        await ws.close(CloseCode.POLICY_VIOLATION, reason)

    def _needs_auth_message(self, ws: ServerConnection) -> bool:
        return self._setup.auth.required and not getattr(ws, "authenticated", False)

    async def _authenticate_by_message(self, ws: ServerConnection, log: Any) -> bool:
        try:
            async with asyncio.timeout(self._setup.security.auth_timeout):
                frame = await ws.recv()
        except TimeoutError:
            await self._refuse(ws, "authentication required: send an auth message first")
            return False
        token = _auth_token(frame)
        if token is None or not self._setup.auth.accepts(token):
            await self._refuse(ws, "authentication failed")
            return False
        _guarded(ws).authenticated = True  # no longer counts as waiting to authenticate
        log.info("authenticated", how="message")
        return True

    # ------------------------------------------------------------ connections

    async def _serve_connection(self, ws: ServerConnection) -> None:
        local = is_loopback_host(_host(ws))
        self._local_connections += local
        try:
            route = ws.route if isinstance(ws, GuardedConnection) else None
            if route is not None:
                await self._serve_endpoint(ws, *route)
            else:
                await self._serve_session(ws)
        finally:
            self._local_connections -= local

    async def _serve_session(self, ws: ServerConnection) -> None:
        session = self._open_session(ws)
        try:
            if self._needs_auth_message(ws) and not await self._authenticate_by_message(
                ws, session.log
            ):
                return
            await self._begin_stream(session, ws.request.path if ws.request else "/")
            async for frame in ws:
                await self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            self._close_session(session)

    async def _serve_endpoint(self, ws: ServerConnection, endpoint: Endpoint, match: Any) -> None:
        log = self.log.bind(
            conn_id=f"{self.name}-{next(self._ids)}", path=ws.request.path if ws.request else ""
        )
        log.info("connection_opened", remote=_remote(ws))
        try:
            if self._needs_auth_message(ws) and not await self._authenticate_by_message(ws, log):
                return
            await endpoint.serve(ws, match)
        except ConnectionClosed:
            pass
        finally:
            log_close(log, ws)

    def _open_session(self, ws: ServerConnection) -> Session:
        conn_id = f"{self.name}-{next(self._ids)}"
        log = self.log.bind(conn_id=conn_id)
        session = Session(conn_id, ws, log, MessageBudget(self._limits, log))
        self._sessions[conn_id] = session
        self._by_ws[ws] = session
        session.log.info("connection_opened", remote=_remote(ws))
        return session

    async def _begin_stream(self, session: Session, path: str) -> None:
        """Resume from the URL's lastSeq/epoch (and position), or send the snapshot;
        then join (a resume from the journal joins once it has read it)."""
        query = parse_qs(urlsplit(path).query)
        last_seq, epoch = _int_param(query, "lastSeq"), _int_param(query, "epoch")
        position = _int_param(query, "position")
        if last_seq is None or epoch is None:
            self.join(session, EVERYONE)
            replies = self._snapshot_frames(session)
        elif self._from_journal(epoch, position):
            replies = await self._journal_resume_frames(session, epoch, position or 0, None)
        else:
            self.join(session, EVERYONE)
            replies = self._resume_frames(session, epoch, last_seq, None)
        if session.evicted:
            return
        for frame in replies:
            self._write(session, frame)

    def _close_session(self, session: Session) -> None:
        self._detach(session)
        del self._sessions[session.conn_id]
        self._by_ws.pop(session.ws, None)
        if not self._sessions:
            self._idle.set()
        log_close(session.log, session.ws)

    def _detach(self, session: Session) -> None:
        if self._on_disconnect is not None:
            self._on_disconnect(session)
        for channel in list(session.channels):
            self.leave(session, channel)

    # ------------------------------------------------------------ slow clients

    def _on_overflow(self, ws: GuardedConnection) -> None:
        # Called from inside a write: act after the write has returned.
        self._overflowing.append(ws)
        asyncio.get_running_loop().call_soon(self._evict_overflowing)

    def _evict_overflowing(self) -> None:
        while self._overflowing:
            ws = self._overflowing.pop()
            session = self._by_ws.get(ws)
            if session is None:
                closed = close_slow_client(ws, self._limits, self.log)
            elif session.evicted:
                continue
            else:
                session.evicted = True
                self._detach(session)
                closed = close_slow_client(ws, self._limits, session.log)
            self.slow_clients_closed += closed

    # ------------------------------------------------------------ commands

    async def _on_frame(self, session: Session, frame: str | bytes) -> None:
        self._messages_in.inc()
        admission = session.budget.admit()
        if admission is not Admission.SERVE:
            self._on_rate_limited(session, admission)
            return
        started = time.perf_counter()
        command: Command | None = None
        try:
            command = self._parser.parse(frame)
            await self._setup.settled()
            replies = await self._handlers[command.type](command, session)
        except OrchestratorError as exc:
            replies = [self._error_reply(exc, frame, command)]
            self._log_command(session, frame, command, started, exc.code)
        except Exception:
            session.log.exception("command_crashed")
            internal = OrchestratorError("the server failed to handle this message; it was logged")
            replies = [self._error_reply(internal, frame, command)]
            self._log_command(session, frame, command, started, internal.code)
        else:
            self._log_command(session, frame, command, started, "ok")
        if session.evicted:
            return
        for reply in replies:
            self._write(session, reply)
        self._evict_overflowing()

    def _on_rate_limited(self, session: Session, admission: Admission) -> None:
        if admission is Admission.CLOSE:
            asyncio.get_running_loop().create_task(
                session.ws.close(CloseCode.POLICY_VIOLATION, "command flood")
            )
        elif admission is Admission.REFUSE:
            error = RateLimited(session.budget.refusal())
            self._write(session, self._error_reply(error, "", None))

    async def _resume(self, command: ResumeStream, session: Session) -> Replies:
        if self._from_journal(command.epoch, command.position):
            return await self._journal_resume_frames(
                session, command.epoch, command.position or 0, command.request_id
            )
        return self._resume_frames(session, command.epoch, command.last_seq, command.request_id)

    def _from_journal(self, epoch: int, position: int | None) -> bool:
        """Whether a resume is one after a restart that the journal can serve."""
        return (
            epoch != self._stream.epoch and position is not None and self._setup.archive is not None
        )

    async def _journal_resume_frames(
        self, session: Session, epoch: int, position: int, request_id: str | int | None
    ) -> Replies:
        """After a restart: ``resumed``, the committed messages after ``position`` from
        the journal, what the window holds after them, then the snapshot (what the
        journal does not write, such as the execution status, may have changed); or
        ``resync_required`` and the snapshot.

        The journal is read on a thread up to the position this server had reached
        when the read began (``upto``, at seq ``since``); whatever came later is in the
        window, and the window's part, the join and the writes happen in one step."""
        archive = self._setup.archive
        assert archive is not None
        since, upto = self._stream.seq, self._setup.delivered()
        self._keep_from_now(EVERYONE)
        limit = self._setup.replay_window
        result = await archive.replay(epoch, position, upto, frozenset(self._routes), limit)
        self.join(session, EVERYONE)
        now = self._clock.now()
        tail = self._stream.replay(self._stream.epoch, since, session.channels)
        if isinstance(result, Resync) or isinstance(tail, Resync):
            failed = result if isinstance(result, Resync) else tail
            assert isinstance(failed, Resync)
            return self._resync_frames(session, position, failed, request_id)
        frames = [self._replayed_frame(item, now) for item in result]
        refused = self._too_big(session, [*frames, *tail], position)
        if refused is not None:
            return self._resync_frames(session, position, refused, request_id)
        data = {
            "epoch": self._stream.epoch,
            "fromSeq": since + 1,
            "toSeq": self._stream.seq,
            "replayed": len(tail),
            "fromPosition": position + 1,
            "toPosition": upto,
            "journalReplayed": len(frames),
        }
        session.log.info(
            "resumed", epoch=epoch, position=position, journal=len(frames), replayed=len(tail)
        )
        resumed = outbound.encode("resumed", data, now, request_id)
        return [resumed, *frames, *tail, *self._snapshot_frames(session)]

    def _replayed_frame(self, item: Replayed, now: float) -> bytes:
        kind, data = item.message
        return outbound.encode(
            kind, data, now, position=outbound.StreamPosition(None, None, journal=item.position)
        )

    def _too_big(self, session: Session, frames: list[bytes], after: int) -> Resync | None:
        """Why ``frames`` cannot be written at once (None: they can). What the client
        has not read yet counts: a replay after a replay must not pile up past the cap."""
        buffered = session.ws.transport.get_write_buffer_size()
        if buffered + sum(map(len, frames)) <= self._limits.max_outbound_bytes:
            return None
        # Written at once, they would push the client's buffer past the cap.
        return Resync(
            f"the {len(frames)} messages after {after}, with the {buffered} bytes "
            f"not yet read, are more than max_outbound_bytes "
            f"({self._limits.max_outbound_bytes}) to replay"
        )

    def _resync_frames(
        self, session: Session, last: int, resync: Resync, request_id: str | int | None
    ) -> Replies:
        session.log.info("resync_required", last_seq=last, reason=resync.reason)
        data = {"reason": resync.reason, "epoch": self._stream.epoch, "seq": self._stream.seq}
        if self._setup.archive is not None:
            data["position"] = self._setup.delivered()
        notice = outbound.encode("resync_required", data, self._clock.now(), request_id)
        return [notice, *self._snapshot_frames(session)]

    def _resume_frames(
        self, session: Session, epoch: int, last_seq: int, request_id: str | int | None
    ) -> Replies:
        now = self._clock.now()
        result = self._stream.replay(epoch, last_seq, session.channels)
        if not isinstance(result, Resync):
            result = self._too_big(session, result, last_seq) or result
        if isinstance(result, Resync):
            return self._resync_frames(session, last_seq, result, request_id)
        data = {
            "epoch": self._stream.epoch,
            "fromSeq": last_seq + 1,
            "toSeq": self._stream.seq,
            "replayed": len(result),
        }
        session.log.info("resumed", last_seq=last_seq, replayed=len(result))
        return [outbound.encode("resumed", data, now, request_id), *result]

    def _snapshot_frames(self, session: Session) -> Replies:
        journal = self._setup.delivered() if self._setup.archive is not None else None
        position = outbound.StreamPosition(
            self._stream.seq, self._stream.epoch, snapshot=True, journal=journal
        )
        now = self._clock.now()
        return [
            outbound.encode(kind, data, now, position=position)
            for kind, data in self._snapshot(session)
        ]

    def _error_reply(
        self, exc: OrchestratorError, frame: str | bytes, command: Command | None
    ) -> bytes:
        if command is not None:
            kind: str | None = str(command.type)
            request_id = command.request_id
        else:
            kind, request_id = request_context(frame) if frame else (None, None)
        self._setup.metrics.errors.labels(self.name, exc.code).inc()
        data = outbound.error_data(exc.code, exc.message, kind)
        return outbound.encode("error", data, self._clock.now(), request_id)

    def _log_command(
        self,
        session: Session,
        frame: str | bytes,
        command: Command | None,
        started: float,
        outcome: str,
    ) -> None:
        kind, request_id = (
            (str(command.type), command.request_id)
            if command is not None
            else request_context(frame)
        )
        session.log.info(
            "command",
            type=kind,
            strategy_id=getattr(command, "id", None),
            request_id=request_id,
            outcome=outcome,
            ms=round((time.perf_counter() - started) * 1000, 3),
        )


async def _nothing_pending() -> None:
    return None


def log_close(log: Any, ws: ServerConnection) -> None:
    """One line per closed connection, with the code each side sent: ``code`` alone
    (what the client sent, 1006 when it vanished) hides why the server closed it.
    A keepalive close (the client stopped answering pings) gets its own line."""
    sent, received = ws.protocol.close_sent, ws.protocol.close_rcvd
    fields: dict[str, Any] = {
        "code": ws.close_code,
        "reason": ws.close_reason,
        "sent_code": sent.code if sent is not None else None,
        "sent_reason": sent.reason if sent is not None else None,
        "received_code": received.code if received is not None else None,
    }
    if sent is not None and sent.code == CloseCode.INTERNAL_ERROR and "keepalive" in sent.reason:
        log.warning("keepalive_closed", reason=sent.reason)
    log.info("connection_closed", **fields)


def _host(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else "unknown"


def close_slow_client(ws: ServerConnection, limits: ConnectionConfig, log: Any) -> bool:
    """Close a client that fell ``max_outbound_bytes`` behind with 1013, now."""
    if ws.protocol.state is not State.OPEN:
        return False
    log.warning(
        "slow_client_closed",
        backlog_bytes=ws.transport.get_write_buffer_size(),
        limit=limits.max_outbound_bytes,
    )
    ws.protocol.send_close(CloseCode.TRY_AGAIN_LATER, "too slow: outbound buffer full")
    ws.send_data()
    # A peer that still does not read never answers the close: drop the
    # connection and its buffer after the close timeout.
    asyncio.get_running_loop().call_later(limits.close_timeout, ws.transport.abort)
    return True


def _guarded(connection: ServerConnection) -> GuardedConnection:
    """The connection as the server made it (``create_connection=GuardedConnection``)."""
    assert isinstance(connection, GuardedConnection)
    return connection


def _auth_token(frame: str | bytes) -> str | None:
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    token = message.get("token")
    return token if isinstance(token, str) else None


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def _tls_context(security: SecurityConfig) -> ssl.SSLContext | None:
    if security.tls_cert is None or security.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(security.tls_cert, security.tls_key)
    return context


def _remote(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown"
