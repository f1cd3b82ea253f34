"""The broker of a backtest: the paper broker's prices on a replay of bars.

Every order waits for the next price of its symbol and fills there, priced by
:meth:`PaperBroker.fill_at` (the slippage and commission of live trading; a
broken price rejects the order). A replay has no wall clock, so no order times
out (the next bar's open fills it, however far away that is) and none is turned
away for how many wait. Every fill stays inside the current bar's high-low range
(``bar_low``, ``bar_high``, set by the engine): slippage moves a fill against the
order, never beyond a price the bar traded.

With partial fills on (``volume_fraction``: the spec's ``partial_fills`` and
``max_volume_fraction``), a bar fills at most ``volume_fraction`` of its volume of
each order (``bar_room``); the rest waits for the next bars' opens, each part priced
by :meth:`PaperBroker.fill_part`, the live broker's part rule. A bar of volume 0
(unknown) fills an order whole, as a live tick of size 0 does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from orchestrator.model.clock import Clock
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Fill, Order, rejection
from orchestrator.trading.broker import NO_FILLS
from orchestrator.trading.paper_broker import PaperBroker


class ReplayBroker:
    """A :class:`orchestrator.trading.broker.Broker` for one backtest."""

    def __init__(
        self,
        pricing: PaperBroker,
        clock: Clock,
        ids: IdFactory,
        volume_fraction: float | None = None,
    ) -> None:
        self._pricing = pricing
        self._clock = clock
        self._ids = ids
        self._volume_fraction = volume_fraction
        """Partial fills: the share of a bar's volume one order may fill; None: off."""
        self.bar_low = 0.0
        self.bar_high = math.inf
        """The range of the bar being filled in; no fill lands outside it."""
        self.bar_room = 0.0
        """Partial fills: the most of one order the bar fills (0: unknown, whole)."""
        self._bar: Bar | None = None
        self._filled_in_bar: dict[str, float] = {}
        """Partial fills: what each order's parts filled in the current bar."""
        self.waiting: list[Order] = []
        """The pending orders, oldest first. One list for the broker's life: the
        replay loop holds it and asks it, bar after bar, whether anything waits."""

    @property
    def pending_count(self) -> int:
        return len(self.waiting)

    def pending_orders(self) -> list[Order]:
        return list(self.waiting)

    def submit(self, order: Order) -> Sequence[Fill]:
        self.waiting.append(order)
        return NO_FILLS

    def execute(self, order: Order, price: float, ts: float) -> Sequence[Fill]:
        return (self._pricing.fill_at(order, price, ts, self.bar_low, self.bar_high),)

    @property
    def partial_fills(self) -> bool:
        return self._volume_fraction is not None

    def enter_bar(self, bar: Bar) -> None:
        """The prices that come next are ``bar``'s: fills stay in its range and, with
        partial fills, its volume bounds each order's parts (again for the same bar:
        nothing changes, its open fills and its walk are one bar)."""
        self.bar_low, self.bar_high = bar.low, bar.high
        fraction = self._volume_fraction
        if fraction is None or bar is self._bar:
            return
        self._bar = bar
        self.bar_room = bar.volume * fraction if bar.volume > 0.0 else 0.0
        self._filled_in_bar.clear()

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        waiting = self.waiting
        if not waiting:
            return NO_FILLS
        if self._volume_fraction is not None and self.bar_room > 0.0:
            return self._fill_in_parts(tick)
        fill_at, symbol, price, ts = self._pricing.fill_at, tick.symbol, tick.price, tick.ts
        low, high = self.bar_low, self.bar_high
        if len(waiting) == 1 and waiting[0].symbol == symbol:
            # One order waiting, the usual case of a backtest: no lists to sort it into.
            fill = fill_at(waiting[0], price, ts, low, high)
            waiting.clear()  # in place: the replay loop holds this list
            return (fill,)
        fills: list[Fill] = []
        others: list[Order] = []
        # One pass, no comprehension frames: this runs for every order of a backtest.
        for order in waiting:
            if order.symbol == symbol:
                fills.append(fill_at(order, price, ts, low, high))
            else:
                others.append(order)
        waiting[:] = others  # in place: the replay loop holds this list
        return fills

    def _fill_in_parts(self, tick: Tick) -> list[Fill]:
        """Fill the waiting orders of ``tick.symbol``, each at most what the bar's room
        leaves it; a rest waits on in its place."""
        symbol, price, ts = tick.symbol, tick.price, tick.ts
        low, high, room = self.bar_low, self.bar_high, self.bar_room
        filled_in_bar = self._filled_in_bar
        fills: list[Fill] = []
        others: list[Order] = []
        for order in self.waiting:
            left = room - filled_in_bar.get(order.id, 0.0)
            if order.symbol != symbol or left <= 0.0:
                others.append(order)  # another symbol's, or this bar filled its share
            elif left >= order.quantity:
                fills.append(self._pricing.fill_at(order, price, ts, low, high))
            else:
                fill, rest = self._pricing.fill_part(order, left, price, ts, low, high)
                fills.append(fill)
                if rest is not None:
                    others.append(rest)
                    filled_in_bar[order.id] = room
        self.waiting[:] = others  # in place: the replay loop holds this list
        return fills

    def expire(self) -> Sequence[Fill]:
        return NO_FILLS

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return self._rejections(self._withdraw(lambda order: True), reason)

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        orders = self._withdraw(lambda order: order.strategy_id == strategy_id)
        return self._rejections(orders, reason)

    def _withdraw(self, chosen: Callable[[Order], bool]) -> list[Order]:
        waiting = self.waiting
        orders = [order for order in waiting if chosen(order)]
        if len(orders) == len(waiting):
            waiting.clear()  # in place: the replay loop holds this list
        else:
            waiting[:] = [order for order in waiting if not chosen(order)]
        return orders

    def _rejections(self, orders: list[Order], reason: str) -> list[Fill]:
        now = self._clock.now()
        return [rejection(order, self._ids("trade"), reason, now) for order in orders]
