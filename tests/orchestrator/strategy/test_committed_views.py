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
from orchestrator.trading.portfolio import Pnl, PortfolioBook

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
    views = CommittedViews(
        catalog_registry(),
        prices.get,
        ExecutionStatus.RUNNING,
        clock=ManualClock(T0),
        initial_cash=100_000.0,
    )
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


MIDNIGHT = (T0 // 86_400 + 1) * 86_400
"""The first 00:00 UTC after T0 (T0 is 22:13:20 UTC)."""


def test_pnl_periods_cross_midnight_and_survive_a_stop() -> None:
    clock, prices = ManualClock(T0), {"AAPL": 100.0}
    views = CommittedViews(
        catalog_registry(), prices.get, ExecutionStatus.RUNNING, clock=clock, initial_cash=10_000.0
    )
    book = PortfolioBook()

    def trade(number: int, side: Side, quantity: float, price: float, ts: float) -> None:
        done = Fill(
            f"t{number}",
            f"o{number}",
            "s1",
            "AAPL",
            side,
            quantity,
            price,
            1.0,
            ts,
            TradeStatus.FILLED,
        )
        views.apply(TradeExecuted(done, book.apply_fill(done)))

    views.apply(
        StrategyStatusChanged(
            "s1", "One", StrategyStatus.ACTIVE, StrategyStatus.STOPPED, ("AAPL",), T0
        )
    )
    trade(1, Side.BUY, 10, 100.0, T0)  # commission 1
    trade(2, Side.SELL, 10, 103.0, T0 + 60)  # +30, commission 1
    [shown] = views.catalog()
    assert shown.pnl == Pnl(realized_today=28.0, realized_since_start=28.0, unrealized=0.0)

    clock.set(MIDNIGHT + 10)  # a new UTC day: nothing realized yet today
    trade(3, Side.BUY, 10, 100.0, MIDNIGHT + 5)
    prices["AAPL"] = 95.0
    [shown] = views.catalog()
    assert shown.pnl == Pnl(realized_today=-1.0, realized_since_start=27.0, unrealized=-50.0)
    account = views.account()
    # Cash: 10,000 + 27 realized - 1,000 paid for the open 10 @ 100; equity marks them at 95.
    assert (account.cash, account.equity, account.exposure) == (9_027.0, 9_977.0, 950.0)
    assert account.pnl == shown.pnl

    # Stopped, its position closed: the realized P&L stays, in the view and the account.
    trade(4, Side.SELL, 10, 95.0, MIDNIGHT + 20)
    views.apply(
        StrategyStatusChanged(
            "s1", "One", StrategyStatus.STOPPED, StrategyStatus.ACTIVE, ("AAPL",), MIDNIGHT + 21
        )
    )
    [shown] = views.catalog()
    assert shown.status is StrategyStatus.STOPPED
    assert shown.pnl == Pnl(realized_today=-52.0, realized_since_start=-24.0, unrealized=0.0)
    assert views.account().equity == 10_000.0 - 24.0 == views.account().cash
