"""Which broker an order goes to: the paper broker, or the live venue its strategy was
started on (``realTrading: true, venue: NAME``). A :class:`BrokerRouter` is one more
:class:`~orchestrator.trading.broker.Broker`, so the pipeline, the guardian and the
journal stay as they are; it routes by the order's strategy.

A strategy keeps its route after it stops, so that the orders closing its positions
go where its positions are; starting it again routes it again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from orchestrator.model.events import VenueState
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order
from orchestrator.trading.broker import NO_FILLS, Broker


class LiveBroker(Broker, Protocol):
    """A broker on a venue: its connection comes and goes, and orders wait for it."""

    @property
    def state(self) -> VenueState:
        """Whether it takes orders now, and why not."""
        ...

    def trading_problem(self, symbols: Collection[str]) -> str | None:
        """Why ``symbols`` cannot trade there now (not reconciled with the journal yet,
        no such market), or None."""
        ...

    def place_resting(self, order: Order) -> bool: ...

    def holds_resting(self, order_id: str) -> bool: ...

    def cancel_resting(self, order: Order, forget: bool = False) -> None: ...

    def replace_resting(self, old: Order, new: Order) -> None: ...


class BrokerRouter:
    """The paper broker for paper strategies, each venue's broker for its live ones;
    a live strategy's limit orders rest on its venue (:class:`RestingVenue`)."""

    def __init__(self, paper: Broker) -> None:
        self.paper = paper
        self.venues: dict[str, LiveBroker] = {}
        self._routes: dict[str, LiveBroker] = {}
        """strategy id -> its venue's broker; a paper strategy has none."""
        self._all: list[Broker] = [paper]

    def add_venue(self, name: str, broker: LiveBroker) -> None:
        self.venues[name] = broker
        self._all.append(broker)

    def problem(self, venue: str | None, symbols: Collection[str]) -> str | None:
        """Why a strategy cannot trade ``symbols`` on ``venue`` now, or None."""
        if venue is None:
            return "realTrading needs a venue: send venue with one of the configured venues"
        broker = self.venues.get(venue)
        if broker is None:
            known = ", ".join(sorted(self.venues)) or "none is configured ([venues] in the config)"
            return f"no venue {venue!r}; the venues are {known}"
        state = broker.state
        if not state.connected:
            return f"venue {venue} is not connected ({state.reason}); no order is sent blind"
        return broker.trading_problem(symbols)

    def route(self, strategy_id: str, venue: str | None) -> None:
        """Send the strategy's orders to ``venue`` from now on (None: the paper broker)."""
        if venue is None:
            self._routes.pop(strategy_id, None)
        else:
            self._routes[strategy_id] = self.venues[venue]

    def venue_of(self, strategy_id: str) -> str | None:
        broker = self._routes.get(strategy_id)
        if broker is None:
            return None
        return next((name for name, b in self.venues.items() if b is broker), None)

    def states(self) -> tuple[VenueState, ...]:
        return tuple(broker.state for broker in self.venues.values())

    def _broker(self, order: Order) -> Broker:
        return self._routes.get(order.strategy_id, self.paper) if self._routes else self.paper

    # ------------------------------------------------------------ Broker

    @property
    def pending_count(self) -> int:
        return sum(broker.pending_count for broker in self._all)

    def pending_orders(self) -> list[Order]:
        return [order for broker in self._all for order in broker.pending_orders()]

    def submit(self, order: Order) -> Sequence[Fill]:
        return self._broker(order).submit(order)

    def execute(self, order: Order, price: float, ts: float) -> Sequence[Fill]:
        return self._broker(order).execute(order, price, ts)

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        if not self.venues:
            return self.paper.on_tick(tick)
        return self._gather([broker.on_tick(tick) for broker in self._all])

    def expire(self) -> Sequence[Fill]:
        return self._gather([broker.expire() for broker in self._all])

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        return self._gather([broker.cancel_all(reason) for broker in self._all])

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        return self._gather([b.cancel_strategy(strategy_id, reason) for b in self._all])

    # ------------------------------------------------------------ RestingVenue

    def place_resting(self, order: Order) -> bool:
        venue = self._routes.get(order.strategy_id)
        return venue is not None and venue.place_resting(order)

    def holds_resting(self, order_id: str) -> bool:
        return any(venue.holds_resting(order_id) for venue in self.venues.values())

    def cancel_resting(self, order: Order, forget: bool = False) -> None:
        for venue in self.venues.values():
            if venue.holds_resting(order.id):
                venue.cancel_resting(order, forget)

    def replace_resting(self, old: Order, new: Order) -> None:
        for venue in self.venues.values():
            if venue.holds_resting(old.id):
                venue.replace_resting(old, new)

    @staticmethod
    def _gather(results: list[Sequence[Fill]]) -> Sequence[Fill]:
        fills = [fill for result in results for fill in result]
        return fills or NO_FILLS
