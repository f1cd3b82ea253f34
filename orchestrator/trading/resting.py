"""Resting orders: limit, stop and stop-limit orders, and the exits a bracket arms,
waiting in the order pipeline for a price that triggers or fills them.

The rules (docs/orders.md), the same for live ticks and a backtest's bar walk:

- A limit fills at its limit or better: a buy at the first price at or below its
  limit, a sell at or above.
- A stop triggers at the first price at or through it (a buy at or above, a sell at
  or below) and fills at once as a market order; a stop-limit becomes a limit
  order there (and fills at once if that price satisfies the limit).
- The fill price: where the price moved *continuously* from the previous price
  to this one (between two prices of one backtest bar, which traded every price
  between its low and high), an order whose level lies between fills at its
  level; where it jumped (a live tick, a bar's open after the previous close)
  it fills at the price itself: a gap through a stop or a limit fills at the
  open of the gap.
- A bracket's stop and target cancel each other (OCO). When one bar reaches
  both, ``BracketRule`` decides which fills, whatever the order of the walk:
  the stop by default (pessimistic). Exits armed inside a bar (by an entry that
  filled after the bar's open) wait for the next bar: the order of the prices
  after the fill within that bar is unknown.
- A trailing stop follows the best price seen since it was armed.
- Time in force: DAY expires at the end of the UTC day it was placed on; IOC
  is cancelled unless the first price after its placement fills it.

This module decides; :class:`orchestrator.trading.pipeline.OrderPipeline` acts
(risk at trigger, the broker, settlement).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator.model.clock import DAY_SECONDS
from orchestrator.model.events import CommandOrigin
from orchestrator.model.orders import (
    BUY,
    PROTECTIVE,
    Order,
    OrderType,
    Side,
    TimeInForce,
)
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import BracketRule


@dataclass(slots=True)
class RestingOrder:
    """A resting order and its state; ``order`` is replaced by ``replace``."""

    order: Order
    limits: StrategyRunConfig
    stop: float | None
    """The stop still to reach: None once triggered (or for a limit)."""
    expires_at: float = math.inf
    best: float = math.nan
    """A trailing stop's best price so far."""
    dormant: bool = False
    """Armed inside a bar: waits for the next bar."""
    suppressed: bool = False
    """The bracket leg the bracket rule gave up in the current bar."""
    bar_filled: float = 0.0
    """What its parts filled in the current backtest bar (partial fills)."""
    native: bool = False
    """It rests on the venue (a live venue's limit or stop order): the venue fills it, prices
    here do not (docs/venues.md)."""
    cancelling: tuple[str, bool, CommandOrigin | None] | None = None
    """A native order whose cancellation was asked of the venue: (the reason, whether
    it expires, the command's origin); it is withdrawn when the venue confirms."""

    @property
    def at_market(self) -> bool:
        """The rest of a triggered stop (partial fills): it fills at the next price."""
        return self.stop is None and self.order.limit_price is None

    @property
    def protective(self) -> bool:
        return self.order.purpose in PROTECTIVE

    def level(self) -> tuple[float, int]:
        """The price that fires the order now and its direction: +1 fires at or above
        it (a buy stop, a sell limit), -1 at or below (a sell stop, a buy limit)."""
        buy = self.order.side is BUY
        if self.stop is not None:
            return self.stop, 1 if buy else -1
        limit = self.order.limit_price
        assert limit is not None  # a triggered stop-limit or a limit
        return limit, -1 if buy else 1


def resting(order: Order, limits: StrategyRunConfig, now: float) -> RestingOrder:
    """The resting state of a just-placed (or just-armed) ``order``."""
    expires = math.inf
    if order.time_in_force is TimeInForce.DAY:
        expires = float((int(now // DAY_SECONDS) + 1) * DAY_SECONDS)
    return RestingOrder(order, limits, order.stop_price, expires)


def fire_price(entry: RestingOrder, price: float, previous: float | None) -> float | None:
    """The price ``entry`` fills (or, a stop, triggers) at on ``price``, None if it does
    not; ``previous`` is the price before when the move from it was continuous."""
    if entry.at_market:
        return price
    level, direction = entry.level()
    if direction * (price - level) < 0:
        return None
    if previous is not None and direction * (previous - level) < 0:
        return level  # the walk passed through the level
    return price


def trail(entry: RestingOrder, price: float) -> None:
    """Move a trailing stop behind a new best price (never back)."""
    trailing = entry.order.trailing
    if trailing is None or entry.stop is None:
        return
    side = entry.order.side
    # A protective sell (of a long) trails the highest price, a buy the lowest.
    if math.isnan(entry.best) or side.sign * (entry.best - price) > 0:
        entry.best = price
        moved = trailing.stop_from(price, side)
        if side.sign * (entry.stop - moved) > 0:
            entry.stop = moved


def band(entries: Iterator[RestingOrder]) -> tuple[float, float]:
    """(low, high): a price at or below ``low`` or at or above ``high`` may fire or move
    one of ``entries``; between them none does anything."""
    low, high = -math.inf, math.inf
    for entry in entries:
        if entry.order.time_in_force is TimeInForce.IOC or entry.at_market:
            return math.inf, -math.inf  # the next price decides it, whatever it is
        level, direction = entry.level()
        if direction < 0:
            low = max(low, level)
        else:
            high = min(high, level)
        if (
            entry.order.trailing is not None
            and entry.stop is not None
            and not math.isnan(entry.best)
        ):
            if entry.order.side is BUY:
                low = max(low, entry.best)
            else:
                high = min(high, entry.best)
    return low, high


def is_stop_leg(entry: RestingOrder) -> bool:
    return entry.order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)


def reached(entry: RestingOrder, low: float, high: float) -> bool:
    """Whether a bar from ``low`` to ``high`` reaches the level of ``entry``."""
    level, direction = entry.level()
    return high >= level if direction > 0 else low <= level


class RestingBook:
    """The resting orders of a pipeline, by symbol and by id."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, dict[str, RestingOrder]] = {}
        """By symbol, then id; a symbol without resting orders has no key, so the book
        is empty exactly when this is (the backtest's replay loop reads it)."""
        self.by_id: dict[str, RestingOrder] = {}

    def add(self, entry: RestingOrder) -> None:
        order = entry.order
        self.by_symbol.setdefault(order.symbol, {})[order.id] = entry
        self.by_id[order.id] = entry

    def remove(self, entry: RestingOrder) -> None:
        order = entry.order
        del self.by_id[order.id]
        bucket = self.by_symbol[order.symbol]
        del bucket[order.id]
        if not bucket:
            del self.by_symbol[order.symbol]

    def of(self, strategy_id: str, symbol: str | None = None) -> list[RestingOrder]:
        """The resting orders of a strategy (in one symbol), oldest first."""
        entries = self.by_id.values() if symbol is None else self.by_symbol.get(symbol, {}).values()
        return [entry for entry in entries if entry.order.strategy_id == strategy_id]

    def entries_quantity(self, strategy_id: str, symbol: str, side: Side) -> float:
        """Signed quantity the strategy's resting entries on ``side`` would add if they
        all filled (what maxPositionValue counts; protective exits only reduce)."""
        total = 0.0
        for entry in self.by_symbol.get(symbol, {}).values():
            order = entry.order
            if order.strategy_id == strategy_id and order.side is side and not entry.protective:
                total += order.quantity
        return side.sign * total

    def siblings(self, order: Order) -> list[RestingOrder]:
        """The other exits of the bracket ``order`` belongs to."""
        parent = order.parent_id
        return [
            entry
            for entry in self.by_symbol.get(order.symbol, {}).values()
            if entry.order.parent_id == parent and entry.order.id != order.id
        ]

    def band(self, symbol: str) -> tuple[float, float]:
        """See :func:`band`: (-inf, inf) when nothing rests in ``symbol``."""
        bucket = self.by_symbol.get(symbol)
        return (-math.inf, math.inf) if not bucket else band(iter(bucket.values()))

    def enter_bar(self, symbol: str, low: float, high: float, rule: BracketRule) -> None:
        """A new bar of ``symbol``: wake exits armed in the last one; of a bracket whose
        both exits this bar reaches, give up the one ``rule`` does not fill."""
        bucket = self.by_symbol.get(symbol)
        if not bucket:
            return
        brackets: dict[str, list[RestingOrder]] = {}
        for entry in bucket.values():
            entry.dormant = entry.suppressed = False
            entry.bar_filled = 0.0
            parent = entry.order.parent_id
            if parent is not None:
                brackets.setdefault(parent, []).append(entry)
        for legs in brackets.values():
            apply_bracket_rule(legs, low, high, rule)


def apply_bracket_rule(
    legs: list[RestingOrder], low: float, high: float, rule: BracketRule
) -> None:
    """Suppress, for this bar, the leg of a bracket ``rule`` gives up when the bar
    from ``low`` to ``high`` reaches both its stop and its target."""
    if rule is BracketRule.WALK or len(legs) != 2 or any(leg.at_market for leg in legs):
        return
    stop, target = legs if is_stop_leg(legs[0]) else legs[::-1]
    if is_stop_leg(target) or not (reached(stop, low, high) and reached(target, low, high)):
        return
    (target if rule is BracketRule.STOP_FIRST else stop).suppressed = True
