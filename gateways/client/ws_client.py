"""An async Python client for the daemon's three WebSocket servers.

One :class:`OrchestratorClient` talks to one server (8082, 3001 or 3002): it
sends commands and awaits the reply that carries their ``requestId``, hands
every message the server pushes to iterators and handlers filtered by type and
strategy, and survives the server going away::

    async with OrchestratorClient("ws://localhost:8082") as client:
        await client.start_strategy("strategy-123", symbols=["AAPL"])
        async for message in client.messages("strategy_trade", strategy_id="strategy-123"):
            print(message["data"])

A dropped connection is reconnected with capped exponential backoff and full
jitter. The stream resumes where it stopped (``lastSeq``/``epoch``, see
docs/limits-and-security.md): by URL on 8082 and 3002; on 3001 the client first
subscribes again and then sends ``resume``, discarding what the new connection
received before ``resumed``. The client also keeps the last journal ``position``
it saw, so that after a daemon restart (a new epoch) the server replays the
committed messages it missed from the journal. Listeners therefore see every
broadcast once, in order, with a ``resumed`` (or ``resync_required`` and a fresh
snapshot) where the connection was restored. Requests in flight on a dropped connection fail
with :class:`ConnectionLost` and are never sent again: a start must not happen
twice.

This is the one module of the core that imports ``websockets``: it is an entry
point, like the CLI, and nothing in the daemon imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

LOGGER = logging.getLogger(__name__)
# A library logs through the standard logging tree and prints nothing unless the
# application configures logging (structlog's default would print to stdout).
LOGGER.addHandler(logging.NullHandler())

Message = dict[str, Any]
"""A decoded server message: ``{"type", "timestamp", "data", ...}``."""

Handler = Callable[[Message], Awaitable[None] | None]
"""Called with each matching message; a coroutine function runs as its own task."""

RequestId = str | int

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_OPEN_TIMEOUT = 10.0
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_SYMBOLS_PER_SUBSCRIBE = 100
"""The 3001 server's bound on ``symbols`` in one subscribe."""


# ------------------------------------------------------------------ errors


class ClientError(Exception):
    """Base of every error this client raises."""


class CommandError(ClientError):
    """The server answered a command with an ``error`` message."""

    def __init__(self, code: str, message: str, request_type: str | None, reply: Message) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_type = request_type
        self.reply = reply


class Unreachable(ClientError, ConnectionError):
    """Nothing accepted a WebSocket connection at the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no daemon answers at {url}: {reason}")
        self.url = url
        self.reason = reason


class HandshakeRejected(ClientError, ConnectionError):
    """The server refused the WebSocket upgrade with an HTTP status (401, 404, 503...)."""

    def __init__(self, url: str, status: int, body: str) -> None:
        detail = f": {body}" if body else ""
        super().__init__(f"{url} refused the connection with HTTP {status}{detail}")
        self.url = url
        self.status = status
        self.body = body


class ConnectionLost(ClientError, ConnectionError):
    """The connection closed before the reply came, or the client is closed."""


class ConnectTimeout(ClientError, TimeoutError):
    """The WebSocket handshake did not complete in time."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(f"no answer from {url} within {timeout:g} s")
        self.url = url
        self.timeout = timeout


class RequestTimeout(ClientError, TimeoutError):
    """No reply to a command within its timeout."""

    def __init__(self, request_type: str, timeout: float) -> None:
        super().__init__(f"no reply to {request_type} within {timeout:g} s")
        self.request_type = request_type
        self.timeout = timeout


# ------------------------------------------------------------------ backoff


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: ``initial * factor**n``, capped at ``maximum``."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum) or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")

    def cap(self, attempt: int) -> float:
        """The longest delay before attempt ``attempt`` (0 for the first)."""
        return min(self.maximum, self.initial * self.factor ** min(attempt, 200))


# ------------------------------------------------------------------ listeners


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which messages a listener gets: by ``type`` and by ``data.strategyId``.

    With a ``strategy_id``, only messages whose ``data`` names that strategy in
    ``strategyId`` pass (signals, trades, lifecycle notifications, risk events);
    messages that name no strategy (``execution_service_status``, lists,
    quotes) do not.
    """

    types: frozenset[str] | None = None
    strategy_id: str | None = None

    @classmethod
    def of(cls, types: str | Iterable[str] | None, strategy_id: str | None) -> MessageFilter:
        if isinstance(types, str):
            return cls(frozenset({types}), strategy_id)
        return cls(frozenset(types) if types is not None else None, strategy_id)

    def matches(self, message: Message) -> bool:
        if self.types is not None and message.get("type") not in self.types:
            return False
        if self.strategy_id is None:
            return True
        data = message.get("data")
        return isinstance(data, dict) and data.get("strategyId") == self.strategy_id


class MessageStream:
    """An async iterator over the messages that match a filter, from its creation on.

    It holds at most ``maxsize`` unread messages: past that the oldest is
    dropped (counted in :attr:`dropped`). It ends when the client closes for
    good, after the messages already received. Close it (``aclose()`` or
    ``async with``) to stop receiving.
    """

    def __init__(self, client: OrchestratorClient, where: MessageFilter, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._client = client
        self.filter = where
        self._items: deque[Message] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def deliver(self, message: Message) -> None:
        if self._ended:
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self._client.log.warning(
                    "messages_dropped", url=self._client.url, dropped=self.dropped
                )
        self._items.append(message)
        self._wakeup.set()

    def end(self) -> None:
        self._ended = True
        self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    async def aclose(self) -> None:
        self._client._remove_listener(self)
        self.end()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@dataclass(eq=False, slots=True)
class _HandlerEntry:
    filter: MessageFilter
    callback: Handler


class KeyValueLogger:
    """The client's log calls (``log.warning("connection_lost", url=..., code=...)``) on a
    standard :class:`logging.Logger`: the message is ``event key=value ...``; the
    record carries ``client_event`` and ``client_fields`` for handlers that want them."""

    def __init__(self, target: logging.Logger) -> None:
        self.target = target

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, {"exc_info": True, **fields})

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if not self.target.isEnabledFor(level):
            return
        exc_info = fields.pop("exc_info", None)
        text = " ".join([event, *(f"{key}={value!r}" for key, value in fields.items())])
        self.target.log(
            level,
            "%s",
            text,
            exc_info=exc_info,
            extra={"client_event": event, "client_fields": fields},
            stacklevel=3,
        )


# ------------------------------------------------------------------ the client


class OrchestratorClient:
    """A connection to one of the daemon's servers that reconnects and resumes.

    ``url`` is ``ws://host:8082``, ``ws://host:3001/ws`` or ``ws://host:3002/ws``
    (``wss://`` with TLS). ``token`` is sent as ``Authorization: Bearer``.
    ``backoff`` is a :class:`Backoff` or an ``(initial, maximum, factor)``
    tuple; with ``jitter`` (full jitter) each delay is uniform in
    ``[0, cap]``. ``max_attempts`` reconnection attempts in a row (None: no
    limit) before the client gives up and closes. ``logger`` is a
    :class:`logging.Logger` (default ``gateways.client.ws_client``, silent until
    the application configures logging) or a structlog-style logger.
    ``sleep`` and ``rand`` are there so that tests need not wait. ``prepare``
    is applied to every decoded message before anyone sees it (the CLI makes
    its strings safe for a terminal with it).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        reconnect: bool = True,
        backoff: Backoff | tuple[float, float, float] = Backoff(),
        jitter: bool = True,
        max_attempts: int | None = None,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        logger: Any = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        prepare: Callable[[Message], Message] | None = None,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"not a WebSocket URL: {url!r} (use ws://host:port/path)") from exc
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._reconnect = reconnect
        self.backoff = backoff if isinstance(backoff, Backoff) else Backoff(*backoff)
        self._jitter = jitter
        self._max_attempts = max_attempts
        self._request_timeout = request_timeout
        self._open_timeout = open_timeout
        self._max_size = max_message_bytes
        logger = LOGGER if logger is None else logger
        self.log: Any = KeyValueLogger(logger) if isinstance(logger, logging.Logger) else logger
        self._sleep = sleep
        self._rand = rand
        self._prepare = prepare

        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(3)
        self._pending: dict[RequestId, tuple[asyncio.Future[Message], str]] = {}
        self._streams: list[MessageStream] = []
        self._handlers: list[_HandlerEntry] = []
        self._handler_tasks: set[asyncio.Future[Any]] = set()

        self._ws: ClientConnection | None = None
        self._ready = False
        self._finished = False
        self._closing = False
        self._changed = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

        self._epoch: int | None = None
        self._last_seq = 0
        self._position: int | None = None
        self._discarding = False
        self._resume_id: RequestId | None = None
        self._quotes: set[str] = set()
        self._bars: set[tuple[str, str]] = set()
        self.reconnects = 0
        """Connections restored after a loss."""
        self.discarded_before_resumed = 0
        """Messages dropped by the resume-by-command rule (they come again in the replay)."""

    # -------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection, once: raises :class:`Unreachable`,
        :class:`HandshakeRejected` or :class:`ConnectTimeout` if it fails.
        Reconnection applies to a connection that was open and was lost."""
        if self._supervisor is not None or self._finished:
            raise RuntimeError("connect() may be called once per client")
        ws = await self._open(self.url)
        self.log.debug("connected", url=self.url)
        self._ws = ws
        self._set_state(ready=True)
        self._supervisor = asyncio.create_task(self._supervise(ws), name=f"client {self.url}")

    async def close(self) -> None:
        """Close the connection, stop reconnecting, end every message stream."""
        self._closing = True
        if self._supervisor is not None and not self._supervisor.done():
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._finish()
        for task in list(self._handler_tasks):
            task.cancel()

    @property
    def connected(self) -> bool:
        """True while a connection is open and, after a reconnect, restored."""
        return self._ready

    @property
    def closed(self) -> bool:
        """True once the client is closed or has given up reconnecting."""
        return self._finished

    @property
    def epoch(self) -> int | None:
        """The server stream's epoch, once a message carried one."""
        return self._epoch

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` delivered (a snapshot's included): where a resume starts."""
        return self._last_seq

    @property
    def position(self) -> int | None:
        """The highest journal ``position`` delivered (a snapshot's included): where a
        resume after a daemon restart starts; None until a message carried one."""
        return self._position

    async def wait_connected(self) -> None:
        """Return once connected; raise :class:`ConnectionLost` if the client closes first.
        Bound it with ``asyncio.timeout``."""
        while not self._ready:
            if self._finished:
                raise ConnectionLost(f"the client of {self.url} is closed")
            await self._changed.wait()

    def _set_state(self, *, ready: bool | None = None, finished: bool | None = None) -> None:
        if ready is not None:
            self._ready = ready
        if finished is not None:
            self._finished = finished
        self._changed.set()
        self._changed = asyncio.Event()

    # -------------------------------------------------------------- connections

    async def _open(self, url: str) -> ClientConnection:
        try:
            return await connect(
                url,
                additional_headers=self._headers,
                open_timeout=self._open_timeout,
                max_size=self._max_size,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            raise HandshakeRejected(self.url, exc.response.status_code, body[:200]) from exc
        except TimeoutError as exc:
            raise ConnectTimeout(self.url, self._open_timeout) from exc
        except InvalidHandshake as exc:
            raise Unreachable(self.url, f"not a WebSocket server ({exc})") from exc
        except OSError as exc:
            raise Unreachable(self.url, _describe_os_error(exc)) from exc

    async def _supervise(self, ws: ClientConnection) -> None:
        try:
            await self._serve(ws, resume=None)
            while self._reconnect and not self._closing:
                reopened = await self._reopen()
                if reopened is None:
                    break
                await self._serve(*reopened)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("client_failed", url=self.url)
        finally:
            self._finish()

    async def _serve(self, ws: ClientConnection, resume: _StreamMark | None) -> None:
        """Read one connection until it closes; restore subscriptions and stream first."""
        self._ws = ws
        self._discarding = resume is not None
        reader = asyncio.create_task(self._read(ws), name=f"client reader {self.url}")
        try:
            if resume is not None or self._quotes:
                async with asyncio.timeout(self._request_timeout):
                    await self._restore(ws, resume)
            if not reader.done():
                self._set_state(ready=True)
            await reader
        except ConnectionLost:
            pass
        except TimeoutError:
            self.log.warning("restore_timed_out", url=self.url, timeout_s=self._request_timeout)
        finally:
            self._set_state(ready=False)
            self._ws = None
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()
        if not self._closing:
            self.log.warning(
                "connection_lost", url=self.url, code=ws.close_code, reason=ws.close_reason or None
            )

    async def _reopen(self) -> tuple[ClientConnection, _StreamMark | None] | None:
        """Reconnect with backoff; the connection and the position to resume by command."""
        attempt = 0
        while not self._closing:
            if self._max_attempts is not None and attempt >= self._max_attempts:
                self.log.error("reconnect_gave_up", url=self.url, attempts=attempt)
                return None
            delay = self.backoff_delay(attempt)
            attempt += 1
            self.log.info("reconnecting", url=self.url, attempt=attempt, delay_s=round(delay, 3))
            await self._sleep(delay)
            by_command = bool(self._quotes)
            url = self.url
            if self._epoch is not None and not by_command:
                url = resume_url(self.url, self._last_seq, self._epoch, self._position)
            try:
                ws = await self._open(url)
            except (ConnectionError, TimeoutError) as exc:
                # A refused handshake (a revoked token, a full server) is worth a warning;
                # a daemon that is not back yet is not.
                level = "warning" if isinstance(exc, HandshakeRejected) else "info"
                getattr(self.log, level)(
                    "reconnect_failed", url=self.url, attempt=attempt, error=str(exc)
                )
                continue
            self.reconnects += 1
            self.log.warning("reconnected", url=self.url, attempts=attempt)
            if by_command and self._epoch is not None:
                return ws, _StreamMark(self._last_seq, self._epoch, self._position)
            return ws, None
        return None

    def backoff_delay(self, attempt: int) -> float:
        """The delay before reconnection attempt ``attempt`` (0 for the first)."""
        cap = self.backoff.cap(attempt)
        return self._rand() * cap if self._jitter else cap

    async def _restore(self, ws: ClientConnection, resume: _StreamMark | None) -> None:
        """Subscribe again (3001), then resume by command, discarding what came before."""
        for command in self._resubscriptions():
            try:
                await self._exchange(ws, command, self._next_id())
            except CommandError as exc:
                self.log.warning("resubscribe_failed", url=self.url, error=str(exc))
                self._forget(command["symbols"], command.get("resolution"))
        if resume is None:
            return
        request_id = self._next_id()
        self._resume_id = request_id
        resumption: Message = {"type": "resume", "lastSeq": resume.last_seq, "epoch": resume.epoch}
        if resume.position is not None:
            resumption["position"] = resume.position
        try:
            await self._exchange(ws, resumption, request_id)
        except CommandError as exc:
            self.log.warning("resume_failed", url=self.url, error=str(exc))
        finally:
            self._discarding = False
            self._resume_id = None

    def _resubscriptions(self) -> list[Message]:
        by_resolution: dict[str | None, list[str]] = {}
        for symbol, resolution in sorted(self._bars):
            by_resolution.setdefault(resolution, []).append(symbol)
        with_bars = {symbol for symbol, _ in self._bars}
        quotes_only = sorted(self._quotes - with_bars)
        if quotes_only:
            by_resolution[None] = quotes_only
        commands: list[Message] = []
        for bars_at, symbols in by_resolution.items():
            for start in range(0, len(symbols), MAX_SYMBOLS_PER_SUBSCRIBE):
                command: Message = {
                    "type": "subscribe",
                    "symbols": symbols[start : start + MAX_SYMBOLS_PER_SUBSCRIBE],
                }
                if bars_at is not None:
                    command["resolution"] = bars_at
                commands.append(command)
        return commands

    def _finish(self) -> None:
        if self._finished:
            return
        self._set_state(ready=False, finished=True)
        self._fail_pending(ConnectionLost(f"the client of {self.url} is closed"))
        for stream in self._streams:
            stream.end()

    # -------------------------------------------------------------- reading

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._fail_pending(
                ConnectionLost(f"the connection to {self.url} closed before the reply")
            )

    def _on_frame(self, frame: str | bytes) -> None:
        message = self._decode(frame)
        if message is None:
            return
        request_id = message.get("requestId")
        if self._discarding:
            if request_id is None or request_id != self._resume_id:
                # Sent before the resume command: the replay that follows has it.
                self._resolve(request_id, message)
                self.discarded_before_resumed += "requestId" not in message
                return
            self._discarding = False
        in_order = self._in_order(message)
        self._resolve(request_id, message)
        if in_order:
            self._dispatch(message)

    def _decode(self, frame: str | bytes) -> Message | None:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            self._bad_frame(frame, f"invalid JSON: {exc}")
            return None
        if not isinstance(message, dict):
            self._bad_frame(frame, "not a JSON object")
            return None
        if not isinstance(message.get("type"), str):
            self._bad_frame(frame, 'no "type" string')
            return None
        return message if self._prepare is None else self._prepare(message)

    def _bad_frame(self, frame: str | bytes, reason: str) -> None:
        self.log.warning("bad_frame", url=self.url, reason=reason, frame=repr(frame[:120]))

    def _in_order(self, message: Message) -> bool:
        """Track the stream position; False for a broadcast already delivered."""
        position = message.get("position")
        if type(position) is int and (self._position is None or position > self._position):
            self._position = position
        if message["type"] == "resumed":
            self._resumed(message.get("data"))
        seq, epoch = message.get("seq"), message.get("epoch")
        if type(seq) is not int or type(epoch) is not int:
            return True  # a direct reply, or a committed message replayed from the journal
        if epoch != self._epoch or message.get("snapshot") is True:
            self._epoch, self._last_seq = epoch, seq
            return True
        if seq <= self._last_seq:
            self.log.debug("duplicate_skipped", url=self.url, seq=seq)
            return False
        self._last_seq = seq
        return True

    def _resumed(self, data: Any) -> None:
        """The stream goes on after ``fromSeq - 1`` of ``epoch``: the same position in
        the same run, the new run's after a restart."""
        if not isinstance(data, dict):
            return
        epoch, from_seq = data.get("epoch"), data.get("fromSeq")
        if type(epoch) is int and type(from_seq) is int:
            self._epoch, self._last_seq = epoch, from_seq - 1

    def _resolve(self, request_id: Any, message: Message) -> None:
        if type(request_id) not in (str, int):
            return
        entry = self._pending.pop(request_id, None)
        if entry is None:
            return
        future, request_type = entry
        if future.done():
            return
        if message["type"] == "error":
            data = message.get("data")
            data = data if isinstance(data, dict) else {}
            future.set_exception(
                CommandError(
                    str(data.get("code", "error")),
                    str(data.get("message", "")),
                    data.get("requestType", request_type),
                    message,
                )
            )
        else:
            future.set_result(message)

    def _dispatch(self, message: Message) -> None:
        for stream in self._streams:
            if stream.filter.matches(message):
                stream.deliver(message)
        for entry in list(self._handlers):
            if entry.filter.matches(message):
                self._call(entry.callback, message)

    def _call(self, handler: Handler, message: Message) -> None:
        try:
            result = handler(message)
        except Exception:
            self.log.exception("handler_failed", url=self.url, type=message.get("type"))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Future[Any]) -> None:
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("handler_failed", url=self.url, exc_info=task.exception())

    def _fail_pending(self, error: ClientError) -> None:
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting any more

    # -------------------------------------------------------------- listening

    def messages(
        self,
        types: str | Iterable[str] | None = None,
        *,
        strategy_id: str | None = None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
    ) -> MessageStream:
        """Iterate over the messages of these types (all if None) from now on;
        with ``strategy_id``, only those whose ``data.strategyId`` is it."""
        stream = MessageStream(self, MessageFilter.of(types, strategy_id), maxsize)
        self._streams.append(stream)
        if self._finished:
            stream.end()
        return stream

    def on(
        self,
        types: str | Iterable[str] | None,
        handler: Handler,
        *,
        strategy_id: str | None = None,
    ) -> Callable[[], None]:
        """Call ``handler`` with each matching message; returns a function that removes it.

        A plain function is called in the reader (keep it short); a coroutine
        function runs as a task of its own. Exceptions are logged, not raised.
        """
        entry = _HandlerEntry(MessageFilter.of(types, strategy_id), handler)
        self._handlers.append(entry)
        return lambda: self._remove_listener(entry)

    def _remove_listener(self, listener: MessageStream | _HandlerEntry) -> None:
        if isinstance(listener, MessageStream):
            with contextlib.suppress(ValueError):
                self._streams.remove(listener)
        else:
            with contextlib.suppress(ValueError):
                self._handlers.remove(listener)

    # -------------------------------------------------------------- requests

    async def request(self, message: Mapping[str, Any]) -> Message:
        """Send a command and return the reply that carries its ``requestId``.

        Waits for the connection if a reconnection is under way. Raises
        :class:`CommandError` for an ``error`` reply, :class:`RequestTimeout`
        (a TimeoutError) after the client's ``request_timeout``, and
        :class:`ConnectionLost` if the connection drops first (the command is
        not sent again).
        """
        kind = message.get("type")
        if not isinstance(kind, str):
            raise ValueError('a command needs a "type" string')
        request_id = message.get("requestId")
        if request_id is None:
            request_id = self._next_id()
        elif type(request_id) not in (str, int) or request_id in self._pending:
            raise ValueError(f"requestId {request_id!r} is not a fresh string or integer")
        if self._supervisor is None:
            raise RuntimeError("the client is not connected: use `async with` or connect() first")
        limit = self._request_timeout
        try:
            async with asyncio.timeout(limit):
                await self.wait_connected()
                ws = self._ws
                if ws is None:
                    raise ConnectionLost(f"the connection to {self.url} closed")
                return await self._exchange(ws, {**message, "type": kind}, request_id)
        except TimeoutError as exc:
            if isinstance(exc, ClientError):
                raise
            raise RequestTimeout(kind, limit or 0.0) from exc

    async def _exchange(
        self, ws: ClientConnection, message: Message, request_id: RequestId
    ) -> Message:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, str(message["type"]))
        try:
            try:
                await ws.send(orjson.dumps({**message, "requestId": request_id}).decode())
            except ConnectionClosed as exc:
                raise ConnectionLost(f"the connection to {self.url} closed") from exc
            return await future
        finally:
            self._pending.pop(request_id, None)

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    # -------------------------------------------------------------- strategy commands

    async def get_active_strategies(self) -> Message:
        """``strategy_status_list``: every strategy that is not STOPPED."""
        return await self.request({"type": "get_active_strategies"})

    async def get_strategies(self) -> Message:
        """``strategy_list``: the whole catalog, STOPPED strategies included."""
        return await self.request({"type": "get_strategies"})

    async def get_instruments(self) -> Message:
        """``instruments``: each symbol of the feed with its price grid and decimals."""
        return await self.request({"type": "get_instruments"})

    async def get_account(self) -> Message:
        """``account``: equity, cash, exposure and the P&L totals of every strategy."""
        return await self.request({"type": "get_account"})

    async def start_strategy(
        self,
        strategy_id: str,
        *,
        symbols: Sequence[str] | None = None,
        data_resolution: str | None = None,
        real_trading: bool | None = None,
        max_position_value: float | None = None,
        max_orders_per_minute: int | None = None,
        stop_loss_percentage: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Message:
        """``strategy_started``; the config fields left out take the catalog's defaults,
        ``params`` go over the catalog's params (e.g. a sweep's best)."""
        config = start_config(
            symbols=symbols,
            data_resolution=data_resolution,
            real_trading=real_trading,
            max_position_value=max_position_value,
            max_orders_per_minute=max_orders_per_minute,
            stop_loss_percentage=stop_loss_percentage,
        )
        if params:
            config["params"] = dict(params)
        command: Message = {"type": "start_strategy", "id": strategy_id}
        if config:
            command["config"] = config
        return await self.request(command)

    async def stop_strategy(self, strategy_id: str) -> Message:
        """``strategy_stopped`` (after the trades that close its positions)."""
        return await self.request({"type": "stop_strategy", "id": strategy_id})

    async def pause_strategy(self, strategy_id: str) -> Message:
        """``strategy_paused``."""
        return await self.request({"type": "pause_strategy", "id": strategy_id})

    # -------------------------------------------------------------- resting orders (8082)

    async def get_open_orders(self, strategy_id: str | None = None) -> Message:
        """``open_orders``: every resting order (limit, stop, a bracket's exits), or one
        strategy's."""
        command: Message = {"type": "get_open_orders"}
        if strategy_id is not None:
            command["strategyId"] = strategy_id
        return await self.request(command)

    async def cancel_order(self, order_id: str) -> Message:
        """``order_cancelled`` once the cancellation is journaled (for a bracket entry
        that filled: the first of its exits cancelled); ``order_not_found`` raises."""
        return await self.request({"type": "cancel_order", "orderId": order_id})

    # -------------------------------------------------------------- market data (3001)

    async def subscribe(
        self,
        symbols: str | Sequence[str],
        resolution: str | None = None,
    ) -> Message:
        """``subscribed``: quotes of the symbols, and their bars at ``resolution`` if given.
        Re-sent after every reconnection."""
        command: Message = {"type": "subscribe", "symbols": _symbol_list(symbols)}
        if resolution is not None:
            command["resolution"] = resolution
        reply = await self.request(command)
        confirmed = _confirmed_symbols(reply, command["symbols"])
        self._quotes.update(confirmed)
        if resolution is not None:
            self._bars.update((symbol, resolution) for symbol in confirmed)
        return reply

    async def unsubscribe(
        self,
        symbols: str | Sequence[str],
        resolution: str | None = None,
    ) -> Message:
        """``unsubscribed``: bars at ``resolution``, or without one quotes and bars."""
        command: Message = {"type": "unsubscribe", "symbols": _symbol_list(symbols)}
        if resolution is not None:
            command["resolution"] = resolution
        reply = await self.request(command)
        self._forget(_confirmed_symbols(reply, command["symbols"]), resolution)
        return reply

    @property
    def subscriptions(self) -> dict[str, list[str | None]]:
        """What is re-sent on reconnection: symbol → resolutions (None for quotes only)."""
        result: dict[str, list[str | None]] = {symbol: [] for symbol in sorted(self._quotes)}
        for symbol, resolution in sorted(self._bars):
            result.setdefault(symbol, []).append(resolution)
        return {symbol: resolutions or [None] for symbol, resolutions in result.items()}

    def _forget(self, symbols: Iterable[str], resolution: str | None) -> None:
        for symbol in symbols:
            if resolution is not None:
                self._bars.discard((symbol, resolution))
            else:
                self._quotes.discard(symbol)
                self._bars = {bar for bar in self._bars if bar[0] != symbol}

    # -------------------------------------------------------------- risk guardian (3002)

    async def get_risk_status(self) -> Message:
        """``risk_status``: execution status, kill switch, limits, usage, per-strategy P&L."""
        return await self.request({"type": "get_risk_status"})

    async def halt_trading(
        self, reason: str, block_all: bool = False, flatten: bool = False
    ) -> Message:
        """``kill_switch`` (engaged): reduce-only, or nothing passes with ``block_all``;
        ``flatten`` (with ``block_all``) also closes every position with market orders."""
        command: Message = {"type": "halt_trading", "reason": reason, "blockAll": block_all}
        if flatten:
            command["flatten"] = True
        return await self.request(command)

    async def resume_trading(self, reason: str | None = None) -> Message:
        """``kill_switch`` (released); ``invalid_transition`` if trading is not halted."""
        command: Message = {"type": "resume_trading"}
        if reason is not None:
            command["reason"] = reason
        return await self.request(command)


# ------------------------------------------------------------------ helpers


def start_config(
    *,
    symbols: Sequence[str] | None = None,
    data_resolution: str | None = None,
    real_trading: bool | None = None,
    max_position_value: float | None = None,
    max_orders_per_minute: int | None = None,
    stop_loss_percentage: float | None = None,
) -> Message:
    """The camelCase ``config`` of ``start_strategy``, with only the fields given."""
    fields: Message = {
        "symbols": list(symbols) if symbols is not None else None,
        "dataResolution": data_resolution,
        "realTrading": real_trading,
        "maxPositionValue": max_position_value,
        "maxOrdersPerMinute": max_orders_per_minute,
        "stopLossPercentage": stop_loss_percentage,
    }
    return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class _StreamMark:
    """Where a resume starts: the last ``seq`` of ``epoch`` and journal ``position``."""

    last_seq: int
    epoch: int
    position: int | None


def resume_url(url: str, last_seq: int, epoch: int, position: int | None = None) -> str:
    """``url`` with ``lastSeq``, ``epoch`` and (when known) ``position`` query parameters
    (replacing any)."""
    parts = urlsplit(url)
    names = ("lastSeq", "epoch", "position")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in names]
    query += [("lastSeq", str(last_seq)), ("epoch", str(epoch))]
    if position is not None:
        query.append(("position", str(position)))
    return urlunsplit(parts._replace(path=parts.path or "/", query=urlencode(query)))


def _symbol_list(symbols: str | Sequence[str]) -> list[str]:
    return [symbols] if isinstance(symbols, str) else list(symbols)


def _confirmed_symbols(reply: Message, sent: list[str]) -> list[str]:
    data = reply.get("data")
    symbols = data.get("symbols") if isinstance(data, dict) else None
    if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols):
        return symbols
    return [symbol.upper() for symbol in sent]


def _describe_os_error(exc: OSError) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionRefusedError) or "[Errno 111]" in text:
        return "connection refused"
    return exc.strerror or text or type(exc).__name__
