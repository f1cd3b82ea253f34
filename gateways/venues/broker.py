"""The live broker: the :class:`~orchestrator.trading.broker.Broker` port on a venue,
through ccxt's async API.

The port is synchronous and the network is not, so the bridge is a queue of tasks:
``submit`` checks that the venue is connected and knows the symbol (else the order is
rejected at once, with the reason: no order is sent blind), records the order and
starts a task that sends it; the task's outcome (a fill, a rejection) is kept until
the pipeline collects it (``on_tick``, ``expire``; the broker asks for a collection
as soon as it has one). The event loop never waits for the venue.

Before an order is sent, the journal has committed it (``before_send``: the journal
writer's flush), so its id, and its client order id (``client_id_prefix`` + the
journal's order id), can never be given to another order after a crash: a
resubmission is refused by the venue as a duplicate, and looked up instead.

A submit whose answer is lost (a timeout, a dropped connection) is not sent again:
the poll looks the order up by its client order id until the venue says what became
of it. The poll also follows the orders that rest on the venue (a limit IOC until it
is done) and tells the connection's state: a failing venue is shown as disconnected,
with the reason, and refuses new orders until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from ccxt.base import errors as ccxt_errors

from gateways.venues.config import VenueConfig
from gateways.venues.connector import build_exchange, describe_venue_error
from gateways.venues.credentials import VenueCredentials
from gateways.venues.ledger import VenueLedger
from orchestrator.model.clock import Clock
from orchestrator.model.events import VenueState
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, VenueFill, rejection
from orchestrator.trading.broker import NO_FILLS

log = structlog.get_logger("gateways.venues.broker")

MAX_BACKOFF_SECONDS = 30.0

DUPLICATE = "Duplicate order"
"""How Binance refuses a client order id it already has (-2010 Duplicate order sent.)."""


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class _Sent:
    order: Order
    client_id: str
    kind: str
    """ccxt's order type: market, or limit (sent IOC)."""
    price: float | None
    sent: bool = False
    """The request left (its answer may be lost): from here on it is only looked up."""
    lookup: bool = False
    """Its outcome is unknown or not final: the poll asks the venue."""
    sent_at: float = 0.0
    """When the request left: until the lookup window passes, "not found" is not final."""


class VenueBroker:
    """Orders of the strategies that trade on venue ``name``, sent through ccxt."""

    def __init__(
        self,
        name: str,
        config: VenueConfig,
        credentials: VenueCredentials,
        clock: Clock,
        ids: IdFactory,
        exchange_factory: Callable[[str, VenueConfig, VenueCredentials], Any] = build_exchange,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._ids = ids
        self._exchange = exchange_factory(name, config, credentials)
        self._markets: dict[str, Any] = {}
        self._state = VenueState(name, False, "not connected yet")
        self._orders: dict[str, _Sent] = {}
        self._settled: list[Fill] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.ledger = VenueLedger()
        """What the daemon's fills here added to the account, per base asset."""
        self.unreconciled: str | None = "not reconciled with the journal yet"
        """Why no order may go yet: set until the start's reconciliation is done (then
        the journal knows what became of every order in flight at the last stop)."""
        self.on_settled: Callable[[], None] = lambda: None
        """Called (soon, from the loop) when outcomes wait: the execution service collects."""
        self.on_state: Callable[[], None] = lambda: None
        """Called when the connection's state changes: the status is announced."""
        self.before_send: Callable[[], Awaitable[None]] = _nothing
        """Awaited before each order leaves: the journal's commit of what came before."""

    # ------------------------------------------------------------ state

    @property
    def state(self) -> VenueState:
        return self._state

    @property
    def exchange(self) -> Any:
        """The ccxt exchange (reconciliation asks it too)."""
        return self._exchange

    @property
    def markets(self) -> dict[str, Any]:
        return self._markets

    def client_id(self, order_id: str) -> str:
        """The client order id of the journal's order ``order_id`` on this venue."""
        return self.config.client_id_prefix + order_id

    def lookup_window(self) -> float:
        """Seconds after an order was sent during which the venue may still receive it:
        the signed request's recvWindow where the exchange has one (the venue refuses
        it after), else the request's timeout. An order not found sooner is looked up
        again, not given up."""
        window_ms = self._exchange.options.get("recvWindow") if self._exchange.options else None
        if isinstance(window_ms, int | float) and window_ms > 0:
            return float(window_ms) / 1000.0 + self.config.timeout_seconds
        return 2 * self.config.timeout_seconds

    async def fetch(self, order: Order) -> dict[str, Any]:
        """The venue's order by its client order id (ccxt's OrderNotFound when it has none),
        with its fees: an order read back (Binance's GET /order) does not carry them, its
        trades do."""
        params = {"clientOrderId": self.client_id(order.id)}
        result = dict(await self._exchange.fetch_order(None, order.symbol, params))
        filled = float(result.get("filled") or 0.0)
        if filled > 0 and result.get("status") != "open" and not self._fees(result):
            result["fees"] = await self._trade_fees(order.symbol, result.get("id"))
        return result

    async def _trade_fees(self, symbol: str, venue_id: Any) -> list[dict[str, Any]]:
        if venue_id is None:
            return []
        if self._exchange.has.get("fetchOrderTrades"):
            trades = await self._exchange.fetch_order_trades(str(venue_id), symbol)
        else:
            trades = await self._exchange.fetch_my_trades(symbol)
            trades = [t for t in trades if str(t.get("order")) == str(venue_id)]
        return [trade["fee"] for trade in trades if trade.get("fee")]

    async def cancel_on_venue(self, order: Order) -> None:
        """Ask the venue to cancel ``order`` (nothing when it is no longer open)."""
        params = {"clientOrderId": self.client_id(order.id)}
        with contextlib.suppress(ccxt_errors.OrderNotFound):
            await self._exchange.cancel_order(None, order.symbol, params)

    def set_mismatches(self, assets: tuple[str, ...]) -> None:
        """The assets reconciliation found mismatched: shown with the connection."""
        if assets != self._state.mismatches:
            self._state = VenueState(self.name, self._state.connected, self._state.reason, assets)
            self.on_state()

    @property
    def busy(self) -> bool:
        """Orders are on their way or settled and not yet collected: a balance read now
        may count a fill the journal does not have yet."""
        return bool(self._orders or self._settled)

    def market_problem(self, symbols: Collection[str]) -> str | None:
        missing = sorted(symbol for symbol in symbols if symbol not in self._markets)
        if not missing:
            return None
        return f"venue {self.name} has no {self.config.market_type} market {', '.join(missing)}"

    def _set_state(self, connected: bool, reason: str | None) -> None:
        if self._state.connected == connected and self._state.reason == reason:
            return
        self._state = VenueState(self.name, connected, reason, self._state.mismatches)
        log.warning("venue_state", venue=self.name, connected=connected, reason=reason)
        self.on_state()

    async def connect(self) -> bool:
        """Load the markets; True when the venue answered."""
        try:
            self._markets = dict(await self._exchange.load_markets())
        except ccxt_errors.BaseError as exc:
            self._set_state(False, describe_venue_error(self.name, exc))
            return False
        self._set_state(True, None)
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._exchange.close()

    # ------------------------------------------------------------ Broker

    @property
    def pending_count(self) -> int:
        return len(self._orders)

    def pending_orders(self) -> list[Order]:
        return [sent.order for sent in self._orders.values()]

    def submit(self, order: Order) -> Sequence[Fill]:
        """Send a market order (a limit order, IOC at its limit)."""
        kind = "market" if order.limit_price is None else "limit"
        return self._start(order, kind, order.limit_price)

    def execute(self, order: Order, price: float, ts: float) -> Sequence[Fill]:
        """A resting order the pipeline triggered: a market order now, or a limit IOC at its
        limit (docs/venues.md: limit and stop orders rest in the daemon)."""
        return self.submit(order)

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        return self._drain()

    def expire(self) -> Sequence[Fill]:
        return self._drain()

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return self._cancel(list(self._orders.values()), reason)

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        orders = [sent for sent in self._orders.values() if sent.order.strategy_id == strategy_id]
        return self._cancel(orders, reason)

    # ------------------------------------------------------------ sending

    def _start(self, order: Order, kind: str, price: float | None) -> Sequence[Fill]:
        if order.id in self._orders:
            raise ValueError(f"order {order.id} is already pending")
        problem = None if self._state.connected else self._state.reason
        if problem is not None:
            problem = f"venue {self.name} is not connected ({problem}); no order is sent blind"
        elif self.unreconciled is not None:
            problem = f"venue {self.name} takes no order: {self.unreconciled}"
        else:
            problem = self.market_problem([order.symbol])
        if problem is not None:
            return [self._rejection(order, problem)]
        sent = _Sent(order, self.client_id(order.id), kind, price)
        self._orders[order.id] = sent
        self._spawn(self._send(sent), f"venue-{self.name}-send-{order.id}")
        return NO_FILLS

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, sent: _Sent) -> None:
        order = sent.order
        await self.before_send()
        if order.id not in self._orders:
            return  # withdrawn while the journal committed
        params: dict[str, Any] = {"clientOrderId": sent.client_id}
        if sent.kind == "limit":
            params["timeInForce"] = "IOC"
        sent.sent, sent.sent_at = True, self._clock.now()
        try:
            result = await self._exchange.create_order(
                order.symbol,
                sent.kind,
                order.side.value.lower(),
                order.quantity,
                sent.price,
                params,
            )
        except (ccxt_errors.DDoSProtection, ccxt_errors.RateLimitExceeded) as exc:
            self._reject(sent, describe_venue_error(self.name, exc))  # refused before it was read
        except ccxt_errors.NetworkError as exc:
            # Lost on the way there or back (a timeout): the venue may have it. Look it up.
            log.warning("venue_submit_unknown", venue=self.name, order_id=order.id, error=str(exc))
            sent.lookup = True
        except ccxt_errors.InvalidOrder as exc:
            if DUPLICATE in str(exc):
                sent.lookup = True  # an order with this client id is there: read what it did
            else:
                self._reject(sent, describe_venue_error(self.name, exc))
        except ccxt_errors.BaseError as exc:
            self._reject(sent, describe_venue_error(self.name, exc))
        else:
            self._resolve(sent, result)

    def _cancel(self, orders: list[_Sent], reason: str) -> Sequence[Fill]:
        """Withdraw what has not left; ask the venue to cancel what rests there."""
        withdrawn = []
        for sent in orders:
            if not sent.sent:
                del self._orders[sent.order.id]
                withdrawn.append(self._rejection(sent.order, reason))
            else:
                self._spawn(self._cancel_on_venue(sent), f"venue-{self.name}-cancel")
        return withdrawn

    async def _cancel_on_venue(self, sent: _Sent) -> None:
        with contextlib.suppress(ccxt_errors.BaseError):
            await self.cancel_on_venue(sent.order)
        sent.lookup = True  # the poll reads what became of it: cancelled, or filled before

    # ------------------------------------------------------------ outcomes

    def _resolve(self, sent: _Sent, result: dict[str, Any]) -> None:
        status = result.get("status")
        filled = float(result.get("filled") or 0.0)
        if status == "open":
            sent.lookup = True
            return
        if filled > 0.0:
            self._settle(sent, self.fill_of(sent.order, result, filled))
        else:
            reason = f"venue {self.name}: the order was {status or 'not filled'}"
            self._reject(sent, reason)

    def fill_of(
        self, order: Order, result: dict[str, Any], filled: float, fill_id: str | None = None
    ) -> Fill:
        """The fill of ``order`` by the venue's ``result`` (ccxt's order), ``filled`` of it;
        ``fill_id``: a given id (reconciliation's), else a new one."""
        price = float(result.get("average") or result.get("price") or 0.0)
        fee_asset, fee = self._fee(order.symbol, result)
        venue_id = result.get("id")
        return Fill(
            self._ids("trade") if fill_id is None else fill_id,
            order.id,
            order.strategy_id,
            order.symbol,
            order.side,
            filled,
            price,
            self._commission(order.symbol, result, price),
            self._clock.now(),
            FILLED,
            venue=VenueFill(self.name, None if venue_id is None else str(venue_id), fee_asset, fee),
        )

    @staticmethod
    def _fees(result: dict[str, Any]) -> list[dict[str, Any]]:
        fees = result.get("fees") or ([result["fee"]] if result.get("fee") else [])
        return [fee for fee in fees if fee]

    def _fee(self, symbol: str, result: dict[str, Any]) -> tuple[str | None, float]:
        """The fee as the venue took it: its asset and amount. Of fees in several assets
        the one in the base asset (what the balance check must net out), else the first."""
        by_asset: dict[str, float] = {}
        for fee in self._fees(result):
            currency = fee.get("currency")
            if currency:
                by_asset[currency] = by_asset.get(currency, 0.0) + float(fee.get("cost") or 0.0)
        if not by_asset:
            return None, 0.0
        base = self._markets.get(symbol, {}).get("base")
        asset = base if base in by_asset else next(iter(by_asset))
        return asset, by_asset[asset]

    def _commission(self, symbol: str, result: dict[str, Any], price: float) -> float:
        """The order's fees in the quote currency: a fee in the base currency (Binance
        takes a buy's fee from what it bought) is converted at the fill's price."""
        market = self._markets.get(symbol, {})
        total = 0.0
        for fee in self._fees(result):
            cost = float(fee.get("cost") or 0.0)
            currency = fee.get("currency")
            if currency == market.get("quote"):
                total += cost
            elif currency == market.get("base"):
                total += cost * price
            elif cost:
                log.warning(
                    "venue_fee_not_converted", venue=self.name, currency=currency, cost=cost
                )
        return total

    def _reject(self, sent: _Sent, reason: str) -> None:
        self._settle(sent, self._rejection(sent.order, reason))

    def _settle(self, sent: _Sent, fill: Fill) -> None:
        if self._orders.pop(sent.order.id, None) is None:
            return
        self.ledger.add(fill, self._markets)
        self._settled.append(fill)
        asyncio.get_running_loop().call_soon(self.on_settled)

    def _rejection(self, order: Order, reason: str) -> Fill:
        log.info("order_rejected", venue=self.name, order_id=order.id, reason=reason)
        return rejection(order, self._ids("trade"), reason, self._clock.now())

    def _drain(self) -> Sequence[Fill]:
        if not self._settled:
            return NO_FILLS
        settled, self._settled = self._settled, []
        return settled

    # ------------------------------------------------------------ the poll

    async def run(self) -> None:
        """Keep the connection (with backoff) and follow the orders whose outcome waits."""
        backoff = self.config.poll_interval_seconds
        while True:
            healthy = await self.connect() if not self._state.connected else await self.poll()
            backoff = (
                self.config.poll_interval_seconds
                if healthy
                else min(backoff * 2, MAX_BACKOFF_SECONDS)
            )
            await asyncio.sleep(backoff)

    async def poll(self) -> bool:
        """Look up each order whose outcome waits; False when the venue did not answer."""
        for sent in [s for s in self._orders.values() if s.lookup]:
            try:
                result = await self.fetch(sent.order)
            except ccxt_errors.OrderNotFound:
                if self._clock.now() >= sent.sent_at + self.lookup_window():
                    self._reject(sent, f"venue {self.name} never received the order")
                continue
            except ccxt_errors.NetworkError as exc:
                self._set_state(False, describe_venue_error(self.name, exc))
                return False
            except ccxt_errors.BaseError as exc:
                log.warning("venue_lookup_failed", venue=self.name, error=str(exc))
                continue
            self._resolve(sent, result)
        if not self._orders:
            # Nothing to follow: one cheap call keeps the state of the connection true.
            try:
                await self._exchange.fetch_time()
            except ccxt_errors.BaseError as exc:
                self._set_state(False, describe_venue_error(self.name, exc))
                return False
        self._set_state(True, None)
        return True
