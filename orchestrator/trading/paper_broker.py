"""The paper broker: market orders fill at the next price of their symbol.

An order submitted now fills at the first tick of its symbol that arrives after
it, at that price moved against the order by the configured slippage, less a
commission. An order that sees no price within ``fill_timeout_seconds`` is
rejected, and so is an invalid one, or one beyond ``max_pending_orders``.
With ``partial_fills`` on, a tick fills at most its ``size`` of each order (a size
of 0 is unknown: the order fills whole); the rest waits for the next ticks, until
its deadline (docs/orders.md#partial-fills).
Every outcome, fill or rejection, is returned once, by the call that settled it
(it implements :class:`orchestrator.trading.broker.Broker`).

The backtest's replay broker prices its fills through :meth:`PaperBroker.fill_at`
(next bar open), so live and backtest share one slippage and commission arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from orchestrator.model.clock import Clock
from orchestrator.model.ids import IdFactory, SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, Side, rejection
from orchestrator.trading.broker import NO_FILLS
from orchestrator.trading.config import BPS, PaperBrokerConfig

log = structlog.get_logger("orchestrator.trading.paper_broker")


@dataclass(frozen=True, slots=True)
class _Pending:
    order: Order
    deadline: float


def _quantity_problem(order: Order) -> str | None:
    if not order.symbol:
        return "symbol must not be empty"
    if not math.isfinite(order.quantity):
        return f"quantity must be a finite number, got {order.quantity}"
    if order.quantity <= 0.0:
        return f"quantity must be positive, got {order.quantity}"
    return None


class PaperBroker:
    """Fills market orders against the live price stream, with slippage and commission."""

    def __init__(
        self,
        config: PaperBrokerConfig,
        clock: Clock,
        id_factory: IdFactory | None = None,
    ) -> None:
        self.config = config
        self._slippage = config.slippage_bps / BPS
        """The config is frozen: its slippage fraction is divided out once."""
        self._partial = config.partial_fills
        self._clock = clock
        self._new_id: IdFactory = id_factory if id_factory is not None else SequentialIds()
        # Submission order, for expiry and cancellation; and by symbol, so a tick
        # is one dict lookup and nothing more when its symbol has no orders.
        self._pending: dict[str, _Pending] = {}
        self._by_symbol: dict[str, dict[str, _Pending]] = {}

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def pending_orders(self) -> list[Order]:
        """Orders waiting for a price, oldest first."""
        return [pending.order for pending in self._pending.values()]

    def submit(self, order: Order) -> Sequence[Fill]:
        """Queue a market order for the next price of its symbol.

        Returns nothing when it was queued, else its rejection. Reusing the id
        of a pending order raises ValueError: a rejection carrying that id would
        be taken for the outcome of the pending order by anyone tracking orders
        by id.
        """
        if order.id in self._pending:
            raise ValueError(f"order {order.id} is already pending")
        now = self._clock.now()
        problem = self._submission_problem(order)
        if problem is not None:
            return [self._rejection(order, problem, now)]
        pending = _Pending(order, now + self.config.fill_timeout_seconds)
        self._pending[order.id] = pending
        self._by_symbol.setdefault(order.symbol, {})[order.id] = pending
        return NO_FILLS

    def _submission_problem(self, order: Order) -> str | None:
        problem = _quantity_problem(order)
        if problem is not None:
            return problem
        if len(self._pending) >= self.config.max_pending_orders:
            return f"too many pending orders ({self.config.max_pending_orders})"
        return None

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        """Fill every pending order of ``tick.symbol`` at this price; returns the fills."""
        if tick.symbol not in self._by_symbol:
            return NO_FILLS
        if not 0.0 < tick.price < math.inf:
            # A broken print is no price: the orders wait for a good one or time out.
            return NO_FILLS
        bucket = self._by_symbol.pop(tick.symbol)
        now = self._clock.now()
        fills: list[Fill] = []
        size = tick.size if self._partial else 0.0
        for pending in bucket.values():
            order = pending.order
            if now > pending.deadline:
                # Expiry had not run yet; the outcome must not depend on when it does.
                del self._pending[order.id]
                fills.append(self._timeout(order, now))
            elif 0.0 < size < order.quantity:
                fills.append(self._fill_part(pending, size, tick))
            else:
                del self._pending[order.id]
                fills.append(self.fill_at(order, tick.price, tick.ts))
        return fills

    def _fill_part(self, pending: _Pending, size: float, tick: Tick) -> Fill:
        """Fill ``size`` of a pending order at this tick; the rest waits on, in its place
        (a dict keeps the place of a key assigned again), with its deadline."""
        order = pending.order
        fill, rest = self.fill_part(order, size, tick.price, tick.ts)
        if rest is None:
            del self._pending[order.id]  # refused: the order is settled whole
            return fill
        waiting = _Pending(rest, pending.deadline)
        self._pending[order.id] = waiting
        self._by_symbol.setdefault(order.symbol, {})[order.id] = waiting
        return fill

    def fill_part(
        self,
        order: Order,
        quantity: float,
        price: float,
        ts: float,
        low: float = 0.0,
        high: float = math.inf,
    ) -> tuple[Fill, Order | None]:
        """A part of ``quantity`` of a market order (partial fills), priced as
        :meth:`fill_at` prices a whole one, and the order that is left to fill: the
        fill's ``remaining``. The backtest's replay broker fills its parts here too.
        Refused (a broken price), the rejection settles the whole order: no rest."""
        fill = self.fill_at(replace(order, quantity=quantity), price, ts, low, high)
        if fill.status is not FILLED:
            return replace(fill, quantity=order.quantity), None
        rest = replace(order, quantity=order.quantity - quantity)
        return replace(fill, remaining=rest.quantity), rest

    def expire(self, now: float | None = None) -> Sequence[Fill]:
        """Reject orders that waited longer than the timeout; returns the rejections.

        Scans every pending order rather than stopping at the first fresh one:
        a wall clock can step backwards, so deadlines need not be in order.
        """
        moment = self._clock.now() if now is None else now
        stale = [p.order for p in self._pending.values() if moment > p.deadline]
        return [self._timeout(order, moment) for order in self._withdraw(stale)]

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        """Reject every pending order with ``reason`` (kill switch, shutdown)."""
        return self._cancel(self.pending_orders(), reason)

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        """Reject the pending orders of one strategy with ``reason``."""
        orders = [o for o in self.pending_orders() if o.strategy_id == strategy_id]
        return self._cancel(orders, reason)

    def _cancel(self, orders: list[Order], reason: str) -> Sequence[Fill]:
        now = self._clock.now()
        return [self._rejection(order, reason, now) for order in self._withdraw(orders)]

    def _withdraw(self, orders: list[Order]) -> list[Order]:
        for order in orders:
            del self._pending[order.id]
            bucket = self._by_symbol[order.symbol]
            del bucket[order.id]
            if not bucket:
                del self._by_symbol[order.symbol]
        return orders

    def execute(self, order: Order, price: float, ts: float) -> Sequence[Fill]:
        """Fill a resting order the pipeline triggered at ``price``, now."""
        return (self.fill_at(order, price, ts),)

    def fill_at(
        self, order: Order, price: float, ts: float, low: float = 0.0, high: float = math.inf
    ) -> Fill:
        """The fill of ``order`` against market price ``price`` at ``ts``.

        Slippage and commission are applied here and only here; the backtest's
        replay broker calls this with the next bar's open, and with the bar's
        ``low`` and ``high``: slippage never takes a fill outside the range the bar
        traded. A limit (an order with a limit price) never fills beyond it.
        """
        problem = _quantity_problem(order)
        if problem is None and not 0.0 < price < math.inf:
            problem = f"no valid price for {order.symbol}: got {price}"
        if problem is not None:
            return self._rejection(order, problem, ts)
        quantity = order.quantity
        fill_price = self.slipped_price(order.side, price)
        if fill_price > high:
            fill_price = high
        elif fill_price < low:
            fill_price = low
        limit = order.limit_price
        if limit is not None and order.side.sign * (fill_price - limit) > 0:
            fill_price = limit
        return Fill(
            self._new_id("trade"),
            order.id,
            order.strategy_id,
            order.symbol,
            order.side,
            quantity,
            fill_price,
            self.commission(quantity, fill_price),
            ts,
            FILLED,
        )

    def slipped_price(self, side: Side, price: float) -> float:
        """``price`` moved against the taker: up for a buy, down for a sell."""
        return price * (1.0 + side.sign * self._slippage)

    def commission(self, quantity: float, fill_price: float) -> float:
        config = self.config
        charged = config.commission_per_share * quantity
        charged += config.commission_bps * quantity * fill_price / BPS
        # A conditional, not max(): the builtin costs 100 ns per order on CPython 3.11.
        return charged if charged > config.min_commission else config.min_commission

    def _timeout(self, order: Order, now: float) -> Fill:
        reason = f"no price for {order.symbol} within {self.config.fill_timeout_seconds} s"
        return self._rejection(order, reason, now)

    def _rejection(self, order: Order, reason: str, ts: float) -> Fill:
        log.info(
            "order_rejected",
            order_id=order.id,
            strategy_id=order.strategy_id,
            symbol=order.symbol,
            reason=reason,
        )
        return rejection(order, self._new_id("trade"), reason, ts)
