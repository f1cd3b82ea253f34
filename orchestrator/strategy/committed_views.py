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

from collections.abc import Callable, Iterable
from dataclasses import replace

from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
)
from orchestrator.model.records import record
from orchestrator.strategy.registry import PositionView, StrategyRegistry, StrategyView

Price = Callable[[str], float | None]
"""The last price of a symbol (a mark, not state: quotes are not journaled)."""


@record
class _Held:
    quantity: float
    entry_price: float
    realized_pnl: float


@record
class _Status:
    status: StrategyStatus
    symbols: tuple[str, ...]
    error: str | None


class CommittedViews:
    """``registry`` gives what no event changes (names, configs, catalog order);
    ``price`` values the positions."""

    def __init__(
        self,
        registry: StrategyRegistry,
        price: Price,
        execution: ExecutionStatus,
        reason: str | None = None,
    ) -> None:
        self._registry = registry
        self._price = price
        self._statuses: dict[str, _Status] = {}
        self._held: dict[str, dict[str, _Held]] = {}
        self.execution = execution
        self.execution_reason = reason

    def seed(self, views: Iterable[StrategyView]) -> None:
        """Start from state that is committed already (restored from the journal)."""
        for view in views:
            self._statuses[view.id] = _Status(view.status, view.symbols, view.error)
            self._held[view.id] = {
                p.symbol: _Held(p.quantity, p.entry_price, p.realized_pnl) for p in view.positions
            }

    def apply(self, event: Event) -> None:
        """Fold one committed event."""
        if isinstance(event, TradeExecuted):
            self._apply_trade(event)
        elif isinstance(event, StrategyStatusChanged):
            error = event.reason if event.status is StrategyStatus.ERROR else None
            self._statuses[event.strategy_id] = _Status(event.status, event.symbols, error)
        elif isinstance(event, ExecutionStatusChanged):
            self.execution, self.execution_reason = event.status, event.reason

    def _apply_trade(self, event: TradeExecuted) -> None:
        change = event.change
        if change is None or not change.applied:
            return
        positions = self._held.setdefault(change.fill.strategy_id, {})
        before = positions.get(change.symbol)
        realized = (before.realized_pnl if before is not None else 0.0) + change.realized_pnl
        positions[change.symbol] = _Held(change.quantity_after, change.entry_price_after, realized)

    def catalog(self) -> list[StrategyView]:
        """Every strategy as committed, in catalog order."""
        return [self._committed(view) for view in self._registry.catalog()]

    def active(self) -> list[StrategyView]:
        """The committed views that are not STOPPED."""
        return [v for v in self.catalog() if v.status is not StrategyStatus.STOPPED]

    def _committed(self, view: StrategyView) -> StrategyView:
        status = self._statuses.get(view.id)
        held = self._held.get(view.id, {})
        price = self._price
        positions = tuple(
            _position(symbol, h, price(symbol)) for symbol, h in held.items() if h.quantity != 0.0
        )
        if status is None:
            return replace(view, positions=positions)
        symbols = status.symbols or view.symbols
        return replace(
            view, status=status.status, symbols=symbols, error=status.error, positions=positions
        )


def _position(symbol: str, held: _Held, price: float | None) -> PositionView:
    mark = held.entry_price if price is None else price
    return PositionView(
        symbol=symbol,
        quantity=held.quantity,
        entry_price=held.entry_price,
        current_value=held.quantity * mark,
        realized_pnl=held.realized_pnl,
        unrealized_pnl=held.quantity * (mark - held.entry_price),
    )
