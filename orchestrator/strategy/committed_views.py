"""The strategies as the committed events tell them: what a client is shown.

The core changes its state at once (a fill moves the position the moment the
broker fills), but a client hears of the change only once the journal has
committed its event. A snapshot or a status reply read from the core's state
could therefore show a position no client has been told of, which a crash then
takes back, and a client that applies the trade event when it arrives would
count it twice.

:class:`CommittedViews` folds the committed events, in the order the journal
delivers them and in the same call that hands them to the servers, so at any
moment it is the state after exactly the events each server has broadcast: the
state at the server's stream position. Snapshots and status replies are built
from it; everything after that position reaches the client as events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from orchestrator.model.clock import Clock
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    FeedState,
    FeedStatusChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderPartiallyFilled,
    OrderReplaced,
    OrderTriggered,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
    VenueState,
)
from orchestrator.model.orders import FILLED, Order
from orchestrator.model.records import record
from orchestrator.strategy.registry import StrategyRegistry, StrategyView, position_views
from orchestrator.trading.portfolio import NO_PNL, Account, PortfolioBook, account, utc_day

Price = Callable[[str], float | None]
"""The last price of a symbol (a mark, not state: quotes are not journaled)."""


@record
class _Status:
    status: StrategyStatus
    symbols: tuple[str, ...]
    error: str | None
    params: Mapping[str, Any] | None = None
    """The params of the committed run config; None: the catalog's (the registry's view)."""


class CommittedViews:
    """``registry`` gives what no event changes (names, configs, catalog order);
    ``price`` marks the positions; ``clock`` says which UTC day "realized today" is;
    ``initial_cash`` is the account's starting cash. :attr:`book` holds the committed
    fills only (rebuilt from the journal at a restart, then fed by the committed
    events)."""

    def __init__(
        self,
        registry: StrategyRegistry,
        price: Price,
        execution: ExecutionStatus,
        reason: str | None = None,
        *,
        clock: Clock,
        initial_cash: float,
    ) -> None:
        self._registry = registry
        self._price = price
        self._clock = clock
        self._initial_cash = initial_cash
        self._statuses: dict[str, _Status] = {}
        self.book = PortfolioBook()
        self.execution = execution
        self.execution_reason = reason
        self.execution_venues: tuple[VenueState, ...] = ()
        self.feed: FeedState | None = None
        """The feed's condition, from a feed that reports on itself (ccxt); else None."""
        self._orders: dict[str, Order] = {}
        """The resting orders as their committed lifecycle events left them, by id."""
        self._filled: dict[str, float] = {}
        """What the committed parts of a resting order filled so far (partial fills)."""

    def seed(self, views: Iterable[StrategyView]) -> None:
        """Take the statuses as they are: restored from the journal, so committed.
        (The restored positions go into :meth:`marked_book` by a rebuild from the
        journal, as the core's own book.)"""
        for view in views:
            self._statuses[view.id] = _Status(
                view.status, view.symbols, view.error, view.config.params
            )

    def seed_orders(
        self, orders: Iterable[Order], filled: Mapping[str, float] | None = None
    ) -> None:
        """The resting orders restored from the journal: committed by definition;
        ``filled``: what their parts filled before (partial fills), by id."""
        self._orders.update((order.id, order) for order in orders)
        if filled:
            self._filled.update((oid, q) for oid, q in filled.items() if oid in self._orders)

    def apply(self, event: Event) -> None:
        """Fold one committed event."""
        if isinstance(event, OrderAccepted | OrderReplaced):
            self._orders[event.order.id] = event.order
        elif isinstance(event, OrderPartiallyFilled):
            order_id = event.order.id
            self._orders[order_id] = event.order
            self._filled[order_id] = self._filled.get(order_id, 0.0) + event.filled_quantity
        elif isinstance(event, OrderTriggered | OrderCancelled | OrderExpired):
            self._orders.pop(event.order.id, None)
            self._filled.pop(event.order.id, None)
        elif isinstance(event, TradeExecuted):
            if event.fill.status is FILLED:
                self.book.apply_fill(event.fill)
        elif isinstance(event, StrategyStatusChanged):
            error = event.reason if event.status is StrategyStatus.ERROR else None
            params = event.config.params if event.config is not None else None
            self._statuses[event.strategy_id] = _Status(event.status, event.symbols, error, params)
        elif isinstance(event, ExecutionStatusChanged):
            self.execution, self.execution_reason = event.status, event.reason
            self.execution_venues = event.venues
        elif isinstance(event, FeedStatusChanged):
            self.feed = event.state

    def open_orders(self, strategy_id: str | None = None) -> list[Order]:
        """The committed resting orders (of one strategy), oldest first. A trailing stop
        shows the stop it was last announced with: its moves are not events."""
        orders = self._orders.values()
        if strategy_id is None:
            return list(orders)
        return [order for order in orders if order.strategy_id == strategy_id]

    def filled(self, order_id: str) -> float:
        """What the parts of a resting order filled so far; 0 for one without a part
        (its ``quantity`` is what rests)."""
        return self._filled.get(order_id, 0.0)

    def marked_book(self) -> PortfolioBook:
        """The committed positions, marked at the last prices: for views and the risk
        status (exposure, P&L)."""
        book = self.book
        for strategy_id in book.strategy_ids():
            for position in book.portfolio(strategy_id).open_positions():
                price = self._price(position.symbol)
                if price is not None:
                    position.mark(price)
        return book

    def today(self) -> int:
        """The UTC day of the daemon's clock: the period of "realized today"."""
        return utc_day(self._clock.now())

    def account(self) -> Account:
        """The account as committed: cash, equity, exposure and P&L of every strategy,
        stopped ones included (their realized P&L stays in it)."""
        return account(self.marked_book(), self._initial_cash, self.today())

    def catalog(self) -> list[StrategyView]:
        """Every strategy as committed, in catalog order."""
        book, day = self.marked_book(), self.today()
        return [self._committed(view, book, day) for view in self._registry.catalog()]

    def active(self) -> list[StrategyView]:
        """The committed views that are not STOPPED."""
        return [v for v in self.catalog() if v.status is not StrategyStatus.STOPPED]

    def _committed(self, view: StrategyView, book: PortfolioBook, day: int) -> StrategyView:
        positions = position_views(book, view.id)
        portfolio = book.get(view.id)
        pnl = portfolio.pnl(day) if portfolio is not None else NO_PNL
        status = self._statuses.get(view.id)
        if status is None:
            return replace(view, positions=positions, pnl=pnl)
        symbols = status.symbols or view.symbols
        return replace(
            view,
            status=status.status,
            symbols=symbols,
            error=status.error,
            params=status.params if status.params is not None else view.params,
            positions=positions,
            pnl=pnl,
        )
