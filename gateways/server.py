"""One WebSocket server: connections, command dispatch, and event fan-out.

The three servers of the daemon are instances of :class:`WebSocketServer` that
differ in their path, the commands they accept and the events they publish.
Clients join *channels*; an event is encoded once and written to every member
of its channel with websockets' ``broadcast``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateways import wire
from gateways.protocol import Command, CommandParser, request_context
from orchestrator.clock import Clock
from orchestrator.config import ConnectionConfig, ServerConfig
from orchestrator.errors import OrchestratorError
from orchestrator.events import CommandOrigin, Event

EVERYONE = "*"
"""The channel every client of a server is in."""


@dataclass(eq=False, slots=True)
class Session:
    """One client connection and what it has subscribed to."""

    conn_id: str
    ws: ServerConnection
    log: Any
    channels: set[str] = field(default_factory=set)


Replies = list[bytes]
CommandHandler = Callable[[Any, Session], Awaitable[Replies]]
Snapshot = Callable[[Session], Replies]


@dataclass(frozen=True, slots=True)
class Outbound:
    """Where a core event goes on this server, and as what."""

    channel: str
    kind: str
    data: Any


EventRouter = Callable[[Event], Iterable[Outbound]]


class WebSocketServer:
    def __init__(
        self,
        name: str,
        config: ServerConfig,
        connection: ConnectionConfig,
        parser: CommandParser,
        handlers: Mapping[str, CommandHandler],
        router: EventRouter,
        clock: Clock,
        snapshot: Snapshot | None = None,
        on_disconnect: Callable[[Session], None] | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._connection = connection
        self._parser = parser
        self._handlers = handlers
        self._router = router
        self._clock = clock
        self._snapshot = snapshot
        self._on_disconnect = on_disconnect
        self._sessions: dict[str, Session] = {}
        self._channels: dict[str, set[ServerConnection]] = {EVERYONE: set()}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._idle = asyncio.Event()
        self.log = structlog.get_logger("gateways.server").bind(server=name)

    @property
    def port(self) -> int:
        """The bound port (useful when the config asked for port 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def client_count(self) -> int:
        return len(self._sessions)

    async def wait_for_no_clients(self) -> None:
        """Return once every connection handler has finished (used by tests and drains)."""
        while self._sessions:
            self._idle.clear()
            await self._idle.wait()

    async def start(self) -> None:
        """Bind and start accepting; raises OSError if the address is taken."""
        cfg = self._connection
        self._server = await serve(
            self._serve_connection,
            self._config.host,
            self._config.port,
            process_request=self._check_path,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            close_timeout=cfg.close_timeout,
            max_size=cfg.max_message_bytes,
            compression="deflate" if cfg.compression else None,
            logger=None,
        )
        self.log.info(
            "server_listening", host=self._config.host, port=self.port, path=self._config.path
        )

    async def close(self) -> None:
        """Stop accepting, close every client with 1001 (going away), wait for handlers."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self.log.info("server_closed")

    def publish(self, event: Event) -> None:
        """Bus subscriber: encode the event once per outbound message and fan it out."""
        origin: CommandOrigin | None = getattr(event, "origin", None)
        requester = self._requester(origin)
        delivered = False
        for out in self._router(event):
            members = self._channels.get(out.channel)
            if not members:
                continue
            frame = wire.encode(out.kind, out.data, self._clock.now())
            if requester is not None and requester.ws in members:
                broadcast(members - {requester.ws}, frame, text=True)
                self._send_reply(requester, out.kind, out.data, origin)
                delivered = True
            else:
                broadcast(members, frame, text=True)
        if requester is not None and not delivered:
            self._reply_directly(event, requester, origin)

    def join(self, session: Session, channel: str) -> None:
        session.channels.add(channel)
        self._channels.setdefault(channel, set()).add(session.ws)

    def leave(self, session: Session, channel: str) -> None:
        session.channels.discard(channel)
        members = self._channels.get(channel)
        if members is not None:
            members.discard(session.ws)
            if not members and channel != EVERYONE:
                del self._channels[channel]

    def _requester(self, origin: CommandOrigin | None) -> Session | None:
        if origin is None or origin.server != self.name:
            return None
        return self._sessions.get(origin.conn_id)

    def _send_reply(
        self, session: Session, kind: str, data: Any, origin: CommandOrigin | None
    ) -> None:
        request_id = origin.request_id if origin is not None else None
        broadcast([session.ws], wire.encode(kind, data, self._clock.now(), request_id), text=True)

    def _reply_directly(self, event: Event, session: Session, origin: CommandOrigin | None) -> None:
        # The requester is on a server that does not broadcast this event: it
        # still gets the stock-bot message as the reply to its command.
        message = wire.event_message(event)
        if message is not None:
            self._send_reply(session, message[0], message[1], origin)

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path != self._config.path:
            self.log.info("http_not_found", path=path[:200])
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"No WebSocket endpoint at {path}; use {self._config.path}\n"
            )
        return None

    async def _serve_connection(self, ws: ServerConnection) -> None:
        session = self._open_session(ws)
        try:
            for snapshot_frame in self._snapshot(session) if self._snapshot else ():
                await ws.send(snapshot_frame, text=True)
            async for frame in ws:
                await self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            self._close_session(session)

    def _open_session(self, ws: ServerConnection) -> Session:
        conn_id = f"{self.name}-{next(self._ids)}"
        session = Session(conn_id, ws, self.log.bind(conn_id=conn_id))
        self._sessions[conn_id] = session
        self.join(session, EVERYONE)
        session.log.info("connection_opened", remote=_remote(ws))
        return session

    def _close_session(self, session: Session) -> None:
        if self._on_disconnect is not None:
            self._on_disconnect(session)
        for channel in list(session.channels):
            self.leave(session, channel)
        del self._sessions[session.conn_id]
        if not self._sessions:
            self._idle.set()
        session.log.info(
            "connection_closed", code=session.ws.close_code, reason=session.ws.close_reason
        )

    async def _on_frame(self, session: Session, frame: str | bytes) -> None:
        started = time.perf_counter()
        command: Command | None = None
        try:
            command = self._parser.parse(frame)
            replies = await self._handlers[command.type](command, session)  # type: ignore[attr-defined]
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
        for reply in replies:
            await session.ws.send(reply, text=True)

    def _error_reply(
        self, exc: OrchestratorError, frame: str | bytes, command: Command | None
    ) -> bytes:
        if command is not None:
            kind: str | None = str(command.type)  # type: ignore[attr-defined]
            request_id = command.request_id
        else:
            kind, request_id = request_context(frame)
        data = wire.error_data(exc.code, exc.message, kind)
        return wire.encode("error", data, self._clock.now(), request_id)

    def _log_command(
        self,
        session: Session,
        frame: str | bytes,
        command: Command | None,
        started: float,
        outcome: str,
    ) -> None:
        kind, request_id = (
            (str(command.type), command.request_id)  # type: ignore[attr-defined]
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


def _remote(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown"


async def close_all(servers: Iterable[WebSocketServer]) -> None:
    await asyncio.gather(*(server.close() for server in servers))
