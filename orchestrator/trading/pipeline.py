"""The order pipeline: the one path every order takes, live and in a backtest.

A signal is sized (:func:`signal_quantity`) into an order; the order passes the
risk checks against the position it would make (held plus orders in flight),
then goes to the broker. Every fill or rejection the broker returns is settled
here: the order leaves the pending quantities, the book nets the fill, the
guardian sees it, and what the guardian asks for (stop-loss exits, the kill
switch) is done. The execution service runs the pipeline on the live price
stream; the backtest engine runs it on a replay of bars, so both trade by the
same rules because there is only one copy of them.

The owner hears of what happens through :class:`OrderEvents` (the execution
service publishes it; a backtest records it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from orchestrator.model.clock import Clock
from orchestrator.model.events import HaltSource, RiskLimit
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, Side, rejection
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import NO_ACTIONS, Halt, PreTradeCheck, RiskActions, Verdict
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.broker import Broker
from orchestrator.trading.portfolio import PortfolioBook, PositionChange
from orchestrator.trading.refusals import UNREMEMBERED_LIMITS, RefusalMemory, RefusedSignal

PENDING_EPSILON = 1e-9
"""A pending quantity below this is float dust of orders that all settled."""


class OrderEvents(Protocol):
    """What the pipeline tells its owner, each at the moment it happens."""

    def accepted(self, order: Order) -> None:
        """``order`` passed the risk checks (maybe reduced) and goes to the broker now."""
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
        strategy_id, symbol, side = order
        signal = (side, asked, self.projected_position(strategy_id, symbol))
        return self._refusals.holds_back(
            strategy_id, symbol, signal, limits, (self.halt, self._clock.now())
        )

    def submit_signal(
        self, order: Order, limits: StrategyRunConfig, price: float, asked: float | None
    ) -> bool:
        """The order of a sized signal (``asked``: the quantity the signal asked for,
        None when it was sized); one of no units is rejected as too small. A refusal
        is remembered: :meth:`holds_back` holds back the same signal while it holds."""
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
        verdict = self._risk.check(order, limits, position, self.halt)
        accepted = verdict.order
        if accepted is None:
            self.reject(order, verdict.reason or "refused by the risk checks")
            return verdict
        key = (accepted.strategy_id, accepted.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + accepted.side.sign * accepted.quantity
        self._orders[accepted.id] = (accepted, limits)
        self._events.accepted(accepted)
        for fill in self.broker.submit(accepted):
            self.settle(fill)
        return verdict

    def reject(self, order: Order, reason: str) -> None:
        """Settle ``order`` as refused before it reached the broker (so it is not pending)."""
        self.settle(rejection(order, self._ids("trade"), reason, self._clock.now()))

    # ------------------------------------------------------------ prices

    def on_tick(self, tick: Tick) -> None:
        """Fill orders waiting for this symbol's next price, mark positions, then let
        the guardian watch them (stop-losses, daily loss, limits the market broke)."""
        self.fill(tick)
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
        """Settle the rejections of orders that found no price in time."""
        self.settle_all(self.broker.expire())

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
        limits = None
        if sent is not None:
            order, limits = sent
            key = (order.strategy_id, order.symbol)
            remaining = self._pending.get(key, 0.0) - order.side.sign * order.quantity
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
        if actions is not NO_ACTIONS:
            self.act(actions)

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
        """Halt trading. With ``block_all`` every pending order is cancelled: reported
        to the guardian as its refusal, then settled as a rejection."""
        self.halt = halt
        if halt.block_all:
            reason = f"trading is halted ({halt.reason}): every order is blocked"
            orders = self.broker.pending_orders()
            for order in orders:
                self._risk.cancelled(order, reason)
            if orders:
                self.settle_all(self.broker.cancel_all(reason))

    def cancel_all(self, reason: str) -> None:
        self.settle_all(self.broker.cancel_all(reason))

    def cancel_strategy(self, strategy_id: str, reason: str) -> None:
        self.settle_all(self.broker.cancel_strategy(strategy_id, reason))


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
    size = max(0.0, float(target) - action.sign * held)
    if size <= 0 and action.sign * held > 0:
        return None
    return size


def too_small_reason(max_position_value: float, symbol: str, price: float) -> str:
    """Why a signal sized to 0 units is rejected."""
    limit = f"maxPositionValue {max_position_value:g}"
    return f"{limit} buys less than one unit of {symbol} at {price:g}"
