"""Binance's public trade streams for the loopback exchange: the WebSocket endpoint
ccxt.pro's unmodified ``binance`` class connects to when its ``urls['api']['ws']['spot']``
is :meth:`LoopbackStreams.url` (served on the loopback's own aiohttp server).

ccxt.pro opens ``<ws url>/<stream number>`` and sends
``{"method": "SUBSCRIBE", "params": ["btcusdt@trade", ...], "id": n}``; the server
answers ``{"result": null, "id": n}`` and from then pushes each trade of those markets as
Binance does on that stream: on ``<symbol>@trade`` its trade event (``e: "trade"``, ``E``,
``s``, ``t``, ``p``, ``q``, ``T``, ``m``, ``M``: ``t`` the trade id, as ``/api/v3/trades``
and ``/myTrades`` number it); on ``<symbol>@aggTrade`` its aggregate trade event
(``e: "aggTrade"``, ``E``, ``s``, ``a``, ``p``, ``q``, ``f``, ``l``, ``T``, ``m``, ``M``:
``a`` the aggregate id, as ``/api/v3/aggTrades`` numbers it, another series). ccxt.pro
subscribes to ``@trade`` unless its watch's ``params`` name ``aggTrade``.
``UNSUBSCRIBE`` is answered the same way; any other message gets Binance's error reply.

Failures on command: :meth:`drop_streams` closes every stream connection and refuses
new ones (HTTP 503 on the upgrade) until :meth:`restore_streams`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.venues.loopback_exchange import VenueTrade

STREAM_PREFIX = "/stream/ws"
"""Where the streams are served: ccxt.pro's binance tells spot from futures by
``/stream`` in the URL."""


@dataclass(eq=False, slots=True)
class _Connection:
    socket: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    """The subscribed stream names, btcusdt@trade or btcusdt@aggTrade."""
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    """What to send, in order (None: stop)."""


class LoopbackStreams:
    """The trade streams of one loopback exchange (see the module docstring)."""

    def __init__(self) -> None:
        self.port = 0
        self._connections: set[_Connection] = set()
        self.down = False
        """Refusing connections: drop_streams was called, restore_streams not yet."""
        self.subscriptions: list[list[str]] = []
        """The params of every SUBSCRIBE received, in order."""
        self.connections_opened = 0
        self._subscribed = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(STREAM_PREFIX + "/{stream}", self._handle)

    def url(self, port: int) -> str:
        """The base URL ccxt.pro's ``urls['api']['ws']['spot']`` takes (it adds ``/<n>``)."""
        return f"ws://127.0.0.1:{port}{STREAM_PREFIX}"

    async def until_subscribed(self, count: int) -> None:
        """Until ``count`` SUBSCRIBE requests have come (a test awaits ccxt.pro's)."""
        while len(self.subscriptions) < count:
            self._subscribed.clear()
            await self._subscribed.wait()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------ commands

    async def drop_streams(self) -> None:
        """Close every stream connection (code 1001, going away) and refuse new ones."""
        self.down = True
        await self.close_connections()

    async def close_connections(self) -> None:
        """Close every stream connection (code 1001, going away): the server stops."""
        connections = list(self._connections)
        for connection in connections:
            connection.outbox.put_nowait(None)
        await asyncio.gather(*(c.socket.close(code=1001) for c in connections))

    def restore_streams(self) -> None:
        """Accept stream connections again."""
        self.down = False

    def publish(self, trade: VenueTrade, event_ms: int) -> None:
        """Push one trade (the tape's or an account's fill) to its market's subscribers,
        on each of its streams as that stream shows it."""
        market = trade.symbol.lower()
        payloads = {
            market + "@trade": orjson.dumps(_trade_event(trade, event_ms)),
            market + "@aggTrade": orjson.dumps(_agg_trade_event(trade, event_ms)),
        }
        for connection in self._connections:
            for stream, payload in payloads.items():
                if stream in connection.streams:
                    connection.outbox.put_nowait(payload)

    # ------------------------------------------------------------ WebSocket

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.json_response({"code": -1, "msg": "streams are down"}, status=503)
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        connection = _Connection(socket)
        self._connections.add(connection)
        self.connections_opened += 1
        sender = asyncio.create_task(self._send(connection), name="loopback-stream-sender")
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    self._command(connection, message.data)
        finally:
            self._connections.discard(connection)
            connection.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
        return socket

    def _command(self, connection: _Connection, text: str) -> None:
        try:
            request: Any = orjson.loads(text)
            method, params, request_id = request["method"], request["params"], request["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            error = {"code": 2, "msg": "Invalid request"}
            connection.outbox.put_nowait(orjson.dumps({"error": error, "id": None}))
            return
        if method == "SUBSCRIBE":
            connection.streams.update(params)
            self.subscriptions.append(list(params))
            self._subscribed.set()
        elif method == "UNSUBSCRIBE":
            connection.streams.difference_update(params)
        else:
            error = {"code": 1, "msg": f"Unknown method {method}"}
            connection.outbox.put_nowait(orjson.dumps({"error": error, "id": request_id}))
            return
        connection.outbox.put_nowait(orjson.dumps({"result": None, "id": request_id}))

    @staticmethod
    async def _send(connection: _Connection) -> None:
        while (payload := await connection.outbox.get()) is not None:
            if connection.socket.closed:
                return
            await connection.socket.send_str(payload.decode())


def _trade_event(trade: VenueTrade, event_ms: int) -> dict[str, Any]:
    """Binance's ``@trade`` event: the trade, by its trade id."""
    return {
        "e": "trade",
        "E": event_ms,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": _fmt(trade.price),
        "q": _fmt(trade.qty),
        "T": trade.time_ms,
        "m": trade.side == "SELL",  # the buyer made the market: the taker sold
        "M": True,
    }


def _agg_trade_event(trade: VenueTrade, event_ms: int) -> dict[str, Any]:
    """Binance's ``@aggTrade`` event: the trade's aggregate (one trade), by aggregate id."""
    return {
        "e": "aggTrade",
        "E": event_ms,
        "s": trade.symbol,
        "a": trade.agg_id,
        "p": _fmt(trade.price),
        "q": _fmt(trade.qty),
        "f": trade.trade_id,
        "l": trade.trade_id,
        "T": trade.time_ms,
        "m": trade.side == "SELL",
        "M": True,
    }


def _fmt(value: float) -> str:
    """A number as Binance writes it: a decimal string, no exponent."""
    return format(Decimal(repr(value)), "f")
