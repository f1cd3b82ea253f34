"""A loopback exchange: the REST endpoints ccxt's unmodified ``binance`` class calls,
served on 127.0.0.1 at an ephemeral port, with a seeded price path.

Point a ccxt ``binance`` instance at it with :meth:`LoopbackExchange.ccxt_urls`
(``exchange.urls['api']``). It speaks Binance's spot API v3 as far as the
daemon uses it:

- public: ``GET /api/v3/time``, ``/exchangeInfo``, ``/ticker/24hr``, ``/trades``,
  ``/aggTrades`` (the market's tape: the account's fills and the trades
  :meth:`LoopbackExchange.print_trades` or a running :meth:`start_tape` prints);
- signed (``X-MBX-APIKEY`` header, HMAC-SHA256 ``signature`` over the query or
  body, ``timestamp`` within ``recvWindow`` of the server's clock):
  ``GET /api/v3/account``, ``POST|DELETE|GET /api/v3/order``,
  ``GET|DELETE /api/v3/openOrders``, ``GET /api/v3/allOrders``, ``GET /api/v3/myTrades``.

Orders: MARKET fills at once at the path's price; LIMIT fills at once when
marketable, else rests and fills when :meth:`LoopbackExchange.step` moves the
price through it. The conditional types (``STOP_LOSS``, ``STOP_LOSS_LIMIT``,
``TAKE_PROFIT``, ``TAKE_PROFIT_LIMIT``, what ccxt's ``create_order`` sends for a
``triggerPrice`` / ``takeProfitPrice``) rest untriggered (``workingTime`` -1,
``isWorking`` false) until the price reaches their ``stopPrice`` as Binance's rules
say (a stop-loss buy at or above it, a sell at or below; a take-profit the other
way); then a ``*_LIMIT`` works as a LIMIT order at its price, the others fill as a
MARKET order at that price. One whose stop the price has reached already is refused
(``Order would trigger immediately.``), and a type the market's ``orderTypes``
(:attr:`LoopbackMarket.order_types`) does not list is refused as Binance does.
With :attr:`LoopbackExchange.part_size` set, a limit order fills at most that
quantity per price (PARTIALLY_FILLED until its last part: the order's
``executedQty`` grows); :meth:`LoopbackExchange.seeded_parts` makes each part a seeded
random size up to it. ``timeInForce`` as Binance has it: GTC rests; IOC fills
what it can at once and the rest EXPIRES; FOK fills whole at once or EXPIRES
unfilled. A ``newClientOrderId`` already used is refused with Binance's
``-2010 Duplicate order sent.``, so a resubmission cannot make a second order.
Fees are charged in the quote currency (``fee_rate`` of the notional), or in
the base currency on buys when ``fee_in_base`` is set, as Binance spot does, or in a
third asset when ``fee_asset`` is set (BNB: the notional's fee at the price of
``BNB`` + quote, a market of the exchange), as Binance does with "pay fees with BNB".

Public trade streams (tests/venues/loopback_streams.py): Binance's ``<symbol>@trade``
(trade ids, as ``/trades`` and ``/myTrades``) and ``<symbol>@aggTrade`` (aggregate ids,
another series, as ``/aggTrades``) WebSockets on the same server, at
:meth:`LoopbackExchange.ccxt_ws_urls` (ccxt.pro's ``urls['api']['ws']``), pushing every
trade of the tape and every fill as it is made;
:meth:`drop_streams` closes them and refuses new ones until :meth:`restore_streams`.

Failures on command: :meth:`reject_next`, :meth:`rate_limit_next` (HTTP 429),
:meth:`hold_next_submit` (books the order, then answers only after the client
gave up: a submit that timed out after it was accepted), :meth:`hold_next_revision`
(a replace's new order held before it is booked), :attr:`skew_ms` (the
server's clock ahead of the client's), :meth:`go_down` and :meth:`come_back` (the
whole server away and back on the same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.venues.loopback_streams import LoopbackStreams

API_PREFIX = "/api/v3"

ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
"""The order types of a market, as Binance spot lists them for BTCUSDT (no LIMIT_MAKER:
the loopback does not implement it)."""

CONDITIONAL = {
    "STOP_LOSS": ("MARKET", 1),
    "STOP_LOSS_LIMIT": ("LIMIT", 1),
    "TAKE_PROFIT": ("MARKET", -1),
    "TAKE_PROFIT_LIMIT": ("LIMIT", -1),
}
"""Binance's conditional types: what each works as once triggered, and its direction
(+1: a buy triggers at or above its stop price, a sell at or below; -1 the other way)."""

UNSUPPORTED = {
    "MARKET": "Market orders are not supported for this symbol.",
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
"""Binance's -2010 messages for a type a symbol does not take (errors.md)."""

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoopbackMarket:
    """One spot market: ``BTC`` / ``USDT`` is ``BTCUSDT`` on the wire, ``BTC/USDT`` in ccxt."""

    base: str
    quote: str
    start_price: float
    tick_size: float = 0.01
    step_size: float = 0.00001
    min_qty: float = 0.00001
    min_notional: float = 5.0
    volatility: float = 0.001
    """Standard deviation of one step's relative move."""
    order_types: tuple[str, ...] = ORDER_TYPES
    """What exchangeInfo lists as its ``orderTypes`` (and the only types it takes)."""

    @property
    def id(self) -> str:
        return self.base + self.quote

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"


@dataclass(slots=True)
class VenueOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: float
    orig_qty: float
    time_ms: int
    executed_qty: float = 0.0
    cumulative_quote: float = 0.0
    status: str = "NEW"
    update_ms: int = 0
    fills: list[Json] = field(default_factory=list)
    reserved: tuple[str, float] | None = None
    """The asset and amount the order locks while it is open."""
    stop_price: float = 0.0
    """A conditional order's ``stopPrice``; 0 for the others."""
    working_ms: int = 0
    """When it began to work (Binance's ``workingTime``): -1 while a conditional order
    waits for its stop price."""

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def waiting(self) -> bool:
        """A conditional order not triggered yet."""
        return self.working_ms < 0

    @property
    def works_as(self) -> str:
        """LIMIT or MARKET: what the order is (a conditional one once triggered)."""
        return CONDITIONAL[self.type][0] if self.type in CONDITIONAL else self.type


@dataclass(slots=True)
class VenueTrade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: float
    qty: float
    commission: float
    commission_asset: str
    time_ms: int
    is_maker: bool
    agg_id: int
    """Its aggregate trade's id (``aggTrades``, ``@aggTrade``): a series of its own,
    not the trade id (one trade per aggregate here)."""


class ApiError(Exception):
    """A Binance error reply: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _fmt(value: float) -> str:
    """A number as Binance writes it: a decimal string, no exponent."""
    return format(Decimal(repr(value)), "f")


class LoopbackExchange:
    """Binance's spot REST API on 127.0.0.1, backed by in-memory accounts and a price path."""

    def __init__(
        self,
        api_key: str,
        secret: str,
        markets: list[LoopbackMarket],
        balances: dict[str, float],
        seed: int = 7,
        fee_rate: float = 0.001,
        fee_in_base: bool = False,
        fee_asset: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self._secret = secret.encode()
        self.markets = {market.id: market for market in markets}
        self.balances = {asset: [free, 0.0] for asset, free in balances.items()}
        """asset -> [free, locked]"""
        self.prices = {market.id: market.start_price for market in markets}
        self._random = random.Random(seed)
        self.fee_rate = fee_rate
        self.fee_in_base = fee_in_base
        self.fee_asset = fee_asset
        """A third asset every fee is taken in (BNB), at its market's price; None: none."""
        self.part_size: float | None = None
        """The most a limit order fills at one price (partial fills); None: whole."""
        self._part_random: random.Random | None = None
        self._clock = clock
        self.skew_ms = 0
        """How far the server's clock runs ahead of ``clock`` (negative: behind)."""
        self.orders: dict[int, VenueOrder] = {}
        self.by_client_id: dict[str, VenueOrder] = {}
        self.trades: list[VenueTrade] = []
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in arrival order."""
        self.on_request: Callable[[str, str], None] = lambda method, endpoint: None
        """Called with each request's method and endpoint before it is handled."""
        self.submissions = 0
        """POST /order requests received, duplicates and rejections included."""
        self._order_ids = itertools.count(1_000)
        self._trade_ids = itertools.count(5_000)
        self._agg_ids = itertools.count(70_000)
        """Aggregate trade ids: another series than the trade ids, as on Binance."""
        self._rejections: list[tuple[int, str]] = []
        self._rate_limited = 0
        self._held_submits = 0
        self._held_revisions = 0
        self._released = asyncio.Event()
        self.holding = asyncio.Event()
        """Set while a submit is held (booked, its answer not sent): a test waits on it."""
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.streams = LoopbackStreams()
        """The public trade streams (WebSocket), on the same server."""
        self._init_market_data(seed)

    # ------------------------------------------------------------ lifecycle

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{endpoint:.+}", self._handle)
        self.streams.add_routes(app)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        self.stop_tape()
        self._released.set()
        await self.streams.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> LoopbackExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    def ccxt_urls(self) -> dict[str, str]:
        """``urls['api']`` entries of ccxt's binance class that the spot API uses."""
        return {"public": self.url, "private": self.url, "v1": self.url}

    def ccxt_ws_urls(self) -> dict[str, str]:
        """``urls['api']['ws']`` entries of ccxt.pro's binance class for the spot streams."""
        return {"spot": self.streams.url(self.port)}

    async def drop_streams(self) -> None:
        """Close every public stream connection and refuse new ones (REST stays up)."""
        await self.streams.drop_streams()

    def restore_streams(self) -> None:
        self.streams.restore_streams()

    # ------------------------------------------------------------ commands

    def reject_next(self, count: int = 1, code: int = -2010, msg: str = "rejected") -> None:
        """Refuse the next ``count`` order submissions with Binance error ``code``."""
        self._rejections.extend([(code, msg)] * count)

    def rate_limit_next(self, count: int = 1) -> None:
        """Answer the next ``count`` signed requests with HTTP 429."""
        self._rate_limited += count

    def hold_next_submit(self, count: int = 1) -> None:
        """Book the next ``count`` orders, then answer only when :meth:`release` is called
        (or the server closes): the client times out on an order the venue has."""
        self._held_submits += count

    def hold_next_revision(self, count: int = 1) -> None:
        """Hold the next ``count`` submissions of a replace's new order (a client order id
        with a revision, ``….1``) *before* booking them, until :meth:`release`, then refuse
        them: a daemon killed meanwhile is inside a replace, between its cancel and its
        new order."""
        self._held_revisions += count

    def seeded_parts(self, largest: float, seed: int) -> None:
        """Fill limit orders in parts of a seeded random size, from one amount step to
        ``largest``, one part per price (see :attr:`part_size`)."""
        self.part_size = largest
        self._part_random = random.Random(f"{seed}:parts")

    def release(self) -> None:
        """Answer what is held; a hold not used yet is dropped."""
        self._held_submits = self._held_revisions = 0
        self._released.set()
        self._released = asyncio.Event()
        self.holding.clear()

    def step(self, count: int = 1) -> None:
        """Move every market's price ``count`` steps along its seeded path, filling the
        resting limit orders each price reaches."""
        for _ in range(count):
            for market in self.markets.values():
                move = self._random.gauss(0.0, market.volatility)
                price = self._round_price(market, self.prices[market.id] * math.exp(move))
                self.prices[market.id] = price
                self._fill_resting(market, price)

    def set_price(self, symbol: str, price: float) -> None:
        """Set a market's price (ccxt's ``BTC/USDT`` or Binance's ``BTCUSDT``)."""
        market = self.markets[symbol.replace("/", "")]
        self.prices[market.id] = self._round_price(market, price)
        self._fill_resting(market, self.prices[market.id])

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [
            order
            for order in self.orders.values()
            if order.is_open and (symbol is None or order.symbol == symbol.replace("/", ""))
        ]

    def position(self, asset: str) -> float:
        """Free plus locked balance of ``asset``."""
        free, locked = self.balances.get(asset, [0.0, 0.0])
        return free + locked

    def now_ms(self) -> int:
        return int(self._clock() * 1000) + self.skew_ms

    # ------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        self.requests.append((request.method, endpoint))
        self.on_request(request.method, endpoint)
        route = self._routes().get((request.method, endpoint))
        if route is None:
            return _error(ApiError(404, -1100, f"no endpoint {request.method} {endpoint}"))
        handler, signed = route
        try:
            params = await self._params(request, signed)
            if endpoint == "order" and request.method == "POST":
                return await self._post_order(params)
            return web.json_response(handler(params))
        except ApiError as exc:
            return _error(exc)

    def _routes(self) -> dict[tuple[str, str], tuple[Callable[[dict[str, str]], Any], bool]]:
        return {
            ("GET", "time"): (lambda _: {"serverTime": self.now_ms()}, False),
            ("GET", "ping"): (lambda _: {}, False),
            ("GET", "exchangeInfo"): (self._exchange_info, False),
            ("GET", "ticker/24hr"): (self._ticker, False),
            ("GET", "trades"): (self._public_trades, False),
            **self._market_data_routes(),
            ("GET", "account"): (self._account, True),
            ("POST", "order"): (lambda _: None, True),
            ("GET", "order"): (self._get_order, True),
            ("DELETE", "order"): (self._cancel_order, True),
            ("GET", "openOrders"): (self._open_orders, True),
            ("GET", "allOrders"): (self._all_orders, True),
            ("DELETE", "openOrders"): (self._cancel_open_orders, True),
            ("GET", "myTrades"): (self._my_trades, True),
        }

    async def _params(self, request: web.Request, signed: bool) -> dict[str, str]:
        query = request.query_string
        body = await request.text() if request.method in ("POST", "PUT") else ""
        payload = body or query
        params = dict(parse_qsl(payload, keep_blank_values=True))
        if signed:
            self._authenticate(request, payload, params)
        return params

    def _authenticate(self, request: web.Request, payload: str, params: dict[str, str]) -> None:
        if self._rate_limited > 0:
            self._rate_limited -= 1
            raise ApiError(429, -1003, "Too many requests; current limit is 1200 per minute.")
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        unsigned, _, signature = payload.rpartition("&signature=")
        expected = hmac.new(self._secret, unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        timestamp = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        server = self.now_ms()
        if timestamp >= server + 1000 or server - timestamp > window:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        params.pop("signature", None)

    # ------------------------------------------------------------ public

    def _exchange_info(self, _: dict[str, str]) -> Json:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_market_info(market) for market in self.markets.values()],
        }

    def _ticker(self, params: dict[str, str]) -> Json:
        market = self._market(params)
        price = _fmt(self.prices[market.id])
        return {
            "symbol": market.id,
            "lastPrice": price,
            "bidPrice": price,
            "askPrice": price,
            "openPrice": _fmt(market.start_price),
            "closeTime": self.now_ms(),
        }

    def _public_trades(self, params: dict[str, str]) -> list[Json]:
        market = self._market(params)
        return [
            {
                "id": trade.trade_id,
                "price": _fmt(trade.price),
                "qty": _fmt(trade.qty),
                "quoteQty": _fmt(trade.qty * trade.price),
                "time": trade.time_ms,
                "isBuyerMaker": trade.side == "SELL",
                "isBestMatch": True,
            }
            for trade in self.trades
            if trade.symbol == market.id
        ][-int(params.get("limit", "500")) :]

    # ------------------------------------------------------------ account

    def _account(self, _: dict[str, str]) -> Json:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": _fmt(free), "locked": _fmt(locked)}
                for asset, (free, locked) in self.balances.items()
            ],
            "permissions": ["SPOT"],
        }

    def _my_trades(self, params: dict[str, str]) -> list[Json]:
        market = self._market(params)
        start = int(params.get("startTime", "0"))
        from_id = int(params.get("fromId", "0"))
        order_id = params.get("orderId")
        rows = [
            _trade_json(trade)
            for trade in self.trades
            if trade.symbol == market.id
            and trade.time_ms >= start
            and trade.trade_id >= from_id
            and (order_id is None or trade.order_id == int(order_id))
        ]
        return rows[: min(int(params.get("limit", "500")), 1000)]

    # ------------------------------------------------------------ orders

    async def _post_order(self, params: dict[str, str]) -> web.Response:
        self.submissions += 1
        if self._held_revisions > 0 and "." in params.get("newClientOrderId", ""):
            self._held_revisions -= 1
            self.holding.set()
            await self._released.wait()
            raise ApiError(503, -1007, "Timeout waiting for response from backend server.")
        if self._rejections:
            code, msg = self._rejections.pop(0)
            raise ApiError(400, code, msg)
        order = self._new_order(params)
        if self._held_submits > 0:
            self._held_submits -= 1
            self.holding.set()
            await self._released.wait()
        return web.json_response(_order_json(order, full=True))

    def _new_order(self, params: dict[str, str]) -> VenueOrder:
        market = self._market(params)
        client_id = params.get("newClientOrderId") or f"loopback-{next(self._order_ids)}"
        if client_id in self.by_client_id:
            raise ApiError(400, -2010, "Duplicate order sent.")
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT", *CONDITIONAL):
            raise ApiError(400, -1116, f"Invalid orderType or side: {kind} {side}.")
        if kind not in market.order_types:
            raise ApiError(400, -2010, UNSUPPORTED.get(kind, "Unsupported order combination"))
        works_as = CONDITIONAL[kind][0] if kind in CONDITIONAL else kind
        quantity = float(params.get("quantity", "0"))
        price = float(params.get("price", "0")) if works_as == "LIMIT" else 0.0
        stop = self._stop_price(kind, side, params, self.prices[market.id])
        self._check_quantity(market, quantity, price or stop or self.prices[market.id])
        now = self.now_ms()
        order = VenueOrder(
            next(self._order_ids),
            client_id,
            market.id,
            side,
            kind,
            params.get("timeInForce", "GTC"),
            price,
            quantity,
            now,
            update_ms=now,
            stop_price=stop,
            working_ms=-1 if kind in CONDITIONAL else now,
        )
        if order.time_in_force not in ("GTC", "IOC", "FOK"):
            raise ApiError(400, -1115, "Invalid timeInForce.")
        self._reserve(market, order)
        self.orders[order.order_id] = order
        self.by_client_id[client_id] = order
        if not order.waiting:
            self._work(market, order, self.prices[market.id])
        return order

    @staticmethod
    def _stop_price(kind: str, side: str, params: dict[str, str], current: float) -> float:
        """A conditional order's stop price, checked as Binance checks it: given, and not
        reached already (Binance refuses an order that would trigger at once); 0 for the
        other types."""
        if kind not in CONDITIONAL:
            return 0.0
        if CONDITIONAL[kind][0] == "MARKET" and "timeInForce" in params:
            raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        stop = float(params.get("stopPrice", "0") or "0")
        if stop <= 0:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.",
            )
        if _stop_reached(kind, side, stop, current):
            raise ApiError(400, -2010, "Order would trigger immediately.")
        return stop

    def _work(self, market: LoopbackMarket, order: VenueOrder, price: float) -> None:
        """``order`` works from now on, the market at ``price``: a MARKET fills there; a
        LIMIT fills what is marketable (FOK: whole or nothing) and rests, or (IOC, FOK)
        expires what it could not fill at once."""
        if order.works_as == "MARKET":
            self._fill(market, order, price, maker=False)
            return
        if _marketable(order, price) and (
            order.time_in_force != "FOK" or self._part(order) >= order.orig_qty
        ):
            self._fill(market, order, order.price, maker=False, quantity=self._part(order))
        if order.is_open and order.time_in_force in ("IOC", "FOK"):
            self._cancel(order, "EXPIRED")  # what it could not fill at once

    def _part(self, order: VenueOrder) -> float:
        """What one price fills of ``order`` (``part_size`` at most)."""
        left = order.orig_qty - order.executed_qty
        if self.part_size is None:
            return left
        if self._part_random is None:
            return min(left, self.part_size)
        step = self.markets[order.symbol].step_size
        steps = self._part_random.randint(1, max(1, round(self.part_size / step)))
        return min(left, float(Decimal(steps) * Decimal(repr(step))))

    def _check_quantity(self, market: LoopbackMarket, quantity: float, price: float) -> None:
        steps = quantity / market.step_size
        if quantity < market.min_qty or abs(steps - round(steps)) > 1e-6:
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if quantity * price < market.min_notional:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")

    def _reserve(self, market: LoopbackMarket, order: VenueOrder) -> None:
        """Lock what the order may spend; refuse it when the account does not have it."""
        if order.side == "BUY":
            asset = market.quote
            price = order.price or max(order.stop_price, self.prices[market.id]) * 1.05
            amount = order.orig_qty * price
        else:
            asset, amount = market.base, order.orig_qty
        free = self.balances.setdefault(asset, [0.0, 0.0])
        if free[0] + 1e-12 < amount:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
        free[0] -= amount
        free[1] += amount
        order.reserved = (asset, amount)

    def _release_reserve(self, order: VenueOrder, share: float = 1.0) -> None:
        """Unlock ``share`` of what the order still locks (1: all of it)."""
        assert order.reserved is not None
        asset, amount = order.reserved
        released = amount if share >= 1.0 else amount * share
        order.reserved = None if share >= 1.0 else (asset, amount - released)
        self.balances[asset][0] += released
        self.balances[asset][1] -= released

    def _fill(
        self,
        market: LoopbackMarket,
        order: VenueOrder,
        price: float,
        maker: bool,
        quantity: float | None = None,
    ) -> None:
        left = order.orig_qty - order.executed_qty
        quantity = left if quantity is None or quantity >= left - 1e-12 else quantity
        notional = quantity * price
        self._release_reserve(order, quantity / left)
        base, quote = self.balances.setdefault(market.base, [0.0, 0.0]), self.balances[market.quote]
        if self.fee_asset is not None:
            fee_asset = self.fee_asset
            fee = notional * self.fee_rate / self.prices[fee_asset + market.quote]
            base[0] += quantity if order.side == "BUY" else -quantity
            quote[0] += -notional if order.side == "BUY" else notional
            self.balances.setdefault(fee_asset, [0.0, 0.0])[0] -= fee
        elif order.side == "BUY" and self.fee_in_base:
            fee, fee_asset = quantity * self.fee_rate, market.base
            base[0] += quantity - fee
            quote[0] -= notional
        elif order.side == "BUY":
            fee, fee_asset = notional * self.fee_rate, market.quote
            base[0] += quantity
            quote[0] -= notional + fee
        else:
            fee, fee_asset = notional * self.fee_rate, market.quote
            base[0] -= quantity
            quote[0] += notional - fee
        now = self.now_ms()
        trade = VenueTrade(
            next(self._trade_ids), order.order_id, market.id, order.side, price, quantity,
            fee, fee_asset, now, maker, next(self._agg_ids),
        )  # fmt: skip
        self.trades.append(trade)
        self.streams.publish(trade, now)
        order.executed_qty += quantity
        order.cumulative_quote += notional
        whole = order.executed_qty >= order.orig_qty - 1e-12
        order.status, order.update_ms = ("FILLED" if whole else "PARTIALLY_FILLED"), now
        order.fills.append(
            {
                "price": _fmt(price),
                "qty": _fmt(quantity),
                "commission": _fmt(fee),
                "commissionAsset": fee_asset,
                "tradeId": trade.trade_id,
            }
        )

    def _fill_resting(self, market: LoopbackMarket, price: float) -> None:
        """The market trades at ``price``: the conditional orders it reaches trigger (and
        work from here, at this price), the limit orders it reaches fill."""
        for order in self.open_orders(market.id):
            if order.waiting:
                if _stop_reached(order.type, order.side, order.stop_price, price):
                    order.working_ms = order.update_ms = self.now_ms()
                    self._work(market, order, price)
            elif _marketable(order, price):
                self._fill(market, order, order.price, maker=True, quantity=self._part(order))

    def _find(self, params: dict[str, str]) -> VenueOrder:
        market = self._market(params)
        order: VenueOrder | None = None
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            order = self.by_client_id.get(params["origClientOrderId"])
        if order is None or order.symbol != market.id:
            raise ApiError(400, -2013, "Order does not exist.")
        return order

    def _get_order(self, params: dict[str, str]) -> Json:
        return _order_json(self._find(params))

    def _cancel_order(self, params: dict[str, str]) -> Json:
        try:
            order = self._find(params)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order sent.") from None
        if not order.is_open:
            raise ApiError(400, -2011, "Unknown order sent.")
        self._cancel(order)
        return _order_json(order)

    def _cancel(self, order: VenueOrder, status: str = "CANCELED") -> None:
        self._release_reserve(order)
        order.status, order.update_ms = status, self.now_ms()

    def _open_orders(self, params: dict[str, str]) -> list[Json]:
        symbol = self._market(params).id if "symbol" in params else None
        return [_order_json(order) for order in self.open_orders(symbol)]

    def _all_orders(self, params: dict[str, str]) -> list[Json]:
        """Binance's allOrders: a symbol's orders, open or not, from ``orderId`` (else from
        ``startTime``), at most ``limit`` (500, <= 1000)."""
        market = self._market(params)
        from_id = int(params.get("orderId", "0"))
        start = int(params.get("startTime", "0"))
        rows = [
            _order_json(order)
            for order in self.orders.values()
            if order.symbol == market.id and order.order_id >= from_id and order.time_ms >= start
        ]
        return rows[: min(int(params.get("limit", "500")), 1000)]

    def _cancel_open_orders(self, params: dict[str, str]) -> list[Json]:
        orders = self.open_orders(self._market(params).id)
        if not orders:
            raise ApiError(400, -2011, "Unknown order sent.")
        for order in orders:
            self._cancel(order)
        return [_order_json(order) for order in orders]

    # ------------------------------------------------------------ market data (public)
    # The market's own trades, beside the account's, for a market data feed: Binance's
    # GET /api/v3/aggTrades (ccxt's fetch_trades on spot), and the server going away.

    def _init_market_data(self, seed: int) -> None:
        self.tape: list[VenueTrade] = []
        """The trades of other market participants, printed by print_trades."""
        self._tape_random = random.Random(f"{seed}:tape")
        self._tape_task: asyncio.Task[None] | None = None

    def _market_data_routes(
        self,
    ) -> dict[tuple[str, str], tuple[Callable[[dict[str, str]], Any], bool]]:
        return {("GET", "aggTrades"): (self._agg_trades, False)}

    def print_trades(self, count: int = 1) -> None:
        """``count`` rounds of one public trade per market: the price takes a step of its
        seeded path (filling the resting orders it reaches) and trades a seeded size."""
        for _ in range(count):
            self.step()
            for market in self.markets.values():
                qty = self._tape_random.randint(1, 100) * market.step_size * 10
                side = self._tape_random.choice(("BUY", "SELL"))
                trade = VenueTrade(
                    next(self._trade_ids), 0, market.id, side, self.prices[market.id], qty,
                    0.0, market.quote, self.now_ms(), False, next(self._agg_ids),
                )  # fmt: skip
                self.tape.append(trade)
                self.streams.publish(trade, trade.time_ms)

    def start_tape(self, interval: float) -> None:
        """Print a round of public trades every ``interval`` seconds until stop_tape."""

        async def tape() -> None:
            while True:
                await asyncio.sleep(interval)
                self.print_trades()

        self.stop_tape()
        self._tape_task = asyncio.get_running_loop().create_task(tape(), name="loopback-tape")

    def stop_tape(self) -> None:
        if self._tape_task is not None:
            self._tape_task.cancel()
            self._tape_task = None

    def market_trades(self, symbol: str) -> list[VenueTrade]:
        """Every trade of a market (the account's and the tape's), by id (trade and
        aggregate ids go up together)."""
        market_id = symbol.replace("/", "")
        trades = [t for t in (*self.trades, *self.tape) if t.symbol == market_id]
        return sorted(trades, key=lambda t: t.trade_id)

    def _agg_trades(self, params: dict[str, str]) -> list[Json]:
        """Binance's compressed trades, by aggregate id: from ``fromId`` (an aggregate
        id, inclusive), or within
        ``startTime``..``endTime``, else the most recent; at most ``limit`` (500, <= 1000)."""
        market = self._market(params)
        limit = min(int(params.get("limit", "500")), 1000)
        trades = self.market_trades(market.id)
        if "fromId" in params:
            trades = [t for t in trades if t.agg_id >= int(params["fromId"])][:limit]
        elif "startTime" in params or "endTime" in params:
            start, end = int(params.get("startTime", "0")), int(params.get("endTime", str(2**62)))
            trades = [t for t in trades if start <= t.time_ms <= end][:limit]
        else:
            trades = trades[-limit:]
        return [
            {
                "a": t.agg_id,
                "p": _fmt(t.price),
                "q": _fmt(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.side == "SELL",
                "M": True,
            }
            for t in trades
        ]

    async def go_down(self) -> None:
        """Stop serving (every connection closed, the port refusing): the venue is away."""
        self.stop_tape()
        # First: the server's shutdown would wait a minute for the open WebSockets.
        await self.streams.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        """Serve again on the same port."""
        self._runner = web.AppRunner(self._app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    # ------------------------------------------------------------ helpers

    def _market(self, params: dict[str, str]) -> LoopbackMarket:
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        return market

    @staticmethod
    def _round_price(market: LoopbackMarket, price: float) -> float:
        ticks = max(1, round(price / market.tick_size))
        return float(Decimal(ticks) * Decimal(repr(market.tick_size)))


def _stop_reached(kind: str, side: str, stop: float, price: float) -> bool:
    """Whether ``price`` triggers a conditional order of type ``kind`` on ``side`` with
    stop price ``stop`` (Binance: a stop-loss buy at or above it, a sell at or below; a
    take-profit buy at or below it, a sell at or above)."""
    direction = CONDITIONAL[kind][1] * (1 if side == "BUY" else -1)
    return direction * (price - stop) >= 0


def _marketable(order: VenueOrder, price: float) -> bool:
    if order.works_as != "LIMIT" or order.waiting:
        return False
    return price <= order.price if order.side == "BUY" else price >= order.price


def _market_info(market: LoopbackMarket) -> Json:
    return {
        "symbol": market.id,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": list(market.order_types),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _fmt(market.tick_size),
                "maxPrice": "1000000.00",
                "tickSize": _fmt(market.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _fmt(market.min_qty),
                "maxQty": "9000.00",
                "stepSize": _fmt(market.step_size),
            },
            {"filterType": "NOTIONAL", "minNotional": _fmt(market.min_notional)},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def _order_json(order: VenueOrder, full: bool = False) -> Json:
    body: Json = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": _fmt(order.price),
        "origQty": _fmt(order.orig_qty),
        "executedQty": _fmt(order.executed_qty),
        "cummulativeQuoteQty": _fmt(order.cumulative_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "stopPrice": _fmt(order.stop_price),
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "workingTime": order.working_ms,
        "isWorking": not order.waiting,
    }
    if full:
        body["transactTime"] = order.update_ms
        body["fills"] = order.fills
    return body


def _trade_json(trade: VenueTrade) -> Json:
    return {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": _fmt(trade.price),
        "qty": _fmt(trade.qty),
        "quoteQty": _fmt(trade.qty * trade.price),
        "commission": _fmt(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time_ms,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def _error(exc: ApiError) -> web.Response:
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status, headers=headers)


@contextlib.contextmanager
def serving_in_thread(exchange: LoopbackExchange) -> Iterator[LoopbackExchange]:
    """Serve ``exchange`` from a loop of its own thread: for code under test that runs
    its own event loop (the CLI's ``asyncio.run``)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loopback-exchange", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(exchange.start(), loop).result(timeout=10)
        yield exchange
    finally:
        asyncio.run_coroutine_threadsafe(exchange.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
