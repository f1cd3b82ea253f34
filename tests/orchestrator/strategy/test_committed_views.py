"""CommittedViews folds committed events into what a client is shown."""

from __future__ import annotations

from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import (
    ExecutionStatus,
    ExecutionStatusChanged,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
)
from orchestrator.model.orders import Fill, Side, TradeStatus
from orchestrator.strategy.committed_views import CommittedViews
from orchestrator.strategy.config import CatalogEntry
from orchestrator.strategy.registry import PositionView, StrategyRegistry
from orchestrator.trading.portfolio import PortfolioBook

T0 = 1_700_000_000.0


class NoEngine:
    """A registry's engine that runs nothing (these views need only the catalog)."""

    def positions(self, strategy_id: str) -> list[PositionView]:
        return []


def catalog_registry() -> StrategyRegistry:
    entry = CatalogEntry.model_validate(
        {"id": "s1", "name": "One", "kind": "sma_crossover", "defaults": {"symbols": ["AAPL"]}}
    )
    return StrategyRegistry((entry,), NoEngine(), EventBus(), ManualClock(T0))  # type: ignore[arg-type]


def fill(number: int, side: Side, quantity: float, price: float) -> Fill:
    return Fill(
        f"trade_{number}",
        f"order_{number}",
        "s1",
        "AAPL",
        side,
        quantity,
        price,
        0.0,
        T0 + number,
        TradeStatus.FILLED,
    )


def test_the_views_follow_the_committed_events_only() -> None:
    book, prices = PortfolioBook(), {"AAPL": 110.0}
    views = CommittedViews(catalog_registry(), prices.get, ExecutionStatus.RUNNING)
    assert views.active() == []
    started = StrategyStatusChanged(
        "s1", "One", StrategyStatus.ACTIVE, StrategyStatus.STOPPED, ("AAPL",), T0
    )
    views.apply(started)
    buy = fill(1, Side.BUY, 10, 100.0)
    views.apply(TradeExecuted(buy, book.apply_fill(buy)))
    [shown] = views.active()
    assert shown.status is StrategyStatus.ACTIVE
    [position] = shown.positions
    assert (position.quantity, position.entry_price, position.current_value) == (10, 100.0, 1100)
    # A reversal: the rest opens at the fill's price; realized P&L is carried.
    sell = fill(2, Side.SELL, 15, 120.0)
    views.apply(TradeExecuted(sell, book.apply_fill(sell)))
    [position] = views.active()[0].positions
    assert (position.quantity, position.entry_price, position.realized_pnl) == (-5, 120.0, 200.0)
    close = fill(3, Side.BUY, 5, 110.0)
    views.apply(TradeExecuted(close, book.apply_fill(close)))
    assert views.active()[0].positions == ()
    views.apply(ExecutionStatusChanged(ExecutionStatus.STOPPED, T0 + 4, "halted"))
    assert (views.execution, views.execution_reason) == (ExecutionStatus.STOPPED, "halted")
