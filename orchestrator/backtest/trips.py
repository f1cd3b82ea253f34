"""Round trips: a backtest's trades, from flat (or a reversal) back to flat, fill by fill.

:class:`TripTracker` follows one symbol's position through the book's
:class:`~orchestrator.trading.portfolio.PositionChange` of each fill and closes a
:class:`RoundTrip` when the position goes flat or reverses. Both backtest engines
(one symbol, :mod:`orchestrator.backtest.engine`; several on one account,
:mod:`orchestrator.backtest.multi_symbol`) keep one per symbol.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import NamedTuple

from orchestrator.model.orders import SIGNAL
from orchestrator.trading.portfolio import Position, PositionChange

END_OF_DATA = "end_of_data"
SIGNAL_EXIT = SIGNAL.value
"""The exit reason of a trade closed by a signal (``SIGNAL.value``, read once: an
enum's ``value`` is a property, looked up at every closing fill otherwise)."""
"""The exit reason of the trade still open after the last bar (marked at its close)."""


class RoundTrip(NamedTuple):
    """One trade from flat (or a reversal) back to flat (or the next reversal)."""

    symbol: str
    direction: int
    """+1 long, -1 short."""
    quantity: float
    """The largest quantity held during the trade."""
    entry_ts: float
    entry_price: float
    """Average entry price of the quantity held when it closed."""
    exit_ts: float
    exit_price: float
    """Price of the fill that closed it; of a trade closed by several fills (a position
    reduced in steps, an exit filled in parts), their average by quantity."""
    pnl: float
    """Net of every commission of the trade (a reversal's is split by quantity)."""
    commission: float = 0.0
    """Commissions of the trade's fills (a reversal's split by quantity)."""
    exit_reason: str = SIGNAL.value
    """Why the closing order was sent: an ``OrderPurpose`` value ("signal",
    "stop_loss", ...), or END_OF_DATA for the trade still open after the last bar."""


@dataclass(slots=True)
class _OpenTrip:
    symbol: str
    direction: int
    entry_ts: float
    quantity: float = 0.0
    pnl: float = 0.0
    commission: float = 0.0
    reduced: float = 0.0
    """The quantity fills closed before the one that closes the trade..."""
    reduced_value: float = 0.0
    """...and its value at their prices."""

    def reduce(self, quantity: float, price: float) -> None:
        self.reduced += quantity
        self.reduced_value += quantity * price

    def exit_price(self, quantity: float, price: float) -> float:
        """The average price of the trade's closing fills, the last ``quantity`` at
        ``price``; exactly ``price`` when that fill alone closed it."""
        if self.reduced == 0.0:
            return price
        return (self.reduced_value + quantity * price) / (self.reduced + quantity)

    def close(self, ts: float, price: float, entry_price: float, reason: str) -> RoundTrip:
        return RoundTrip(
            self.symbol,
            self.direction,
            self.quantity,
            self.entry_ts,
            entry_price,
            ts,
            price,
            self.pnl,
            self.commission,
            reason,
        )


class TripTracker:
    """The round trips of one symbol: ``trades`` closed, in order, and the one open."""

    __slots__ = ("_exit_reasons", "_trip", "trades")

    def __init__(self, exit_reasons: MutableMapping[str, str]) -> None:
        self.trades: list[RoundTrip] = []
        self._trip: _OpenTrip | None = None
        self._exit_reasons = exit_reasons
        """Why orders that are no signal were sent (stop-loss exits...), by order id: a
        closing fill's order found here gives its trade's exit reason (and leaves)."""

    def track(self, change: PositionChange) -> None:
        """Count one fill of the symbol."""
        fill = change.fill
        closed, opened = change.closed_quantity, change.opened_quantity
        trip, opening_commission = self._trip, fill.commission
        if closed > 0.0:
            # A reversal's commission is split between its two trades by quantity.
            closed_commission = opening_commission * closed / (closed + opened)
            opening_commission -= closed_commission
            if trip is not None:
                trip.pnl += change.closed_pnl - closed_commission
                trip.commission += closed_commission
                if opened > 0.0 or change.quantity_after == 0.0:
                    reason = self._exit_reasons.pop(fill.order_id, SIGNAL_EXIT)
                    price = trip.exit_price(closed, fill.price)
                    trade = trip.close(fill.ts, price, change.entry_price_before, reason)
                    self.trades.append(trade)
                    self._trip = trip = None
                else:
                    trip.reduce(closed, fill.price)
        if opened > 0.0:
            if trip is None:
                trip = self._trip = _OpenTrip(fill.symbol, fill.side.sign, fill.ts)
            trip.pnl -= opening_commission
            trip.commission += opening_commission
            held = abs(change.quantity_after)
            if held > trip.quantity:
                trip.quantity = held

    def open_trade(self, position: Position | None, close: float, end: float) -> RoundTrip | None:
        """The trade still open, marked at ``close`` (its P&L net of its commissions so
        far) and ended at ``end`` with reason END_OF_DATA; None when flat."""
        trip = self._trip
        if trip is None or position is None or position.quantity == 0.0:
            return None
        pnl = trip.pnl + position.quantity * (close - position.entry_price)
        return trip.close(end, close, position.entry_price, END_OF_DATA)._replace(pnl=pnl)


__all__ = ["END_OF_DATA", "RoundTrip", "TripTracker"]
