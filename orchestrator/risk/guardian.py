"""The risk guardian: pre-trade limits, stop-losses, daily loss and the kill switch.

Every order the execution service receives passes :meth:`RiskGuardian.check`
before the paper broker sees it. In this order, the first limit an order breaks
refuses it (published as :class:`OrderRejected`):

1. the kill switch: while it is engaged only orders that reduce a position pass
   (reduce-only), and none at all if it was engaged with ``block_all``;
2. exits that reduce a position (stop-loss exits, the closing orders of
   ``stop_strategy``) pass from here on: no rate or exposure limit holds them;
3. ``maxOrdersPerMinute`` of the strategy, a sliding 60-second window;
4. ``max_orders_per_second`` of the whole daemon, a sliding 1-second window in
   which each strategy that sent an order in the last minute may use an equal
   share, so one strategy's flood cannot starve another;
5. orders that reduce a position pass from here on;
6. ``maxPositionValue`` of the strategy in the symbol, counting orders in
   flight: refused, or reduced to the largest order that fits when
   ``position_limit_mode`` is ``reduce``;
7. ``max_gross_exposure`` across every strategy.

An order that reverses a position (closes it and opens the other side, as a
strategy's ``enter_long`` from short does) and is refused by the kill switch
(reduce-only), an unknown price or 6 or 7 is cut to the part that closes the
position, which would pass on its own, and published as :class:`OrderReduced`
with the limit that bit: a strategy is never kept in a position it asked to
leave.

Rate windows count the orders that were sent, never the refused ones, so a
strategy over its limit gets its next order through as soon as the window
slides. On every price update the guardian checks the positions in that symbol
only: a loss of ``stopLossPercentage`` against the entry price exits the
position at market once; the day's P&L (realized plus unrealized since the UTC
midnight of the clock) beyond ``max_daily_loss`` engages the kill switch once a
day; a position or the gross exposure that the market pushed beyond its limit is
reported once until it is back under.

The guardian decides and reports; the execution service acts on what it
returns (:class:`RiskActions`) and owns the kill switch state (:class:`Halt`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple, Protocol

import structlog

from orchestrator.bus import EventBus
from orchestrator.model.clock import DAY_SECONDS, Clock
from orchestrator.model.events import (
    HaltSource,
    LimitBreached,
    OrderReduced,
    OrderRejected,
    RiskLimit,
    StopLossTriggered,
)
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, OrderPurpose, Side
from orchestrator.model.records import record
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.portfolio import (
    NO_PNL,
    Pnl,
    PortfolioBook,
    Position,
    PositionChange,
    positions_pnl,
    reduces_position,
    reverses_position,
    utc_day,
)

log = structlog.get_logger("orchestrator.risk.guardian")

ORDER_WINDOW_SECONDS = 60.0
GLOBAL_WINDOW_SECONDS = 1.0
TOLERANCE = 1e-9
"""Relative slack on every bound, so a value exactly at a limit is within it
despite float rounding (e.g. 0.1 * 3 is 0.30000000000000004)."""
"""A tuple: membership by identity, where a set would hash the enum in Python code."""


@record
class Verdict:
    """What the pre-trade checks decided: the order to send (maybe reduced) or why not."""

    order: Order | None
    reason: str | None = None
    limit: RiskLimit | None = None
    """The limit that refused the order; None when it was sent."""
    retry_at: float | None = None
    """For a limit that frees with time (the order rates): when the same order would
    pass if nothing else changed. None: it stays refused until something changes."""


class _Refusal(NamedTuple):
    """A limit an order breaks, before it is published (see ``RiskGuardian._refuse``)."""

    limit: RiskLimit
    limit_value: float
    actual: float
    reason: str
    retry_at: float | None = None


@record
class Halt:
    """The kill switch, engaged: why, since when, and whether exits still pass."""

    reason: str
    block_all: bool
    source: HaltSource
    since: float


@record
class RiskActions:
    """What the execution service must do after a price or a fill."""

    exits: tuple[tuple[Order, StrategyRunConfig], ...] = ()
    """Stop-loss exits to submit, with the limits of their strategy."""
    halt: Halt | None = None
    """Engage the kill switch (the daily loss limit was reached)."""


NO_ACTIONS = RiskActions()


class PreTradeCheck(Protocol):
    """What the execution service asks before and after every order."""

    def check(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        """``position``: the strategy's quantity in the symbol, orders in flight included."""
        ...

    def check_trigger(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        """A resting order a price triggered, checked again before the broker."""
        ...

    def on_fill(self, fill: Fill, change: PositionChange | None) -> RiskActions: ...

    def on_price(self, tick: Tick, halt: Halt | None) -> RiskActions: ...

    def cancelled(self, order: Order, reason: str) -> None:
        """The kill switch withdrew ``order`` from the broker."""
        ...


@record
class PositionRisk:
    symbol: str
    quantity: float
    entry_price: float
    current_value: float
    stop_price: float | None


@record
class StrategyRisk:
    strategy_id: str
    limits: StrategyRunConfig | None
    exposure: float
    orders_last_minute: int
    pnl: Pnl
    positions: tuple[PositionRisk, ...]

    @property
    def realized_pnl(self) -> float:
        """Realized since the strategy first traded (``pnl.realized_since_start``)."""
        return self.pnl.realized_since_start

    @property
    def unrealized_pnl(self) -> float:
        return self.pnl.unrealized


@record
class RiskSnapshot:
    """Limits and current usage, for get_risk_status."""

    config: RiskConfig
    gross_exposure: float
    orders_last_second: int
    daily_pnl: float
    day_start: float
    strategies: tuple[StrategyRisk, ...]


class _Window:
    """Timestamps of orders sent within a sliding window, oldest first."""

    __slots__ = ("_seconds", "_times")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        times, horizon = self._times, now - self._seconds
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self._times.append(now)

    def oldest(self) -> float:
        """The time of the oldest order counted (call after :meth:`count`, which found some)."""
        return self._times[0]


class RiskGuardian:
    def __init__(
        self,
        config: RiskConfig,
        book: PortfolioBook,
        bus: EventBus,
        clock: Clock,
        ids: IdFactory,
    ) -> None:
        self.config = config
        self._book = book
        self._bus = bus
        self._clock = clock
        self._ids = ids
        self._limits: dict[str, StrategyRunConfig] = {}
        self._minute: dict[str, _Window] = {}
        self._second: deque[tuple[float, str]] = deque()
        self._second_counts: dict[str, int] = {}
        self._last_attempt: dict[str, float] = {}
        """When each strategy last tried to order, least recent first."""
        self._held: dict[str, dict[str, Position]] = {}
        self._unrealized: dict[str, float] = {}
        self._gross: dict[str, float] = {}
        self.gross_exposure = 0.0
        self._realized = 0.0
        self._stops: dict[tuple[str, str], str] = {}
        self._breached: set[tuple[RiskLimit, str | None, str | None]] = set()
        self._day = _day_of(clock.now())
        self._day_start_equity = 0.0
        self._daily_loss_day: int | None = None
        self._reduce_only: dict[str, str] = {}
        """Strategies that may only reduce their positions, and why (a venue's balance
        that does not match the journal: docs/venues.md), until :meth:`lift`."""

    # ------------------------------------------------------------ pre-trade

    def check(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        self._limits[order.strategy_id] = limits
        signed = order.side.sign * order.quantity
        reduces = reduces_position(position, signed)
        cut: _Refusal | None = None  # why a reversal may send only its closing part
        if halt is not None and (halt.block_all or not reduces):
            if halt.block_all or not reverses_position(position, signed):
                return self._refuse(order, *self._halted(order, halt))
            cut = self._halted(order, halt)
        if self._reduce_only and not reduces and order.strategy_id in self._reduce_only:
            if not reverses_position(position, signed):
                return self._refuse(order, *self._restricted(order))
            cut = cut or self._restricted(order)
        now = self._clock.now()
        if reduces:
            # Whatever asks for it (a stop-loss, stop_strategy or the strategy itself), an
            # order that only reduces a position is never held back by a rate or an
            # exposure limit: a strategy is never kept in a position it asked to leave.
            self._touch(order.strategy_id, now)
            self._record(order, now)
            return Verdict(order)
        rate = self._check_rates(order, limits, now)
        if rate is not None:
            if not reverses_position(position, signed):
                return self._refuse(order, *rate)
            cut = cut or rate
        if cut is None:
            exposure = self._check_exposure(order, limits, position)
            if isinstance(exposure, Verdict):
                if exposure.order is not None:
                    self._record(exposure.order, now)
                return exposure
            if not reverses_position(position, signed):
                return self._refuse(order, *exposure)
            cut = exposure
        return self._send_closing_part(order, position, cut, now)

    def check_trigger(
        self, order: Order, limits: StrategyRunConfig, position: float, halt: Halt | None
    ) -> Verdict:
        """A resting order that a price triggered, checked again before it goes to the
        broker: the kill switch and the exposure limits (``position`` counts the other
        resting entries), not the order rates: its placement was counted."""
        self._limits[order.strategy_id] = limits
        reduces = reduces_position(position, order.side.sign * order.quantity)
        if halt is not None and (halt.block_all or not reduces):
            return self._refuse(order, *self._halted(order, halt))
        if reduces:
            return Verdict(order)
        if order.strategy_id in self._reduce_only:
            return self._refuse(order, *self._restricted(order))
        exposure = self._check_exposure(order, limits, position)
        return exposure if isinstance(exposure, Verdict) else self._refuse(order, *exposure)

    def _send_closing_part(
        self, order: Order, position: float, cut: _Refusal, now: float
    ) -> Verdict:
        """Of a reversal a limit refuses, the part that closes the position: it would
        pass on its own, as the exit of the old two-order reversal did."""
        closing = replace(order, quantity=abs(position))
        self._record(closing, now)
        sent = f"sent {closing.quantity:g} of {order.quantity:g} to close the position"
        self._announce_reduced(
            order, closing.quantity, cut.limit, cut.limit_value, cut.actual, f"{cut.reason}; {sent}"
        )
        return Verdict(closing)

    def _halted(self, order: Order, halt: Halt) -> _Refusal:
        mode = (
            "every order is blocked"
            if halt.block_all
            else "only orders that reduce a position pass"
        )
        return self._kill_switch(order, f"trading is halted ({halt.reason}): {mode}")

    def restrict(self, strategy_id: str, reason: str) -> None:
        """Let only the orders that reduce the strategy's positions through, until
        :meth:`lift`."""
        if self._reduce_only.get(strategy_id) != reason:
            log.warning("strategy_reduce_only", strategy_id=strategy_id, reason=reason)
        self._reduce_only[strategy_id] = reason

    def lift(self, strategy_id: str) -> None:
        if self._reduce_only.pop(strategy_id, None) is not None:
            log.warning("strategy_reduce_only_lifted", strategy_id=strategy_id)

    def restriction(self, strategy_id: str) -> str | None:
        """Why the strategy may only reduce its positions, or None."""
        return self._reduce_only.get(strategy_id)

    def _restricted(self, order: Order) -> _Refusal:
        price = self._book.last_price(order.symbol) or 0.0
        reason = f"only orders that reduce a position pass: {self._reduce_only[order.strategy_id]}"
        return _Refusal(RiskLimit.POSITION_MISMATCH, 0.0, order.quantity * price, reason)

    def _kill_switch(self, order: Order, reason: str) -> _Refusal:
        """The kill switch's refusal of ``order``, valued at the book's last price."""
        price = self._book.last_price(order.symbol) or 0.0
        return _Refusal(RiskLimit.KILL_SWITCH, 0.0, order.quantity * price, reason)

    def _check_rates(self, order: Order, limits: StrategyRunConfig, now: float) -> _Refusal | None:
        strategy_id = order.strategy_id
        self._touch(strategy_id, now)
        window = self._minute.get(strategy_id)
        if window is None:
            window = self._minute[strategy_id] = _Window(ORDER_WINDOW_SECONDS)
        sent = window.count(now)
        if sent >= limits.max_orders_per_minute:
            reason = (
                f"maxOrdersPerMinute {limits.max_orders_per_minute} reached: "
                f"{strategy_id} sent {sent} orders in the last 60 s"
            )
            limit = limits.max_orders_per_minute
            frees = window.oldest() + ORDER_WINDOW_SECONDS
            return _Refusal(RiskLimit.MAX_ORDERS_PER_MINUTE, limit, sent + 1, reason, frees)
        return self._check_global_rate(order, now)

    def _check_global_rate(self, order: Order, now: float) -> _Refusal | None:
        limit = self.config.max_orders_per_second
        total = self._expire_second(now)
        if total >= limit:
            reason = f"max_orders_per_second {limit} reached: {total} orders in the last second"
            frees = self._second[0][0] + GLOBAL_WINDOW_SECONDS
            return _Refusal(RiskLimit.MAX_ORDERS_PER_SECOND, limit, total + 1, reason, frees)
        own = self._second_counts.get(order.strategy_id, 0)
        if own * len(self._last_attempt) < limit:
            # Within the smallest share there can be (the sharers counted before
            # the last minute's are let go): no need to count them exactly.
            return None
        sharing = self._sharing(now)
        share = math.ceil(limit / max(1, sharing))
        if own >= share:
            reason = (
                f"fair share of max_orders_per_second {limit} among {sharing} trading "
                f"strategies is {share}: {order.strategy_id} sent {own} in the last second"
            )
            frees = now + GLOBAL_WINDOW_SECONDS  # at the latest: the whole window has moved on
            return _Refusal(RiskLimit.MAX_ORDERS_PER_SECOND, share, own + 1, reason, frees)
        return None

    def _touch(self, strategy_id: str, now: float) -> None:
        attempts = self._last_attempt
        attempts.pop(strategy_id, None)
        attempts[strategy_id] = now

    def _sharing(self, now: float) -> int:
        """Strategies that tried to order in the last minute."""
        attempts, horizon = self._last_attempt, now - ORDER_WINDOW_SECONDS
        while attempts:
            oldest = next(iter(attempts))
            if attempts[oldest] > horizon:
                break
            del attempts[oldest]
        return len(attempts)

    def _expire_second(self, now: float) -> int:
        window, counts, horizon = self._second, self._second_counts, now - GLOBAL_WINDOW_SECONDS
        while window and window[0][0] <= horizon:
            _, strategy_id = window.popleft()
            left = counts[strategy_id] - 1
            if left:
                counts[strategy_id] = left
            else:
                del counts[strategy_id]
        return len(window)

    def _check_exposure(
        self, order: Order, limits: StrategyRunConfig, position: float
    ) -> Verdict | _Refusal:
        """The order to send (maybe reduced to fit), or the limit it breaks (unpublished)."""
        price = self._book.last_price(order.symbol)
        if price is None:
            reason = f"no price for {order.symbol} yet: the order cannot be valued"
            return _Refusal(RiskLimit.PRICE_UNKNOWN, 0.0, 0.0, reason)
        sign = order.side.sign
        asked_value = abs(position + sign * order.quantity) * price
        sent = order
        if asked_value > limits.max_position_value * (1 + TOLERANCE):
            fitting = self._fitting_quantity(order, limits.max_position_value / price, position)
            if fitting is None:
                reason = (
                    f"maxPositionValue {limits.max_position_value:g} exceeded: the position "
                    f"in {order.symbol} would be worth {asked_value:.2f}"
                )
                limit = limits.max_position_value
                return _Refusal(RiskLimit.MAX_POSITION_VALUE, limit, asked_value, reason)
            sent = replace(order, quantity=fitting)
        after = abs(position + sign * sent.quantity)
        gross = self.gross_exposure + (after - abs(position)) * price
        if gross > self.config.max_gross_exposure * (1 + TOLERANCE):
            reason = (
                f"max_gross_exposure {self.config.max_gross_exposure:g} exceeded: gross "
                f"exposure would be {gross:.2f}"
            )
            limit = self.config.max_gross_exposure
            return _Refusal(RiskLimit.MAX_GROSS_EXPOSURE, limit, gross, reason)
        if sent is not order:
            limit = limits.max_position_value
            reason = (
                f"maxPositionValue {limit:g}: {order.quantity:g} {order.symbol} would be worth "
                f"{asked_value:.2f}; sent {sent.quantity:g}"
            )
            self._announce_reduced(
                order, sent.quantity, RiskLimit.MAX_POSITION_VALUE, limit, asked_value, reason
            )
        return Verdict(sent)

    def _fitting_quantity(self, order: Order, max_units: float, position: float) -> float | None:
        """The largest quantity that keeps the position within the limit, in reduce mode."""
        if self.config.position_limit_mode != "reduce":
            return None
        room = max_units - order.side.sign * position
        if float(order.quantity).is_integer():
            room = math.floor(room + TOLERANCE)
        return room if room > 0 else None

    def _announce_reduced(
        self,
        order: Order,
        quantity: float,
        limit: RiskLimit,
        limit_value: float,
        asked: float,
        reason: str,
    ) -> None:
        log.info("order_reduced", strategy_id=order.strategy_id, order_id=order.id, reason=reason)
        event = OrderReduced(order, quantity, limit, limit_value, asked, reason, self._clock.now())
        self._bus.publish(event)

    def _refuse(
        self,
        order: Order,
        limit: RiskLimit,
        limit_value: float,
        actual: float,
        reason: str,
        retry_at: float | None = None,
    ) -> Verdict:
        log.info(
            "order_refused",
            strategy_id=order.strategy_id,
            order_id=order.id,
            symbol=order.symbol,
            limit=limit,
            reason=reason,
        )
        self._bus.publish(
            OrderRejected(
                order, limit, float(limit_value), float(actual), reason, self._clock.now()
            )
        )
        return Verdict(None, reason, limit, retry_at)

    def _record(self, order: Order, now: float) -> None:
        """Count a sent order; its strategy's attempt was noted (``_touch``) already."""
        strategy_id = order.strategy_id
        window = self._minute.get(strategy_id)
        if window is None:
            window = self._minute[strategy_id] = _Window(ORDER_WINDOW_SECONDS)
        window.add(now)
        self._second.append((now, strategy_id))
        self._second_counts[strategy_id] = self._second_counts.get(strategy_id, 0) + 1

    def cancelled(self, order: Order, reason: str) -> None:
        """The kill switch withdrew ``order`` from the broker: report it like a refusal."""
        self._refuse(order, *self._kill_switch(order, reason))

    # ------------------------------------------------------------ post-trade

    def on_fill(self, fill: Fill, change: PositionChange | None) -> RiskActions:
        if self._stops:
            key = (fill.strategy_id, fill.symbol)
            if self._stops.get(key) == fill.order_id:
                # Filled, the position is flat; refused, the next price may try again.
                del self._stops[key]
        if fill.status is not FILLED or change is None:
            return NO_ACTIONS
        self._roll_day(fill.ts)
        self._realized += change.realized_pnl
        held = self._held.get(fill.symbol)
        if held is None:
            held = self._held[fill.symbol] = {}
        if fill.strategy_id not in held:
            position = self._book.portfolio(fill.strategy_id).get(fill.symbol)
            if position is not None:
                held[fill.strategy_id] = position
        self._remeasure(fill.symbol, held)
        return self._check_daily_loss(fill.ts)

    def on_price(self, tick: Tick, halt: Halt | None) -> RiskActions:
        """One pass over the positions in the ticked symbol (marked already)."""
        held = self._held.get(tick.symbol)
        price = tick.price
        if not held or not 0.0 < price < math.inf:
            return NO_ACTIONS
        self._roll_day(tick.ts)
        exits: list[tuple[Order, StrategyRunConfig]] = []
        stops_allowed = halt is None or not halt.block_all
        unrealized = gross = 0.0
        for strategy_id, position in held.items():
            quantity = position.quantity
            if quantity == 0.0:
                continue
            notional = position.notional
            unrealized += position.unrealized_pnl
            gross += notional
            limits = self._limits.get(strategy_id)
            if limits is None:
                continue
            pct = limits.stop_loss_percentage
            if (
                stops_allowed
                and pct > 0.0
                and _stop_reached(quantity, position.entry_price, pct, price)
            ):
                order = self._stop_loss(strategy_id, position, limits, tick)
                if order is not None:
                    exits.append((order, limits))
            if notional > limits.max_position_value * (1 + TOLERANCE) or self._breached:
                self._watch_position(strategy_id, position, limits.max_position_value, tick.ts)
        self._measured(tick.symbol, unrealized, gross)
        self._watch_gross(tick.ts)
        actions = self._check_daily_loss(tick.ts)
        if exits:
            return RiskActions(tuple(exits), actions.halt)
        return actions

    def measure(self, symbol: str, ts: float) -> None:
        """Bring the day and the measures of ``symbol`` to the book's price at ``ts``.

        What ``on_price`` keeps without what it watches for: for a caller that
        knows the price reaches no stop, limit or daily loss (a backtest's
        alarms), so that the next order is checked against the right exposure.
        """
        held = self._held.get(symbol)
        if held:
            self._roll_day(ts)
            self._remeasure(symbol, held)

    def _stop_loss(
        self, strategy_id: str, position: Position, limits: StrategyRunConfig, tick: Tick
    ) -> Order | None:
        """The exit of a position whose stop was reached, unless one is on its way."""
        key = (strategy_id, position.symbol)
        if key in self._stops:
            return None
        pct = limits.stop_loss_percentage
        stop = stop_price(position.quantity, position.entry_price, pct)
        long = position.quantity > 0.0
        order = Order(
            id=self._ids("order"),
            strategy_id=strategy_id,
            symbol=position.symbol,
            side=Side.SELL if long else Side.BUY,
            quantity=abs(position.quantity),
            ts=tick.ts,
            purpose=OrderPurpose.STOP_LOSS,
        )
        self._stops[key] = order.id
        log.info(
            "stop_loss_triggered",
            strategy_id=strategy_id,
            symbol=position.symbol,
            price=tick.price,
            stop_price=stop,
            order_id=order.id,
        )
        self._bus.publish(
            StopLossTriggered(
                order=order,
                position_quantity=position.quantity,
                entry_price=position.entry_price,
                trigger_price=tick.price,
                stop_price=stop or 0.0,
                stop_loss_percentage=pct,
                unrealized_pnl=(tick.price - position.entry_price) * position.quantity,
                ts=tick.ts,
            )
        )
        return order

    def _watch_position(
        self, strategy_id: str, position: Position, limit: float, ts: float
    ) -> None:
        value = position.notional
        key = (RiskLimit.MAX_POSITION_VALUE, strategy_id, position.symbol)
        if value <= limit * (1 + TOLERANCE):
            self._breached.discard(key)
        elif key not in self._breached:
            self._breached.add(key)
            reason = (
                f"the price moved {strategy_id}'s position in {position.symbol} to "
                f"{value:.2f}, above maxPositionValue {limit:g}"
            )
            self._breach(RiskLimit.MAX_POSITION_VALUE, limit, value, reason, ts, key)

    def _watch_gross(self, ts: float) -> None:
        limit, value = self.config.max_gross_exposure, self.gross_exposure
        key = (RiskLimit.MAX_GROSS_EXPOSURE, None, None)
        if value <= limit * (1 + TOLERANCE):
            self._breached.discard(key)
        elif key not in self._breached:
            self._breached.add(key)
            reason = f"the price moved gross exposure to {value:.2f}, above {limit:g}"
            self._breach(RiskLimit.MAX_GROSS_EXPOSURE, limit, value, reason, ts, key)

    def _breach(
        self,
        limit: RiskLimit,
        limit_value: float,
        actual: float,
        reason: str,
        ts: float,
        key: tuple[RiskLimit, str | None, str | None],
        engages_kill_switch: bool = False,
    ) -> None:
        log.warning("limit_breached", limit=limit, strategy_id=key[1], symbol=key[2], reason=reason)
        self._bus.publish(
            LimitBreached(
                limit, limit_value, actual, reason, ts, key[1], key[2], engages_kill_switch
            )
        )

    def _remeasure(self, symbol: str, held: Mapping[str, Position]) -> None:
        unrealized = gross = 0.0
        for position in held.values():
            quantity = position.quantity
            if quantity != 0.0:
                # Position.unrealized_pnl and .notional, inlined (the same expressions):
                # this runs at every fill and every price a backtest shows the guardian.
                price = position.last_price
                unrealized += (price - position.entry_price) * quantity
                gross += abs(quantity) * price
        self._measured(symbol, unrealized, gross)

    def _measured(self, symbol: str, unrealized: float, gross: float) -> None:
        self._unrealized[symbol] = unrealized
        self._gross[symbol] = gross
        self.gross_exposure = sum(self._gross.values())

    def resync(self, limits: Mapping[str, StrategyRunConfig] | None = None) -> None:
        """Index every position of the book afresh, after it was rebuilt without the
        guardian (a restart replays the journal's fills into the book).

        ``limits`` are the strategies' last run configs, so restored positions keep
        their stop-losses before their strategy sends an order; limits learned from
        orders are kept. What the day's fills realized before this moment counts
        toward the day's loss (a restart does not wipe a losing day); the positions'
        unrealized P&L counts from their marks now, as the marks of midnight are not
        kept.
        """
        for strategy_id, run in (limits or {}).items():
            self._limits.setdefault(strategy_id, run)
        self._held.clear()
        self._unrealized.clear()
        self._gross.clear()
        self._realized = 0.0
        for strategy_id in self._book.strategy_ids():
            portfolio = self._book.get(strategy_id)
            for position in portfolio or ():
                self._held.setdefault(position.symbol, {})[strategy_id] = position
                self._realized += position.realized_pnl
        for symbol, held in self._held.items():
            self._remeasure(symbol, held)
        now = self._clock.now()
        self._day = _day_of(now)
        today = positions_pnl(self._book.positions(), utc_day(now)).realized_today
        self._day_start_equity = self.equity() - today
        log.info("risk_resynced", positions=sum(len(h) for h in self._held.values()))

    # ------------------------------------------------------------ daily loss

    def equity(self) -> float:
        """Realized plus unrealized P&L of every strategy since the daemon started."""
        return self._realized + sum(self._unrealized.values())

    def daily_pnl(self) -> float:
        self._roll_day(self._clock.now())
        return self.equity() - self._day_start_equity

    def _roll_day(self, now: float) -> None:
        day = int(now // DAY_SECONDS)  # _day_of, inlined: asked at every price and fill
        if day != self._day:
            self._day = day
            self._day_start_equity = self.equity()

    def _check_daily_loss(self, ts: float) -> RiskActions:
        # equity(), inlined: asked at every fill and every price the guardian watches.
        loss = self._day_start_equity - (self._realized + sum(self._unrealized.values()))
        limit = self.config.max_daily_loss
        if loss < limit * (1 - TOLERANCE) or self._daily_loss_day == self._day:
            return NO_ACTIONS
        self._daily_loss_day = self._day
        reason = f"daily loss {loss:.2f} reached max_daily_loss {limit:g}"
        key = (RiskLimit.MAX_DAILY_LOSS, None, None)
        self._breach(RiskLimit.MAX_DAILY_LOSS, limit, loss, reason, ts, key, True)
        block_all = self.config.daily_loss_blocks_all
        return RiskActions(halt=Halt(reason, block_all, HaltSource.DAILY_LOSS, ts))

    # ------------------------------------------------------------ status

    def limits_of(self, strategy_id: str) -> StrategyRunConfig | None:
        """The limits the strategy's last order came with."""
        return self._limits.get(strategy_id)

    def orders_last_minute(self, strategy_id: str) -> int:
        window = self._minute.get(strategy_id)
        return 0 if window is None else window.count(self._clock.now())

    def snapshot(
        self, configs: Mapping[str, StrategyRunConfig], book: PortfolioBook | None = None
    ) -> RiskSnapshot:
        """Limits and usage; ``configs`` are the running strategies' own limits;
        ``book``: the positions to report (the committed ones a client is shown;
        the guardian's own by default).

        Every other strategy that has traded (a stopped one too) is listed with the
        limits of its last order, so that its realized P&L stays in every total.
        """
        now = self._clock.now()
        book = book if book is not None else self._book
        ids = list(configs)
        ids += [strategy_id for strategy_id in book.strategy_ids() if strategy_id not in configs]
        strategies = tuple(
            self._strategy_risk(strategy_id, configs.get(strategy_id), book) for strategy_id in ids
        )
        daily = self.daily_pnl()
        return RiskSnapshot(
            config=self.config,
            gross_exposure=self.gross_exposure if book is self._book else book.gross_exposure,
            orders_last_second=self._expire_second(now),
            daily_pnl=daily,
            day_start=float(self._day * DAY_SECONDS),
            strategies=strategies,
        )

    def _strategy_risk(
        self, strategy_id: str, config: StrategyRunConfig | None, book: PortfolioBook
    ) -> StrategyRisk:
        limits = config or self._limits.get(strategy_id)
        portfolio = book.get(strategy_id)
        positions = portfolio.open_positions() if portfolio is not None else []
        pct = limits.stop_loss_percentage if limits is not None else 0.0
        return StrategyRisk(
            strategy_id=strategy_id,
            limits=limits,
            exposure=portfolio.gross_exposure if portfolio is not None else 0.0,
            orders_last_minute=self.orders_last_minute(strategy_id),
            pnl=portfolio.pnl(utc_day(self._clock.now())) if portfolio is not None else NO_PNL,
            positions=tuple(
                PositionRisk(
                    symbol=p.symbol,
                    quantity=p.quantity,
                    entry_price=p.entry_price,
                    current_value=p.market_value,
                    stop_price=stop_price(p.quantity, p.entry_price, pct),
                )
                for p in positions
            ),
        )


def stop_price(quantity: float, entry_price: float, percentage: float) -> float | None:
    """The price at or beyond which a position's loss reaches ``percentage``; None if off."""
    if percentage <= 0.0 or quantity == 0.0 or entry_price <= 0.0:
        return None
    if quantity > 0.0:
        return entry_price * (1.0 - percentage)
    return entry_price * (1.0 + percentage)


def _stop_reached(quantity: float, entry_price: float, percentage: float, price: float) -> bool:
    """Long: price <= entry * (1 - pct); short: price >= entry * (1 + pct)."""
    if quantity > 0.0:
        return price <= entry_price * (1.0 - percentage) * (1.0 + TOLERANCE)
    return price >= entry_price * (1.0 + percentage) * (1.0 - TOLERANCE)


def _day_of(ts: float) -> int:
    return int(ts // DAY_SECONDS)
