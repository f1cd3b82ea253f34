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
of it. The poll also tells the connection's state: a failing venue is shown as
disconnected, with the reason, and refuses new orders until it answers again.

Native resting orders (:class:`~orchestrator.trading.broker.RestingVenue`): a
strategy's limit order rests on the venue (GTC, or IOC as it says), placed with the
client order id; so do its stop-limit and stop orders where the market takes them
(:meth:`VenueBroker.native_terms`: ccxt's ``triggerPrice``, Binance's
``STOP_LOSS_LIMIT`` and ``STOP_LOSS``, when exchangeInfo lists them), so that a
protective stop holds while the daemon is down. The poll reads the open orders of
their symbols and reports what the venue filled since the last read as a part
(``Fill.remaining``), the last part, or the cancellation (asked for, or the venue's:
an IOC's rest expires). Binance spot has no amend: a replace cancels the order and
places the rest again with the new terms under the next revision of its client order
id (``orc-order_000017.1``); a stop the venue had triggered goes again as the limit
(or market) order it became.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from orchestrator.model.orders import (
    FILLED,
    Fill,
    Order,
    OrderPurpose,
    OrderType,
    TimeInForce,
    VenueFill,
    rejection,
)
from orchestrator.trading.broker import NO_FILLS, VENUE_EXPIRED

log = structlog.get_logger("gateways.venues.broker")

MAX_BACKOFF_SECONDS = 30.0

DUPLICATE = "Duplicate order"
"""How Binance refuses a client order id it already has (-2010 Duplicate order sent.)."""

NATIVE_STOP_TYPES = {OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT", OrderType.STOP: "STOP_LOSS"}
"""The venue's type of a stop-limit and a stop (Binance's, as ccxt's create_order makes
them from a limit or market order with a ``triggerPrice``): a daemon's stop triggers as
a stop-loss does, a buy at or above its stop, a sell at or below. A market whose
exchangeInfo (``orderTypes``) does not list it keeps the order in the pipeline."""


def listed_order_types(market: Mapping[str, Any]) -> list[str]:
    """The order types a ccxt market of the venue takes, as its exchange lists them
    (Binance's exchangeInfo ``orderTypes``, kept in the market's ``info``); empty for
    a venue that lists none."""
    info = market.get("info")
    types = info.get("orderTypes") if isinstance(info, Mapping) else None
    return [str(kind) for kind in types] if isinstance(types, list) else []


REVISION_SEPARATOR = "."
"""Between a resting order's client order id and its revision (a replace's new order)."""

QUANTITY_EPSILON = 1e-12


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


@dataclass(slots=True)
class _Resting:
    """A limit order resting on the venue, as far as the daemon has settled it."""

    order: Order
    """As the pipeline has it now: its rest, its terms (a replace's new ones)."""
    revision: int = 0
    """Of its client order id: each replace places a new order on the venue."""
    amount: float = 0.0
    """The quantity of the current revision on the venue."""
    filled: float = 0.0
    """Of the current revision, what is settled (the venue's ``filled`` when last read)."""
    cost: float = 0.0
    """The quote cost of ``filled``."""
    fees: dict[str, float] = field(default_factory=dict)
    """The fees of ``filled``, per asset."""
    placed: bool = False
    """The create request left (its answer may be lost)."""
    placed_at: float = 0.0
    venue_id: str | None = None
    cancelling: bool = False
    """A cancel was asked: the venue's answer ends it (or its fill)."""
    replacing: bool = False
    """Cancelled to be placed again with ``order``'s terms (a replace)."""
    forget: bool = False
    """Its order is settled by the pipeline already: only fills are reported."""
    followed: bool = True
    """Polled. After a restart, from when the pipeline has restored it."""
    triggered: bool = False
    """A native stop the venue triggered (or would trigger at once): placed again (a
    replace), it goes as the limit or market order it became."""


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
        self._resting: dict[str, _Resting] = {}
        """The limit orders resting on the venue, by the journal's order id."""
        self._fee_prices: dict[str, float] = {}
        """asset -> its last price in a quote currency: a fee in a third asset (BNB)."""
        self._settled: list[Fill] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.ledger = VenueLedger()
        """What the daemon's fills here added to the account, per base asset."""
        self.unreconciled: str | None = "not reconciled with the journal yet"
        """Why no order may go yet: set until the start's reconciliation is done (then
        the journal knows what became of every order in flight at the last stop)."""
        self.stopping = False
        """The daemon is stopping: no new order goes (:meth:`settle_before_stop`)."""
        self.restored = False
        """The pipeline has restored the resting orders (:meth:`follow_adopted`): a late
        start's pass adopts none (no strategy of a venue not reconciled at restore was
        restored running; what of theirs still rests there is an orphan)."""
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

    def client_id(self, order_id: str, revision: int = 0) -> str:
        """The client order id of the journal's order ``order_id`` on this venue (of a
        resting order's ``revision``-th replacement)."""
        suffix = f"{REVISION_SEPARATOR}{revision}" if revision else ""
        return self.config.client_id_prefix + order_id + suffix

    def order_id_of(self, client_id: str) -> str | None:
        """The journal's order id of one of the daemon's client order ids, else None."""
        prefix = self.config.client_id_prefix
        if not client_id.startswith(prefix):
            return None
        return client_id[len(prefix) :].split(REVISION_SEPARATOR, 1)[0]

    def lookup_window(self) -> float:
        """Seconds after an order was sent during which the venue may still receive it:
        the signed request's recvWindow where the exchange has one (the venue refuses
        it after), else the request's timeout. An order not found sooner is looked up
        again, not given up."""
        window_ms = self._exchange.options.get("recvWindow") if self._exchange.options else None
        if isinstance(window_ms, int | float) and window_ms > 0:
            return float(window_ms) / 1000.0 + self.config.timeout_seconds
        return 2 * self.config.timeout_seconds

    async def fetch(self, order: Order, revision: int = 0) -> dict[str, Any]:
        """The venue's order by its client order id (ccxt's OrderNotFound when it has none),
        with its fees: an order read back (Binance's GET /order) does not carry them, its
        trades do. An open order's too: a restart adopts an order partly filled with the
        fees of its filled part, else its next part would be charged them again."""
        params = {"clientOrderId": self.client_id(order.id, revision)}
        result = dict(await self._exchange.fetch_order(None, order.symbol, params))
        return await self._with_fees(order.symbol, result)

    async def _with_fees(self, symbol: str, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with its fees (read from its trades when it has none), each fee
        in a third asset priced (:meth:`_learn_fee_prices`)."""
        filled = float(result.get("filled") or 0.0)
        if filled > 0 and not self._fees(result):
            result["fees"] = await self._trade_fees(symbol, result.get("id"), filled)
        await self._learn_fee_prices(symbol, result)
        return result

    async def _learn_fee_prices(self, symbol: str, result: dict[str, Any]) -> None:
        """The venue's last price of each fee asset that is neither the base nor the
        quote of ``symbol`` (BNB), in that quote (``ASSET/QUOTE``'s ticker): a fee in it
        is turned into the quote currency at that price."""
        market = self._markets.get(symbol, {})
        quote = market.get("quote")
        for fee in self._fees(result):
            asset = fee.get("currency")
            if not asset or asset in (market.get("base"), quote) or not fee.get("cost"):
                continue
            pair = f"{asset}/{quote}"
            if pair not in self._markets:
                continue  # no such market: the fee stays unconverted (logged)
            try:
                ticker = await self._exchange.fetch_ticker(pair)
            except ccxt_errors.BaseError as exc:
                log.warning("venue_fee_price_failed", venue=self.name, pair=pair, error=str(exc))
                continue
            last = ticker.get("last") or ticker.get("close")
            if last:
                self._fee_prices[f"{asset}/{quote}"] = float(last)

    async def _trade_fees(self, symbol: str, venue_id: Any, filled: float) -> list[dict[str, Any]]:
        """The fees of the order's first trades that make ``filled`` (its filled quantity
        as read): a trade the venue made since that read is the next part's, with its fee."""
        if venue_id is None:
            return []
        if self._exchange.has.get("fetchOrderTrades"):
            trades = await self._exchange.fetch_order_trades(str(venue_id), symbol)
        else:
            trades = await self._exchange.fetch_my_trades(symbol)
            trades = [t for t in trades if str(t.get("order")) == str(venue_id)]
        fees, taken = [], 0.0
        for trade in trades:  # oldest first, as Binance lists them
            if taken >= filled - QUANTITY_EPSILON:
                break
            taken += float(trade.get("amount") or 0.0)
            if trade.get("fee"):
                fees.append(trade["fee"])
        return fees

    async def cancel_on_venue(self, order: Order, revision: int = 0) -> None:
        """Ask the venue to cancel ``order`` (its ``revision``; nothing when it is no
        longer open)."""
        params = {"clientOrderId": self.client_id(order.id, revision)}
        with contextlib.suppress(ccxt_errors.OrderNotFound):
            await self._exchange.cancel_order(None, order.symbol, params)

    def set_mismatches(self, assets: tuple[str, ...]) -> None:
        """The assets reconciliation found mismatched: shown with the connection."""
        if assets != self._state.mismatches:
            self._state = VenueState(self.name, self._state.connected, self._state.reason, assets)
            self.on_state()

    @property
    def busy(self) -> bool:
        """Orders are on their way or settled and not yet collected, or a resting order
        is being placed or cancelled: a balance read now may count a fill the journal
        does not have yet."""
        return bool(self._orders or self._settled) or any(
            not r.placed or r.cancelling or not r.followed for r in self._resting.values()
        )

    def trading_problem(self, symbols: Collection[str]) -> str | None:
        if self.unreconciled is not None:
            return f"venue {self.name} takes no order: {self.unreconciled}"
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

    async def settle_before_stop(self) -> None:
        """A clean stop: take no new order, and wait (up to the lookup window: until
        then a submit whose answer is lost may still be found) for the orders on their
        way to be settled, so that the journal has their outcome before it closes; what
        is still unknown then is the next start's reconciliation's. Orders resting on
        the venue rest on across the stop."""
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lookup_window()
        while (self._orders or self._settled) and self._state.connected:
            if loop.time() >= deadline:
                log.warning(
                    "venue_orders_in_flight_at_stop", venue=self.name, orders=len(self._orders)
                )
                return
            await asyncio.sleep(self.config.poll_interval_seconds)

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
        """A resting order the pipeline triggered (one the venue does not keep: a bracket's
        exits, a stop on a market without native stops): a market order now, or a limit
        IOC at its limit (docs/venues.md: per order type)."""
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
        problem = self._send_problem(order)
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
            self._resolve(sent, await self._with_fees(order.symbol, dict(result)))

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
        self,
        order: Order,
        result: dict[str, Any],
        filled: float,
        fill_id: str | None = None,
        fee_share: float = 1.0,
    ) -> Fill:
        """The fill of ``order`` by the venue's ``result`` (ccxt's order), ``filled`` of it;
        ``fill_id``: a given id (reconciliation's), else a new one; ``fee_share``: the
        share of the order's fees it takes (the rest of an order whose parts are told)."""
        price = float(result.get("average") or result.get("price") or 0.0)
        venue_id = result.get("id")
        venue_id = None if venue_id is None else str(venue_id)
        fees = {a: c * fee_share for a, c in self._fee_totals(result).items()}
        return self._fill(order, filled, price, fees, venue_id, fill_id)

    def _fill(
        self,
        order: Order,
        quantity: float,
        price: float,
        fees: dict[str, float],
        venue_id: str | None,
        fill_id: str | None = None,
        remaining: float = 0.0,
    ) -> Fill:
        fee_asset, fee = self._fee(order.symbol, fees)
        return Fill(
            self._ids("trade") if fill_id is None else fill_id,
            order.id,
            order.strategy_id,
            order.symbol,
            order.side,
            quantity,
            price,
            self._commission(order.symbol, fees, price),
            self._clock.now(),
            FILLED,
            remaining=remaining,
            venue=VenueFill(self.name, venue_id, fee_asset, fee),
        )

    @staticmethod
    def _fees(result: dict[str, Any]) -> list[dict[str, Any]]:
        fees = result.get("fees") or ([result["fee"]] if result.get("fee") else [])
        return [fee for fee in fees if fee]

    @classmethod
    def _fee_totals(cls, result: dict[str, Any]) -> dict[str, float]:
        """The fees of ccxt's order ``result``, summed per asset."""
        by_asset: dict[str, float] = {}
        for fee in cls._fees(result):
            currency = fee.get("currency")
            if currency:
                by_asset[currency] = by_asset.get(currency, 0.0) + float(fee.get("cost") or 0.0)
        return by_asset

    def _fee(self, symbol: str, fees: dict[str, float]) -> tuple[str | None, float]:
        """The fee as the venue took it: its asset and amount. Of fees in several assets
        the one in the base asset (what the balance check must net out), else the first."""
        if not fees:
            return None, 0.0
        base = self._markets.get(symbol, {}).get("base")
        asset = base if base in fees else next(iter(fees))
        return asset, fees[asset]

    def _commission(self, symbol: str, fees: dict[str, float], price: float) -> float:
        """The fees in the quote currency (docs/venues.md#fees): a fee in the quote as it
        is; in the base currency (Binance takes a buy's fee from what it bought) at the
        fill's price; in a third asset (BNB) at the venue's last price of ASSET/QUOTE."""
        market = self._markets.get(symbol, {})
        quote = market.get("quote")
        total = 0.0
        for currency, cost in fees.items():
            if currency == quote:
                total += cost
            elif currency == market.get("base"):
                total += cost * price
            elif f"{currency}/{quote}" in self._fee_prices:
                total += cost * self._fee_prices[f"{currency}/{quote}"]
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
        self._deliver(fill)

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
        if not await self.poll_resting():
            return False
        if not self._orders and not self._resting:
            # Nothing to follow: one cheap call keeps the state of the connection true.
            try:
                await self._exchange.fetch_time()
            except ccxt_errors.BaseError as exc:
                self._set_state(False, describe_venue_error(self.name, exc))
                return False
        self._set_state(True, None)
        return True

    # ------------------------------------------------------------ resting on the venue

    def place_resting(self, order: Order) -> bool:
        """A strategy's resting order goes to the venue when it keeps such an order
        (:meth:`native_terms`); a DAY order as GTC, cancelled by the pipeline at its
        day's end. The others, and a bracket's exits, rest in the pipeline
        (docs/venues.md: per order type)."""
        if order.id in self._resting or self.native_terms(order) is None:
            return False
        resting = _Resting(order, amount=order.quantity)
        self._resting[order.id] = resting
        problem = self._send_problem(order)
        if problem is not None:
            self._end_resting(resting, problem)
        else:
            self._spawn(self._place(resting), f"venue-{self.name}-place-{order.id}")
        return True

    def native_terms(
        self, order: Order, triggered: bool = False
    ) -> tuple[str, float | None, dict[str, Any]] | None:
        """How ``order`` rests on the venue, as ccxt's ``create_order`` takes it (type,
        price, params but the client order id), or None when it rests in the pipeline.
        A strategy's limit: a limit, GTC or IOC. Its stop-limit: a limit with a
        ``triggerPrice`` (Binance's STOP_LOSS_LIMIT), its stop: a market with one
        (STOP_LOSS), where the market lists that type (:data:`NATIVE_STOP_TYPES`),
        GTC or DAY (an IOC stop's "first price" is the pipeline's rule). ``triggered``:
        as the limit or market order it became at its trigger."""
        if order.purpose is not OrderPurpose.SIGNAL or order.parent_id is not None:
            return None
        if order.order_type is OrderType.LIMIT:
            force = "IOC" if order.time_in_force is TimeInForce.IOC else "GTC"
            return "limit", order.limit_price, {"timeInForce": force}
        venue_type = NATIVE_STOP_TYPES.get(order.order_type)
        if (
            venue_type is None
            or order.stop_price is None
            or order.trailing is not None
            or order.time_in_force is TimeInForce.IOC
            or not self.takes(order.symbol, venue_type)
        ):
            return None
        trigger = {} if triggered else {"triggerPrice": order.stop_price}
        if order.order_type is OrderType.STOP_LIMIT:
            return "limit", order.limit_price, {"timeInForce": "GTC", **trigger}
        return "market", None, trigger

    def takes(self, symbol: str, venue_type: str) -> bool:
        """Whether the venue's market ``symbol`` takes orders of ``venue_type``
        (:func:`listed_order_types`: a venue that does not list its types takes none
        beyond market and limit here)."""
        return venue_type in listed_order_types(self._markets.get(symbol, {}))

    def holds_resting(self, order_id: str) -> bool:
        return order_id in self._resting

    def resting_client_ids(self) -> set[str]:
        """The client order ids of the orders resting here (reconciliation's known)."""
        return {self.client_id(r.order.id, r.revision) for r in self._resting.values()}

    def cancel_resting(self, order: Order, forget: bool = False) -> None:
        """Ask the venue to cancel ``order``; ``forget``: the pipeline has settled it
        already (its strategy does not run after a restart): report only its fills."""
        resting = self._resting.get(order.id)
        if resting is None or resting.cancelling:
            return
        resting.cancelling, resting.replacing = True, False
        resting.forget = resting.forget or forget
        if resting.placed:
            self._spawn(self._cancel_resting(resting), f"venue-{self.name}-cancel-{order.id}")
        # Not placed yet: its placing task ends it instead of sending it.

    def replace_resting(self, old: Order, new: Order) -> None:
        """Cancel the order on the venue, then place its rest with ``new``'s terms under
        the next revision of its client order id (Binance spot has no amend)."""
        resting = self._resting.get(old.id)
        if resting is None or resting.cancelling:
            return
        resting.order = new
        if not resting.placed:
            resting.amount = new.quantity  # its placing task sends the new terms
            return
        resting.cancelling = resting.replacing = True
        self._spawn(self._cancel_resting(resting), f"venue-{self.name}-replace-{old.id}")

    def adopt_resting(
        self,
        order: Order,
        revision: int,
        result: dict[str, Any] | None,
        replace_it: bool,
        known: float,
    ) -> None:
        """After a restart, the journal's resting ``order`` (its rest, its last terms) as
        the venue has it: its order ``result`` of ``revision`` (None: the venue has none
        of it, it is placed again under ``revision``), ``replace_it`` when that revision
        is older than the journal's last replace, ``known`` what of that revision's
        ``filled`` the journal holds as parts. Followed once the pipeline restored it
        (:meth:`follow_adopted`): what the venue filled beyond what the journal has is
        then reported once, as the parts of a running order are."""
        resting = _Resting(order, revision, followed=False)
        if result is None:
            resting.amount = order.quantity
        else:
            amount = float(result.get("amount") or order.quantity)
            filled = float(result.get("filled") or 0.0)
            share = known / filled if filled > 0 else 0.0
            resting.amount, resting.filled, resting.placed = amount, known, True
            resting.cost = float(result.get("cost") or 0.0) * share
            resting.fees = {a: c * share for a, c in self._fee_totals(result).items()}
            resting.venue_id = None if result.get("id") is None else str(result["id"])
            resting.placed_at = self._clock.now()
            resting.replacing = replace_it
            self._note_trigger(resting, result)
        self._resting[order.id] = resting

    def follow_adopted(self) -> None:
        """The pipeline has restored its resting orders: follow the adopted ones."""
        self.restored = True
        for resting in list(self._resting.values()):
            if resting.followed:
                continue
            resting.followed = True
            if not resting.placed:
                self._spawn(self._place(resting), f"venue-{self.name}-place-{resting.order.id}")
            elif resting.replacing and not resting.cancelling:
                resting.cancelling = True
                task = self._cancel_resting(resting)
                self._spawn(task, f"venue-{self.name}-replace-{resting.order.id}")

    def _send_problem(self, order: Order) -> str | None:
        if self.stopping:
            return f"venue {self.name}: the daemon is stopping; no new order is sent"
        if not self._state.connected:
            reason = self._state.reason
            return f"venue {self.name} is not connected ({reason}); no order is sent blind"
        return self.trading_problem([order.symbol])

    async def _place(self, resting: _Resting) -> None:
        await self.before_send()
        order = resting.order
        if resting.cancelling and not resting.placed:
            self._end_resting(resting, f"cancelled before it reached venue {self.name}")
            return
        terms = self.native_terms(order, resting.triggered)
        if terms is None:  # placed before, the market no longer lists its type (a restart)
            reason = f"venue {self.name} no longer takes a {order.order_type} on {order.symbol}"
            self._end_resting(resting, reason)
            return
        kind, price, params = terms
        revision = resting.revision
        client_id = self.client_id(order.id, revision)
        resting.placed, resting.placed_at = True, self._clock.now()
        try:
            result = await self._exchange.create_order(
                order.symbol,
                kind,
                order.side.value.lower(),
                resting.amount,
                price,
                {"clientOrderId": client_id, **params},
            )
        except (ccxt_errors.DDoSProtection, ccxt_errors.RateLimitExceeded) as exc:
            self._end_resting(resting, describe_venue_error(self.name, exc))
        except ccxt_errors.NetworkError as exc:
            log.warning("venue_place_unknown", venue=self.name, order_id=order.id, error=str(exc))
        except ccxt_errors.OrderImmediatelyFillable as exc:
            await self._place_triggered(resting, exc)
        except ccxt_errors.InvalidOrder as exc:
            if DUPLICATE not in str(exc):  # a duplicate is there: the poll reads it
                self._end_resting(resting, describe_venue_error(self.name, exc))
        except ccxt_errors.BaseError as exc:
            self._end_resting(resting, describe_venue_error(self.name, exc))
        else:
            await self._follow(resting, revision, dict(result))

    async def _place_triggered(
        self, resting: _Resting, exc: ccxt_errors.OrderImmediatelyFillable
    ) -> None:
        """The venue refused a stop whose stop its price has reached already (Binance:
        "Order would trigger immediately"): it is triggered, so it goes as the limit or
        market order it becomes there (as the pipeline triggers a stop already reached
        at the next price), under the same client order id (the refused order was not
        booked)."""
        if resting.triggered:
            self._end_resting(resting, describe_venue_error(self.name, exc))
            return
        log.info("venue_stop_reached_at_placement", venue=self.name, order_id=resting.order.id)
        resting.triggered, resting.placed = True, False
        await self._place(resting)

    async def _cancel_resting(self, resting: _Resting) -> None:
        order, revision = resting.order, resting.revision
        params = {"clientOrderId": self.client_id(order.id, revision)}
        try:
            result = await self._exchange.cancel_order(None, order.symbol, params)
        except ccxt_errors.BaseError as exc:
            # Done already (filled, expired), or the answer lost: the poll reads it.
            log.info("venue_cancel_unanswered", venue=self.name, order_id=order.id, error=str(exc))
            return
        await self._follow(resting, revision, dict(result))

    async def _read_resting(self, resting: _Resting) -> bool:
        """Read the order back and follow it; False when the venue did not answer."""
        order, revision = resting.order, resting.revision
        try:
            result = await self.fetch(order, revision)
        except ccxt_errors.OrderNotFound:
            if self._clock.now() >= resting.placed_at + self.lookup_window():
                self._end_resting(resting, f"venue {self.name} never received the order")
            return True
        except ccxt_errors.NetworkError as exc:
            self._set_state(False, describe_venue_error(self.name, exc))
            return False
        except ccxt_errors.BaseError as exc:
            log.warning("venue_lookup_failed", venue=self.name, error=str(exc))
            return True
        await self._follow(resting, revision, result)
        return True

    async def _follow(self, resting: _Resting, revision: int, result: dict[str, Any]) -> None:
        """Report what the venue did with a resting order since the last read (``result``,
        a read of ``revision``): the part it filled, then its end (filled, cancelled,
        expired; a replace's new order)."""
        if not self._current(resting, revision):
            return
        order = resting.order
        status = result.get("status")
        filled = float(result.get("filled") or 0.0)
        resting.venue_id = None if result.get("id") is None else str(result["id"])
        self._note_trigger(resting, result)
        if filled > resting.filled + QUANTITY_EPSILON:
            result = await self._with_fees(order.symbol, result)
            if not self._current(resting, revision) or filled <= resting.filled:
                return  # another read settled it meanwhile
            self._report_part(resting, result, filled, closed=status == "closed")
        if status == "open":
            return
        if status == "closed" or resting.order.quantity <= QUANTITY_EPSILON:
            self._resting.pop(order.id, None)
            return
        if resting.replacing and resting.cancelling:
            # The old order is cancelled: its rest goes again with the new terms.
            resting.revision += 1
            resting.amount = resting.order.quantity
            resting.filled = resting.cost = 0.0
            resting.fees = {}
            resting.placed = resting.cancelling = resting.replacing = False
            self._spawn(self._place(resting), f"venue-{self.name}-place-{order.id}")
            return
        if status == "expired":
            reason = f"{VENUE_EXPIRED} {self.name}: not filled at once ({order.time_in_force})"
        else:
            reason = f"venue {self.name}: the order was {status or 'cancelled'}"
        self._end_resting(resting, reason)

    def _current(self, resting: _Resting, revision: int) -> bool:
        """Whether a read of ``revision`` still speaks of ``resting``: not when it ended
        meanwhile, nor once another read saw that revision end in a replace (its fills are
        settled then, and what follows counts the next revision's from 0)."""
        return self._resting.get(resting.order.id) is resting and resting.revision == revision

    def _report_part(
        self, resting: _Resting, result: dict[str, Any], filled: float, closed: bool
    ) -> None:
        order = resting.order
        quantity = filled - resting.filled
        cost = float(result.get("cost") or 0.0)
        if cost <= 0.0:
            cost = float(result.get("average") or result.get("price") or 0.0) * filled
        part_cost = cost - resting.cost
        fees = self._fee_totals(result)
        part_fees = {a: c - resting.fees.get(a, 0.0) for a, c in fees.items()}
        # Without float dust (2 - 0.47616 is 1.5238399999999999): the venue truncates an
        # amount to its step, so a replace would place one step less than what rests.
        remaining = 0.0 if closed else max(0.0, float(f"{order.quantity - quantity:.12g}"))
        if remaining <= QUANTITY_EPSILON:
            remaining = 0.0
        resting.filled, resting.cost, resting.fees = filled, cost, fees
        resting.order = replace(order, quantity=remaining)
        # The part's average from the cumulative costs, without their float dust.
        price = float(f"{part_cost / quantity:.12g}") if quantity > 0 else 0.0
        fill = self._fill(order, quantity, price, part_fees, resting.venue_id, remaining=remaining)
        self._deliver(fill)

    def _end_resting(self, resting: _Resting, reason: str) -> None:
        """The order rests no more: told as its cancellation (``reason``), unless the
        pipeline has settled it already."""
        if self._resting.pop(resting.order.id, None) is None:
            return
        if not resting.forget:
            self._deliver(self._rejection(resting.order, reason))

    def _deliver(self, fill: Fill) -> None:
        self.ledger.add(fill, self._markets)
        self._settled.append(fill)
        asyncio.get_running_loop().call_soon(self.on_settled)

    async def poll_resting(self) -> bool:
        """Read the open orders of the symbols with resting orders; follow each whose
        filled part grew, and read back each that is no longer open. False when the
        venue did not answer."""
        followed = [r for r in self._resting.values() if r.placed and r.followed]
        symbols = sorted({r.order.symbol for r in followed})
        open_by_client: dict[str, dict[str, Any]] = {}
        try:
            for symbol in symbols:
                for venue_order in await self._exchange.fetch_open_orders(symbol):
                    open_by_client[str(venue_order.get("clientOrderId"))] = dict(venue_order)
        except ccxt_errors.NetworkError as exc:
            self._set_state(False, describe_venue_error(self.name, exc))
            return False
        except ccxt_errors.BaseError as exc:
            log.warning("venue_open_orders_failed", venue=self.name, error=str(exc))
            return True
        for resting in followed:
            venue_order = open_by_client.get(self.client_id(resting.order.id, resting.revision))
            if venue_order is None:
                if not await self._read_resting(resting):
                    return False
            elif float(venue_order.get("filled") or 0.0) > resting.filled + QUANTITY_EPSILON:
                await self._follow(resting, resting.revision, venue_order)
            else:
                self._note_trigger(resting, venue_order)
        return True

    def _note_trigger(self, resting: _Resting, result: dict[str, Any]) -> None:
        """A native stop the venue shows triggered (Binance: its ``workingTime`` is no
        longer -1; or it filled): logged once, and placed again (a replace) as what it
        became. Its fills are told as they come; ``order_triggered`` with the last one,
        as for a stop-limit the pipeline triggers (docs/venues.md)."""
        if resting.triggered or resting.order.stop_price is None:
            return
        info = result.get("info")
        working = info.get("workingTime") if isinstance(info, dict) else None
        started = isinstance(working, int | float) and working >= 0
        if started or float(result.get("filled") or 0.0) > 0.0:
            resting.triggered = True
            log.info(
                "venue_stop_triggered",
                venue=self.name,
                order_id=resting.order.id,
                stop=resting.order.stop_price,
            )
