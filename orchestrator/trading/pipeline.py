"""The order pipeline: the one path every order takes, live and in a backtest.

A signal is sized (:func:`signal_quantity`) into an order; the order passes the
risk checks against the position it would make (held plus orders in flight),
then goes to the broker. Every fill or rejection the broker returns is settled
here: the order leaves the pending quantities, the book nets the fill, the
guardian sees it, and what the guardian asks for (stop-loss exits, the kill
switch) is done. The execution service runs the pipeline on the live price
stream; the backtest engine runs it on a replay of bars, so both trade by the
same rules because there is only one copy of them.

Limit, stop and stop-limit orders and a bracket's exits rest here, not at the
broker (:mod:`orchestrator.trading.resting`): the pipeline sees every price
already, so it triggers them by one set of rules live and in a backtest, checks
an entry again at its trigger, and hands the broker a market fill to make
(``Broker.execute``). docs/orders.md has the rules.

With partial fills on (``broker.partial_fills``), a price fills at most the size of
its tick (a backtest: the bar's volume) of a resting limit, the rest resting on
(:class:`OrderPartiallyFilled`); a triggered stop's rest waits at the broker as a
market order, which fills across the next ticks the same way.

A broker that keeps resting orders itself (:class:`~orchestrator.trading.broker.
RestingVenue`: a live venue's native limit and stop orders) gets them when they are
placed; the pipeline still lists, cancels and replaces them, no price here triggers
or fills them, and the venue's fills of them are settled as the pipeline's own would
be (parts, the last fill, a cancellation once the venue confirms it; docs/venues.md).

The owner hears of what happens through :class:`OrderEvents` (the execution
service publishes it; a backtest records it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

import structlog

from orchestrator.model.clock import Clock
from orchestrator.model.events import (
    CommandOrigin,
    HaltSource,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderLifecycle,
    OrderPartiallyFilled,
    OrderReplaced,
    OrderTriggered,
    RiskLimit,
)
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import (
    BUY,
    FILLED,
    SELL,
    Fill,
    Order,
    OrderPurpose,
    OrderTerms,
    OrderType,
    Side,
    TimeInForce,
    rejection,
)
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import NO_ACTIONS, Halt, PreTradeCheck, RiskActions, Verdict
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.broker import VENUE_EXPIRED, Broker, RestingVenue
from orchestrator.trading.config import BracketRule
from orchestrator.trading.portfolio import PortfolioBook, PositionChange, reduces_position
from orchestrator.trading.refusals import UNREMEMBERED_LIMITS, RefusalMemory, RefusedSignal
from orchestrator.trading.resting import (
    RestingBook,
    RestingOrder,
    apply_bracket_rule,
    fire_price,
    reached,
    resting,
    trail,
)

log = structlog.get_logger("orchestrator.trading.pipeline")

MARKET, LIMIT = OrderType.MARKET, OrderType.LIMIT

DAY_EXPIRED = "expired: a DAY order at the end of its UTC day"

PENDING_EPSILON = 1e-9
"""A pending quantity below this is float dust of orders that all settled."""


class OrderEvents(Protocol):
    """What the pipeline tells its owner, each at the moment it happens."""

    def accepted(self, order: Order) -> None:
        """``order`` passed the risk checks (maybe reduced) and goes to the broker now."""
        ...

    def part(self, order: Order) -> None:
        """A part of a resting order (partial fills) is filled at once: not a submission
        of its own (its last part's is), but its trade is ``order``'s (its purpose)."""
        ...

    def settled(
        self, fill: Fill, change: PositionChange | None, limits: StrategyRunConfig | None
    ) -> None:
        """``fill`` is booked and the guardian has seen it; its actions come next.
        ``limits``: those its order was sent with; None for an order refused before
        it reached the broker."""
        ...

    def engage_kill_switch(self, halt: Halt) -> None:
        """The guardian asks for the kill switch: engage it (:meth:`OrderPipeline.engage`)
        and tell whoever needs to know."""
        ...

    def lifecycle(self, event: OrderLifecycle) -> None:
        """A resting order was accepted, replaced, triggered, cancelled or expired; a
        cancellation or expiry is then settled as a rejection, as before."""
        ...


class OrderPipeline:
    """Risk check, broker, settlement and the guardian's actions, for every strategy."""

    def __init__(
        self,
        book: PortfolioBook,
        risk: PreTradeCheck,
        broker: Broker,
        clock: Clock,
        ids: IdFactory,
        events: OrderEvents,
        bracket_rule: BracketRule = BracketRule.STOP_FIRST,
        partial_fills: bool = False,
    ) -> None:
        self.book = book
        self.broker = broker
        self._risk = risk
        self._clock = clock
        self._ids = ids
        self._events = events
        self.halt: Halt | None = None
        """The kill switch while it is engaged; None while trading runs."""
        self._pending: dict[tuple[str, str], float] = {}
        """Signed quantity of the orders at the broker, by (strategy, symbol)."""
        self._orders: dict[str, tuple[Order, StrategyRunConfig]] = {}
        """The orders at the broker, by id, with the limits they were sent with: what
        their fills take out of ``_pending``."""
        self._refusals = RefusalMemory()
        self.resting = RestingBook()
        self._bracket_rule = bracket_rule
        self._bar: tuple[float, float, float] | None = None
        """(start, low, high) of the backtest bar whose prices come now; None live."""
        self._bar_symbol = ""
        """Its symbol (several symbols' bars may start at the same moment)."""
        self._opening = False
        """The next price is the bar's open: a jump from the previous close."""
        self._previous = math.nan
        """The last price of the current bar (continuous with the next one)."""
        self._touching: tuple[float, float | None, float] | None = None
        """While resting orders are touched: the price, the previous one, the time."""
        self._partial = partial_fills
        self._room = math.inf
        """While resting orders are touched with partial fills on: the most one order
        may fill at this price (the tick's size); inf: whole."""
        self._bar_volume = 0.0
        """With partial fills on, the volume of the backtest bar walked now (0: unknown)."""
        self._native = broker if isinstance(broker, RestingVenue) else None
        """The broker, when it can keep resting orders on a venue; None (paper, a
        backtest): every resting order rests here."""
        self._flattening: dict[str, StrategyRunConfig] = {}
        """The orders on their way when a flatten was asked (at the broker, or resting on
        a venue while it confirms their cancel), by id, with the limits of the order that
        closes a fill of theirs: each fill that comes of them is closed as it comes."""

    # ------------------------------------------------------------ orders

    def projected_position(self, strategy_id: str, symbol: str) -> float:
        """Held quantity plus what pending orders will add when they fill."""
        held = self.book.quantity(strategy_id, symbol)
        pending = self._pending
        # Mostly nothing is in flight: then no key is built (a backtest asks per signal).
        return held + pending.get((strategy_id, symbol), 0.0) if pending else held

    def is_pending(self, order_id: str) -> bool:
        return order_id in self._orders

    def holds_back(
        self, order: tuple[str, str, Side], asked: float | None, limits: StrategyRunConfig
    ) -> bool:
        """Whether a signal's order (strategy, symbol, side; ``asked``: the quantity the
        signal asked for) repeats one the risk checks refused and would refuse again
        (see :mod:`orchestrator.trading.refusals`): then it is not sent, and the signal
        is not published again."""
        if not self._refusals:
            return False  # nothing was refused: no position to project, no key to build
        strategy_id, symbol, side = order
        signal = (side, asked, self.projected_position(strategy_id, symbol))
        return self._refusals.holds_back(
            strategy_id, symbol, signal, limits, (self.halt, self._clock.now())
        )

    def submit_signal(
        self,
        order: Order,
        limits: StrategyRunConfig,
        price: float,
        asked: float | None,
        position: float | None = None,
    ) -> bool:
        """The order of a sized signal (``asked``: the quantity the signal asked for,
        None when it was sized); one of no units is rejected as too small. A refusal
        is remembered: :meth:`holds_back` holds back the same signal while it holds.
        ``position``: the projected position, when the caller sized the order on it."""
        if position is None:
            position = self.projected_position(order.strategy_id, order.symbol)
        if order.quantity <= 0:
            reason = too_small_reason(limits.max_position_value, order.symbol, price)
            self.reject(order, reason)
            verdict = Verdict(None, reason, RiskLimit.MAX_POSITION_VALUE)
        else:
            verdict = self._send(order, limits, position)
        if verdict.order is None and verdict.limit not in UNREMEMBERED_LIMITS:
            refused = RefusedSignal(
                order.side,
                asked,
                position,
                limits,
                self.halt,
                self._refusals.fills,
                verdict.retry_at,
            )
            self._refusals.remember(order.strategy_id, order.symbol, refused)
        return verdict.order is not None

    def submit(self, order: Order, limits: StrategyRunConfig) -> bool:
        """Risk first; an order the checks refuse is settled as a rejection.

        Returns whether the order (maybe reduced) went to the broker.
        """
        position = self.projected_position(order.strategy_id, order.symbol)
        return self._send(order, limits, position).order is not None

    def _send(self, order: Order, limits: StrategyRunConfig, position: float) -> Verdict:
        if self.resting.by_symbol and not reduces_position(
            position, order.side.sign * order.quantity
        ):
            # maxPositionValue counts what the resting entries would add if they filled
            # (an exit is judged on the position alone: it is never kept in).
            position += self.resting.entries_quantity(order.strategy_id, order.symbol, order.side)
        verdict = self._risk.check(order, limits, position, self.halt)
        accepted = verdict.order
        if accepted is None:
            self.reject(order, verdict.reason or "refused by the risk checks")
            return verdict
        if accepted.order_type is not MARKET:
            now = self._clock.now()
            entry = resting(accepted, limits, now)
            self.resting.add(entry)
            self._events.lifecycle(OrderAccepted(accepted, now))
            if self._native is not None and self._native.place_resting(accepted):
                # The venue keeps it. Submitted now: journaled with its venue before the
                # broker's task sends it (that task awaits the journal's flush).
                entry.native = True
                self._events.accepted(accepted)
            return verdict
        # _dispatch, inlined: every market order of a backtest passes here.
        key = (accepted.strategy_id, accepted.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + accepted.side.sign * accepted.quantity
        self._orders[accepted.id] = (accepted, limits)
        self._events.accepted(accepted)
        for fill in self.broker.submit(accepted):
            self.settle(fill)
        return verdict

    def _dispatch(self, order: Order, limits: StrategyRunConfig) -> None:
        """``order`` goes to the broker now: it is pending until its fill is settled."""
        key = (order.strategy_id, order.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + order.side.sign * order.quantity
        self._orders[order.id] = (order, limits)
        self._events.accepted(order)

    def reject(self, order: Order, reason: str) -> None:
        """Settle ``order`` as refused before it reached the broker (so it is not pending)."""
        self.settle(rejection(order, self._ids("trade"), reason, self._clock.now()))

    # ------------------------------------------------------------ prices

    def on_tick(self, tick: Tick) -> None:
        """Fill orders waiting for this symbol's next price, trigger the resting orders
        this price reaches, mark positions, then let the guardian watch them
        (stop-losses, daily loss, limits the market broke)."""
        self.fill(tick)
        if self.resting.by_symbol:
            self.touch(tick)
        if self._bar is not None:
            self._opening = False
            self._previous = tick.price
        self.watch(tick)

    def fill(self, tick: Tick) -> None:
        """Settle what the broker fills at this price."""
        for fill in self.broker.on_tick(tick):
            self.settle(fill)

    def watch(self, tick: Tick) -> None:
        """Mark the book at this price and act on what the guardian sees there."""
        self.book.mark(tick.symbol, tick.price, tick.ts)
        self.act(self._risk.on_price(tick, self.halt))

    def expire(self) -> None:
        """Settle the rejections of orders that found no price in time, and cancel the
        DAY orders whose day ended."""
        self.settle_all(self.broker.expire())
        if self.resting.by_id:
            self.expire_days(self._clock.now())

    def expire_days(self, now: float) -> None:
        """Cancel the resting DAY orders whose UTC day ended by ``now``."""
        for entry in list(self.resting.by_id.values()):
            if now >= entry.expires_at:
                self._withdraw(entry, DAY_EXPIRED, expired=True)

    # ------------------------------------------------------------ settlement

    def settle_all(self, fills: Iterable[Fill]) -> None:
        """Settle what a broker call returned, in its order, once the call is over:
        an exit a fill triggers goes to the broker after it, never from inside it."""
        for fill in fills:
            self.settle(fill)

    def settle(self, fill: Fill) -> None:
        """A fill or rejection: out of the pending quantities, into the book, to the
        guardian, then what the guardian asks for."""
        sent = self._orders.pop(fill.order_id, None)
        limits = order = None
        if sent is None and self.resting.by_id:
            entry = self.resting.by_id.get(fill.order_id)
            if entry is not None and entry.native:
                self._settle_native(entry, fill)
                return
        if sent is not None:
            order, limits = sent
            key = (order.strategy_id, order.symbol)
            settled = order.quantity
            if fill.quantity < settled - PENDING_EPSILON and fill.status is FILLED:
                # A part (partial fills): the rest is still at the broker.
                self._orders[fill.order_id] = (
                    replace(order, quantity=settled - fill.quantity),
                    limits,
                )
                settled = fill.quantity
            remaining = self._pending.get(key, 0.0) - order.side.sign * settled
            if abs(remaining) < PENDING_EPSILON:
                self._pending.pop(key, None)
            else:
                self._pending[key] = remaining
        change = None
        if fill.status is FILLED:
            change = self.book.apply_fill(fill)
            self._refusals.fills += 1
        actions = self._risk.on_fill(fill, change)
        self._events.settled(fill, change, limits)
        if change is not None and (self.resting.by_id or (order is not None and order.bracket)):
            self._after_fill(order, change, limits)
        if actions is not NO_ACTIONS:
            self.act(actions)
        if self._flattening and fill.order_id in self._flattening:
            self._close_late(fill)

    def _settle_native(self, entry: RestingOrder, fill: Fill) -> None:
        """What the venue did with an order resting there: filled a part of it (the
        rest rests on), its last part, or cancelled or expired what was left."""
        order = entry.order
        if fill.status is not FILLED:
            fallback = fill.reason or "cancelled by the venue"
            reason, expired, origin = entry.cancelling or (
                fallback,
                fallback.startswith(VENUE_EXPIRED),
                None,
            )
            entry.native = False  # confirmed: withdrawn here now
            self._withdraw(entry, reason, expired=expired, origin=origin)
            return
        key = (order.strategy_id, order.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + order.side.sign * fill.quantity
        self._orders[order.id] = (replace(order, quantity=fill.quantity), entry.limits)
        if fill.remaining > PENDING_EPSILON:
            # A fill: the venue triggered it. A stop rests on as what it became there.
            entry.stop = None
            entry.order = _remainder(entry, fill.remaining)
            self.settle(fill)
            if self.resting.by_id.get(order.id) is entry:
                rests = _as_it_rests(entry)
                event = OrderPartiallyFilled(rests, fill.quantity, fill.price, fill.ts)
                self._events.lifecycle(event)
            return
        self.resting.remove(entry)
        self._events.lifecycle(OrderTriggered(order, fill.price, fill.ts))
        self.settle(fill)

    def flatten(self, limits_of: Callable[[str], StrategyRunConfig | None]) -> list[Order]:
        """Close every open position with a market order (the kill switch's flatten):
        past the risk checks, which block every order while it blocks all, because an
        operator asked for exactly these; each closes what is held now, so it only
        reduces. An order still on its way (at a venue, its answer not in yet) is not
        held yet: each fill that comes of it is closed as it comes, while the kill
        switch blocks all. Returns the orders (none for a strategy without limits)."""
        now = self._clock.now()
        on_their_way = list(self._orders.values())
        on_their_way += [(e.order, e.limits) for e in self.resting.by_id.values() if e.native]
        for order, sent_with in on_their_way:
            closing = limits_of(order.strategy_id) or sent_with
            if closing is not None:
                self._flattening[order.id] = closing
        orders: list[tuple[Order, StrategyRunConfig]] = []
        for strategy_id in self.book.strategy_ids():
            portfolio = self.book.get(strategy_id)
            limits = limits_of(strategy_id)
            if portfolio is None or limits is None:
                continue
            for position in portfolio.open_positions():
                side = SELL if position.quantity > 0 else BUY
                order = Order(
                    self._ids("order"),
                    strategy_id,
                    position.symbol,
                    side,
                    abs(position.quantity),
                    now,
                    OrderPurpose.STRATEGY_STOP,
                )
                orders.append((order, limits))
        for order, limits in orders:
            self._dispatch(order, limits)
            self.settle_all(self.broker.submit(order))
        return [order for order, _ in orders]

    def _close_late(self, fill: Fill) -> None:
        """A fill of an order that was on its way when a flatten was asked: closed by a
        market order past the risk checks, as the flatten's own, while the kill switch
        still blocks all (an operator who resumed trading wants the position back)."""
        if fill.remaining <= PENDING_EPSILON:
            limits = self._flattening.pop(fill.order_id)
        else:
            limits = self._flattening[fill.order_id]
        if self.halt is None or not self.halt.block_all:
            self._flattening.clear()
            return
        if fill.status is not FILLED or fill.quantity <= 0.0:
            return
        side = SELL if fill.side is BUY else BUY
        order = Order(
            self._ids("order"),
            fill.strategy_id,
            fill.symbol,
            side,
            fill.quantity,
            self._clock.now(),
            OrderPurpose.STRATEGY_STOP,
        )
        log_flattened(order, f"the fill of {fill.order_id}, on its way when the flatten was asked")
        self._dispatch(order, limits)
        self.settle_all(self.broker.submit(order))

    def act(self, actions: RiskActions) -> None:
        """Do what the guardian asked: engage the kill switch, send the exits."""
        if actions is NO_ACTIONS:
            return
        if actions.halt is not None:
            self._events.engage_kill_switch(actions.halt)
        for order, limits in actions.exits:
            self.submit(order, limits)

    # ------------------------------------------------------------ kill switch and cancels

    def engage(self, halt: Halt) -> None:
        """Halt trading. Resting entries are cancelled; a bracket's exits rest on
        (reduce-only), unless ``block_all``: then every resting and pending order is
        cancelled. Each is reported to the guardian as its refusal, then settled as a
        rejection."""
        self.halt = halt
        mode = "every order is blocked" if halt.block_all else "resting entries are cancelled"
        # A resting order on a venue is cancelled there: withdrawn once the venue says.
        reason = f"trading is halted ({halt.reason}): {mode}"
        for entry in list(self.resting.by_id.values()):
            if halt.block_all or not entry.protective:
                self._risk.cancelled(entry.order, reason)
                self._withdraw(entry, reason)
        if halt.block_all:
            orders = self.broker.pending_orders()
            for order in orders:
                self._risk.cancelled(order, reason)
            if orders:
                self.settle_all(self.broker.cancel_all(reason))

    def cancel_pending(self, reason: str) -> None:
        """Cancel every order at the broker (a shutdown). Resting orders rest on: the
        journal has them, and the next start puts them back (docs/orders.md)."""
        self.settle_all(self.broker.cancel_all(reason))

    def cancel_entries(self, strategy_id: str, reason: str) -> None:
        """Cancel the strategy's resting entries; a bracket's exits rest on."""
        for entry in self.resting.of(strategy_id):
            if not entry.protective:
                self._withdraw(entry, reason)

    def cancel_strategy(self, strategy_id: str, reason: str) -> None:
        """Cancel the strategy's resting orders, then its orders at the broker."""
        for entry in self.resting.of(strategy_id):
            self._withdraw(entry, reason)
        self.settle_all(self.broker.cancel_strategy(strategy_id, reason))

    # ------------------------------------------------------------ resting orders

    def open_orders(self, strategy_id: str, symbol: str | None = None) -> list[Order]:
        """The strategy's resting orders (a trailing stop at its current stop)."""
        return [_as_it_rests(entry) for entry in self.resting.of(strategy_id, symbol)]

    def cancel(self, strategy_id: str, order_id: str, reason: str = "cancelled") -> bool:
        """Cancel one resting order of the strategy; False when it has none by that id."""
        entry = self.resting.by_id.get(order_id)
        if entry is None or entry.order.strategy_id != strategy_id:
            return False
        self._withdraw(entry, reason)
        return True

    def cancel_by_id(
        self, order_id: str, reason: str, origin: CommandOrigin | None = None
    ) -> list[Order]:
        """Cancel a resting order whatever its strategy (a user's command); the id of a
        bracket's entry that already filled cancels the exits it armed. Returns what was
        cancelled: nothing when no resting order has that id or parent."""
        entry = self.resting.by_id.get(order_id)
        entries = (
            [entry]
            if entry is not None
            else [e for e in self.resting.by_id.values() if e.order.parent_id == order_id]
        )
        cancelled = [_as_it_rests(e) for e in entries]
        for each in entries:
            self._withdraw(each, reason, origin=origin)
        return cancelled

    def restore(self, order: Order, limits: StrategyRunConfig) -> None:
        """Put back an order that rested before a restart (the journal's), as it was
        placed: a DAY order's day is the one it was placed on; a trailing stop follows
        the prices from here on, from its last journaled stop. One the venue keeps
        (reconciliation found it there) rests there still."""
        entry = resting(order, limits, order.ts)
        entry.native = self._native is not None and self._native.holds_resting(order.id)
        self.resting.add(entry)

    def cancel_unrestored(self, order: Order, reason: str) -> None:
        """Cancel an order that rested before a restart and will not rest again (on
        its venue too, when it rests there)."""
        if self._native is not None and self._native.holds_resting(order.id):
            self._native.cancel_resting(order, forget=True)
        self._events.lifecycle(OrderCancelled(order, reason, self._clock.now()))
        self.reject(order, reason)

    def replace(
        self,
        strategy_id: str,
        order_id: str,
        quantity: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> bool:
        """Change a resting order's quantity or prices, keeping its id; an entry passes
        the risk checks again (a placement). False: no such order, a price it does not
        have (a stop for a limit order), or refused (then it rests unchanged)."""
        entry = self.resting.by_id.get(order_id)
        if entry is None or entry.order.strategy_id != strategy_id or entry.cancelling:
            return False
        old = entry.order
        if (limit_price is not None and old.limit_price is None) or (
            stop_price is not None and entry.stop is None
        ):
            return False
        new = replace(
            old,
            quantity=old.quantity if quantity is None else quantity,
            limit_price=old.limit_price if limit_price is None else limit_price,
            stop_price=(entry.stop if stop_price is None else stop_price)
            if old.stop_price is not None
            else None,
        )
        if not entry.protective:
            position = self.projected_position(strategy_id, old.symbol)
            position += self.resting.entries_quantity(strategy_id, old.symbol, old.side)
            position -= old.side.sign * old.quantity
            verdict = self._risk.check(new, entry.limits, position, self.halt)
            if verdict.order is None:
                return False
            new = verdict.order
        if entry.native and self._native is not None:
            self._native.replace_resting(old, new)  # a cancel and a new order there
        entry.order = new
        if entry.stop is not None:
            entry.stop = new.stop_price
        self._events.lifecycle(OrderReplaced(new, old, self._clock.now()))
        return True

    def enter_bar(
        self, symbol: str, start: float, low: float, high: float, volume: float = 0.0
    ) -> None:
        """A backtest's next prices are the bar of ``symbol`` from ``start``: they trade
        continuously between ``low`` and ``high`` after a jump to its open; with partial
        fills, ``volume`` (0: unknown) bounds what each resting order fills in it. Live,
        no one calls this: every price is a jump (docs/orders.md)."""
        bar = self._bar
        if bar is not None and bar[0] == start and self._bar_symbol == symbol:
            return
        self._bar_volume = volume
        self._bar = (start, low, high)
        self._bar_symbol = symbol
        self._opening = True
        self.resting.enter_bar(symbol, low, high, self._bracket_rule)

    def touch(self, tick: Tick) -> None:
        """Expire, trigger, fill or trail the resting orders of ``tick.symbol``."""
        bucket = self.resting.by_symbol.get(tick.symbol)
        price = tick.price
        if not bucket or not 0.0 < price < math.inf:
            return
        if self.book.last_price(tick.symbol) is None:
            # The first price after a restart: the risk checks at a restored order's
            # trigger value it at this price, there is no other yet.
            self.book.mark(tick.symbol, price, tick.ts)
        previous = None if self._bar is None or self._opening else self._previous
        by_id = self.resting.by_id
        self._touching = (price, previous, tick.ts)
        if self._partial:
            self._room = tick.size if tick.size > 0.0 else math.inf
        try:
            for entry in list(bucket.values()):
                if by_id.get(entry.order.id) is not entry:
                    continue  # filled or cancelled by an earlier one (a bracket's sibling)
                if tick.ts >= entry.expires_at:
                    self._withdraw(entry, DAY_EXPIRED, expired=True)
                elif not (entry.dormant or entry.suppressed or entry.native):
                    self._touch_one(entry, price, previous, tick.ts)
        finally:
            self._touching = None

    def _touch_one(
        self, entry: RestingOrder, price: float, previous: float | None, ts: float
    ) -> None:
        fired = fire_price(entry, price, previous)
        if fired is not None and entry.stop is not None and entry.order.limit_price is not None:
            entry.stop = None  # a stop-limit reached its stop: a limit order from here on
            fired = fire_price(entry, fired, None)
        if fired is not None:
            self._trigger(entry, fired, ts)
            if (
                entry.order.time_in_force is TimeInForce.IOC
                and self.resting.by_id.get(entry.order.id) is entry
            ):
                self._withdraw(entry, "IOC: the first price after it filled only part of it")
            return
        trail(entry, price)
        if entry.order.time_in_force is TimeInForce.IOC:
            self._withdraw(entry, "IOC: the first price after it did not fill it")

    def _trigger(self, entry: RestingOrder, price: float, ts: float) -> None:
        """A price reached ``entry``: checked again by risk, then filled at ``price``
        (with partial fills, as much of it as the price's size allows)."""
        if self._partial:
            room = self._room_for(entry)
            if room < entry.order.quantity:
                part = self._part_quantity(entry, room)
                if part <= 0.0:
                    return  # the bar's volume is used up: the next bar may fill it
                if part < entry.order.quantity:
                    self._fill_part(entry, part, price, ts)
                    return
        self.resting.remove(entry)
        self._events.lifecycle(OrderTriggered(_as_it_rests(entry), price, ts))
        order, limits = entry.order, entry.limits
        strategy_id, symbol = order.strategy_id, order.symbol
        position = self.projected_position(strategy_id, symbol)
        if entry.protective:
            reducing = min(order.quantity, max(0.0, -order.side.sign * position))
            if reducing <= 0.0:
                self.reject(order, "the position it protected is closed")
                return
            if reducing < order.quantity:
                order = replace(order, quantity=reducing)
            verdict = self._risk.check(order, limits, position, self.halt)
        else:
            position += self.resting.entries_quantity(strategy_id, symbol, order.side)
            verdict = self._risk.check_trigger(order, limits, position, self.halt)
        accepted = verdict.order
        if accepted is None:
            self.reject(order, verdict.reason or "refused by the risk checks at its trigger")
            return
        self._dispatch(accepted, limits)
        for fill in self.broker.execute(accepted, price, ts):
            self.settle(fill)

    def _room_for(self, entry: RestingOrder) -> float:
        """The most of ``entry`` the price being walked may fill (partial fills): the
        tick's size live; in a backtest bar its volume less what the entry filled in it."""
        if self._bar is None:
            return self._room
        volume = self._bar_volume
        return math.inf if volume <= 0.0 else volume - entry.bar_filled

    def _part_quantity(self, entry: RestingOrder, room: float) -> float:
        """What a part of ``entry`` fills with ``room`` at most; a protective exit is cut
        to the position it protects (it fills whole, cut, when that is less)."""
        if room <= 0.0 or not entry.protective:
            return room
        order = entry.order
        position = self.projected_position(order.strategy_id, order.symbol)
        held = max(0.0, -order.side.sign * position)
        return room if held > room else order.quantity

    def _fill_part(self, entry: RestingOrder, quantity: float, price: float, ts: float) -> None:
        """Fill ``quantity`` of ``entry`` at ``price``; the rest rests on, announced by
        an OrderPartiallyFilled after the part's trade. Risk checks the part as it
        checks a whole trigger (the rest counted as resting); refused, the order is
        settled as a whole trigger's refusal."""
        order, limits = entry.order, entry.limits
        strategy_id, symbol, sign = order.strategy_id, order.symbol, order.side.sign
        part = replace(order, quantity=quantity)
        position = self.projected_position(strategy_id, symbol)
        if entry.protective:
            verdict = self._risk.check(part, limits, position, self.halt)
        else:
            position += self.resting.entries_quantity(strategy_id, symbol, order.side)
            verdict = self._risk.check_trigger(part, limits, position - sign * quantity, self.halt)
        accepted = verdict.order
        if accepted is None:
            self.resting.remove(entry)
            self._events.lifecycle(OrderTriggered(_as_it_rests(entry), price, ts))
            self.reject(order, verdict.reason or "refused by the risk checks at its trigger")
            return
        rest = order.quantity - accepted.quantity
        stop = entry.stop
        entry.order = _remainder(entry, rest)
        entry.bar_filled += accepted.quantity
        self._events.part(accepted)
        key = (strategy_id, symbol)
        self._pending[key] = self._pending.get(key, 0.0) + sign * accepted.quantity
        self._orders[order.id] = (accepted, limits)
        for fill in self.broker.execute(accepted, price, ts):
            if fill.status is not FILLED:
                entry.order, entry.stop = order, stop  # nothing filled: it rests as it was
                entry.bar_filled -= accepted.quantity
                self.settle(fill)
                continue
            self.settle(replace(fill, remaining=rest))
            if self.resting.by_id.get(order.id) is entry:
                event = OrderPartiallyFilled(_as_it_rests(entry), fill.quantity, fill.price, ts)
                self._events.lifecycle(event)

    def _leg(
        self,
        entry: Order,
        side: Side,
        quantity: float,
        ts: float,
        purpose: OrderPurpose,
        kind: OrderType,
    ) -> Order:
        """One exit of ``entry``'s bracket, without its price."""
        return Order(
            self._ids("order"),
            entry.strategy_id,
            entry.symbol,
            side,
            quantity,
            ts,
            purpose,
            entry.signal_id,
            kind,
            parent_id=entry.id,
        )

    def _withdraw(
        self,
        entry: RestingOrder,
        reason: str,
        *,
        expired: bool = False,
        origin: CommandOrigin | None = None,
    ) -> None:
        """Cancel (or expire) a resting order: announced, then settled as a rejection
        with ``reason``. One on a venue is cancelled there first: withdrawn when the
        venue confirms (it may have filled meanwhile: then it is filled)."""
        if entry.native:
            if entry.cancelling is None and self._native is not None:
                entry.cancelling = (reason, expired, origin)
                self._native.cancel_resting(entry.order)
            return
        self.resting.remove(entry)
        order, now = _as_it_rests(entry), self._clock.now()
        gone = OrderExpired(order, reason, now) if expired else None
        self._events.lifecycle(gone or OrderCancelled(order, reason, now, origin))
        self.reject(entry.order, reason)

    def _after_fill(
        self, order: Order | None, change: PositionChange, limits: StrategyRunConfig | None
    ) -> None:
        """After a fill: arm its bracket; a bracket exit's fill cancels its siblings; exits
        whose position closed or turned are cancelled."""
        if (
            order is not None
            and order.parent_id is not None
            and order.id not in self.resting.by_id  # a part of a target: it rests on
        ):
            for sibling in self.resting.siblings(order):
                self._withdraw(sibling, "the other exit of its bracket filled")
        fill = change.fill
        after = change.quantity_after
        for entry in self.resting.of(fill.strategy_id, fill.symbol):
            if entry.protective and entry.order.side.sign * after >= 0:
                self._withdraw(entry, "the position it protected is closed")
        if order is not None and order.bracket is not None and limits is not None:
            self._arm(order, change, limits)

    def _arm(self, entry: Order, change: PositionChange, limits: StrategyRunConfig) -> None:
        """The exits of ``entry``'s bracket, for the quantity its fill opened."""
        bracket = entry.bracket
        quantity = change.opened_quantity
        if bracket is None or quantity <= 0.0:
            return
        fill = change.fill
        armed_before = [
            e
            for e in self.resting.of(entry.strategy_id, entry.symbol)
            if e.order.parent_id == entry.id
        ]
        if armed_before:
            self._grow(armed_before, quantity, fill.ts)
            return
        side = SELL if entry.side is BUY else BUY
        legs: list[Order] = []
        stop = bracket.stop_loss
        if stop is None and bracket.trailing is not None:
            stop = bracket.trailing.stop_from(fill.price, side)
        if stop is not None:
            legs.append(
                self._leg(entry, side, quantity, fill.ts, OrderPurpose.STOP_LOSS, OrderType.STOP)
            )
            legs[-1] = replace(legs[-1], stop_price=stop, trailing=bracket.trailing)
        if bracket.take_profit is not None:
            target = self._leg(entry, side, quantity, fill.ts, OrderPurpose.TAKE_PROFIT, LIMIT)
            legs.append(replace(target, limit_price=bracket.take_profit))
        armed = [resting(leg, limits, fill.ts) for leg in legs]
        dormant = self._waits_for_next_bar(entry, armed)
        for armed_entry in armed:
            armed_entry.dormant = dormant
            armed_entry.best = fill.price
            self.resting.add(armed_entry)
            self._events.lifecycle(OrderAccepted(armed_entry.order, fill.ts))
        if self._bar is not None and not dormant:
            apply_bracket_rule(armed, self._bar[1], self._bar[2], self._bracket_rule)
        touching = self._touching
        if touching is not None and not dormant:
            # Filled by the price being walked: the exits see that price too (a stop
            # entry's target a bar reaches beyond the entry fills in that bar).
            for armed_entry in armed:
                if self.resting.by_id.get(armed_entry.order.id) is armed_entry:
                    self._touch_one(armed_entry, *touching)

    def _grow(self, exits: list[RestingOrder], quantity: float, ts: float) -> None:
        """A later part of an entry filled (partial fills): the exits it armed grow by
        the quantity it opened, each announced as replaced (same id, new quantity)."""
        for exit_entry in exits:
            old = exit_entry.order
            exit_entry.order = replace(old, quantity=old.quantity + quantity)
            self._events.lifecycle(OrderReplaced(_as_it_rests(exit_entry), old, ts))

    def _waits_for_next_bar(self, entry: Order, armed: list[RestingOrder]) -> bool:
        """Whether the exits ``entry``'s fill armed inside a backtest bar wait for the
        next bar: the order of the bar's prices after a resting entry's fill is unknown.
        Not a market entry's (filled at the open, the rest of the bar comes after it),
        nor a stop entry's when the bar does not reach its stop-loss: then its target,
        beyond the entry in the direction the price moved, fills if the bar reaches it
        (backtesting.py's rules)."""
        bar = self._bar
        if bar is None or (self._opening and entry.order_type is MARKET):
            return False
        if entry.order_type is OrderType.STOP:
            stops = [leg for leg in armed if leg.order.order_type is OrderType.STOP]
            return any(reached(leg, bar[1], bar[2]) for leg in stops)
        return True


def log_flattened(order: Order, reason: str) -> None:
    """The line every order that closes a position for a flatten is logged with."""
    log.warning(
        "position_flattened",
        order_id=order.id,
        strategy_id=order.strategy_id,
        symbol=order.symbol,
        side=order.side.value,
        quantity=order.quantity,
        reason=reason,
    )


def _as_it_rests(entry: RestingOrder) -> Order:
    """The order of ``entry`` with the stop it waits for now (a trailing stop moves)."""
    order = entry.order
    if entry.stop is None or entry.stop == order.stop_price:
        return order
    return replace(order, stop_price=entry.stop)


def _remainder(entry: RestingOrder, rest: float) -> Order:
    """The order of ``entry`` after a part filled, ``rest`` of it left: a stop that was
    reached rests on as what it became, a LIMIT (a stop-limit) or a MARKET order (a
    stop), so that a restart puts it back as that (docs/orders.md#partial-fills)."""
    order = entry.order
    if order.stop_price is None or (
        entry.stop is not None and order.order_type is not OrderType.STOP
    ):
        return replace(order, quantity=rest)
    entry.stop = None
    kind = LIMIT if order.limit_price is not None else MARKET
    return replace(order, quantity=rest, order_type=kind, stop_price=None, trailing=None)


def with_terms(order: Order, terms: OrderTerms) -> Order:
    """``order`` with a strategy's order terms (type, prices, time in force, bracket)."""
    return replace(
        order,
        order_type=terms.order_type,
        limit_price=terms.limit_price,
        stop_price=terms.stop_price,
        time_in_force=terms.time_in_force,
        bracket=terms.bracket,
    )


def halt_at_start(risk: RiskConfig, now: float) -> Halt | None:
    """The kill switch ``risk.halted_at_start`` engages before anything trades, live
    and in a backtest; None when trading starts running."""
    if not risk.halted_at_start:
        return None
    return Halt("engaged by config (risk.halted_at_start)", False, HaltSource.CONFIG, now)


def signal_quantity(
    quantity: float | None,
    action: Side,
    held: float,
    price: float,
    max_position_value: float,
    sizing_fraction: float,
) -> float | None:
    """The quantity a signal trades; the one sizing rule of live trading and backtests.

    A signal's own ``quantity`` is kept. ``None`` is sized: the units that take
    ``held`` (orders in flight included) to ``floor(max_position_value *
    sizing_fraction / price)`` on the signal's side, at least 0 (an order of 0
    is rejected: see :func:`too_small_reason`). Returns None when a sized
    signal has nothing to do: the position is already at or beyond the target
    on that side.
    """
    if quantity is not None:
        return quantity
    target = math.floor(max_position_value * sizing_fraction / price)
    held_on_side = action.sign * held
    size = float(target) - held_on_side
    if size > 0.0:  # max(0.0, size) as a conditional: the builtin costs 100 ns a signal
        return size
    return None if held_on_side > 0 else 0.0


def too_small_reason(max_position_value: float, symbol: str, price: float) -> str:
    """Why a signal sized to 0 units is rejected."""
    limit = f"maxPositionValue {max_position_value:g}"
    return f"{limit} buys less than one unit of {symbol} at {price:g}"
