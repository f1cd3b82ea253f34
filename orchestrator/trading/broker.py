"""The broker port: where accepted orders go and where their fills come from.

Every method returns the fills and rejections it produced, settled on the
broker's side before they are returned: the caller books them and acts on them
(stop-loss exits, the kill switch) after the broker's call is over, so a fill
never re-enters the broker from inside ``on_tick``. The paper broker
(:class:`orchestrator.trading.paper_broker.PaperBroker`) and the backtest's
replay broker implement it; a live venue is one more implementation, injected
into the execution service by the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order

NO_FILLS: tuple[Fill, ...] = ()
"""What a call that settled nothing returns: one shared empty tuple, no allocation."""


class Broker(Protocol):
    @property
    def pending_count(self) -> int:
        """Orders accepted and not yet filled or rejected."""
        ...

    def pending_orders(self) -> list[Order]:
        """The pending orders, oldest first."""
        ...

    def submit(self, order: Order) -> Sequence[Fill]:
        """Take ``order``; returns what became of it at once (a rejection, or a fill
        on a venue that fills on submission), nothing while it waits for a price."""
        ...

    def execute(self, order: Order, price: float, ts: float) -> Sequence[Fill]:
        """Fill ``order`` now against market price ``price``: a resting order the order
        pipeline triggered (docs/orders.md). A limit never fills beyond its limit."""
        ...

    def on_tick(self, tick: Tick) -> Sequence[Fill]:
        """A price of ``tick.symbol``: the fills (and late rejections) it brought."""
        ...

    def expire(self) -> Sequence[Fill]:
        """The rejections of orders that waited too long for a price."""
        ...

    def cancel_all(self, reason: str) -> Sequence[Fill]:
        """Withdraw every pending order; returns their rejections with ``reason``."""
        ...

    def cancel_strategy(self, strategy_id: str, reason: str) -> Sequence[Fill]:
        """Withdraw the pending orders of one strategy; returns their rejections."""
        ...


VENUE_EXPIRED = "expired on the venue"
"""How a :class:`RestingVenue` begins the reason of a resting order its venue expired
(an IOC's unfilled rest): the pipeline announces it as expired, not cancelled."""


@runtime_checkable
class RestingVenue(Protocol):
    """A broker that can keep some resting orders itself (a live venue's native limit,
    stop-limit and stop orders) instead of the pipeline (docs/venues.md). The pipeline still lists,
    cancels and replaces them; the broker reports what the venue did with them from
    ``on_tick``/``expire``, as fills of them: a part (``remaining`` > 0), the last
    fill (``remaining`` 0), or a REJECTED fill when the venue cancelled or expired it
    (what is left: after a cancel the pipeline asked for, or the venue's own)."""

    def place_resting(self, order: Order) -> bool:
        """Take ``order``, just accepted to rest, to the venue; False when the venue
        does not keep such an order (it rests in the pipeline then)."""
        ...

    def holds_resting(self, order_id: str) -> bool:
        """Whether the venue keeps the resting order ``order_id`` (after a restart:
        reconciliation found it there)."""
        ...

    def cancel_resting(self, order: Order, forget: bool = False) -> None:
        """Ask the venue to cancel ``order``; its answer comes as a fill of it (only a
        fill when ``forget``: the pipeline has settled the order already)."""
        ...

    def replace_resting(self, old: Order, new: Order) -> None:
        """``old`` becomes ``new`` (same id): cancelled on the venue and placed again
        with the new terms; what ``old`` filled meanwhile comes as a part of it."""
        ...
