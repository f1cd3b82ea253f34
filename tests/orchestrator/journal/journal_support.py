"""Events as the daemon publishes them, for the journal tests: fills go through a
real PortfolioBook so every TradeExecuted carries the PositionChange it made."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.journal.store import GroupRows, Journal, Record, StrategyConfigured
from orchestrator.model.events import (
    OrderSubmitted,
    SignalEmitted,
    StrategyStatus,
    StrategyStatusChanged,
    TradeExecuted,
)
from orchestrator.model.orders import Fill, Order, OrderPurpose, Side, Signal, TradeStatus
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.portfolio import PortfolioBook

T0 = 1_700_000_000.0
DEADLINE = 10.0


class BlockingJournal(Journal):
    """A journal whose commits wait until the test lets them go."""

    release: threading.Event
    writing: threading.Event

    @classmethod
    def opened(cls, path: Path, synchronous: str = "FULL") -> BlockingJournal:
        journal = cls.open(path, synchronous)
        assert isinstance(journal, BlockingJournal)
        journal.release, journal.writing = threading.Event(), threading.Event()
        return journal

    def write_rows(self, rows: GroupRows) -> list[int | None]:
        self.writing.set()
        if not self.release.wait(DEADLINE):
            raise AssertionError("the test never released the commit")
        return super().write_rows(rows)


@dataclass
class Trading:
    """A tiny execution path: ids, a clock and a book, producing bus events."""

    book: PortfolioBook = field(default_factory=PortfolioBook)
    now: float = T0
    _ids: dict[str, itertools.count[int]] = field(default_factory=dict)
    statuses: dict[str, StrategyStatus] = field(default_factory=dict)

    def new_id(self, prefix: str) -> str:
        counter = self._ids.setdefault(prefix, itertools.count(1))
        return f"{prefix}_{next(counter):06d}"

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now

    def status(
        self,
        strategy_id: str,
        status: StrategyStatus,
        config: StrategyRunConfig | None = None,
        reason: str | None = None,
    ) -> list[Record]:
        """A status change, preceded by the config record the writer would add."""
        previous = self.statuses.get(strategy_id, StrategyStatus.STOPPED)
        self.statuses[strategy_id] = status
        ts = self.tick()
        name = f"Strategy {strategy_id}"
        records: list[Record] = []
        if config is not None:
            records.append(StrategyConfigured(strategy_id, name, config, ts))
        symbols = config.symbols if config is not None else ()
        records.append(
            StrategyStatusChanged(strategy_id, name, status, previous, symbols, ts, reason=reason)
        )
        return records

    def signal(self, strategy_id: str, symbol: str, side: Side, price: float) -> SignalEmitted:
        return SignalEmitted(
            Signal(
                id=self.new_id("sig"),
                strategy_id=strategy_id,
                strategy_name=f"Strategy {strategy_id}",
                symbol=symbol,
                action=side,
                price=price,
                quantity=None,
                confidence=0.75,
                ts=self.tick(),
                metadata={"fast": 3, "note": "crossed", "levels": [1.5, 2.5]},
            )
        )

    def order(
        self,
        strategy_id: str,
        symbol: str,
        side: Side,
        quantity: float,
        purpose: OrderPurpose = OrderPurpose.SIGNAL,
        signal_id: str | None = None,
    ) -> OrderSubmitted:
        return OrderSubmitted(
            Order(
                id=self.new_id("order"),
                strategy_id=strategy_id,
                symbol=symbol,
                side=side,
                quantity=quantity,
                ts=self.tick(),
                purpose=purpose,
                signal_id=signal_id,
            )
        )

    def fill(self, order: OrderSubmitted, price: float, commission: float = 0.0) -> TradeExecuted:
        o = order.order
        fill = Fill(
            id=self.new_id("trade"),
            order_id=o.id,
            strategy_id=o.strategy_id,
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            price=price,
            commission=commission,
            ts=self.tick(),
            status=TradeStatus.FILLED,
        )
        return TradeExecuted(fill, self.book.apply_fill(fill))

    def reject(self, order: OrderSubmitted, reason: str) -> TradeExecuted:
        o = order.order
        fill = Fill(
            id=self.new_id("trade"),
            order_id=o.id,
            strategy_id=o.strategy_id,
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            price=0.0,
            commission=0.0,
            ts=self.tick(),
            status=TradeStatus.REJECTED,
            reason=reason,
        )
        return TradeExecuted(fill, None)

    def round_trip(
        self, strategy_id: str, symbol: str, side: Side, quantity: float, price: float
    ) -> list[Record]:
        """A signal, its order and the order's fill."""
        signal = self.signal(strategy_id, symbol, side, price)
        order = self.order(strategy_id, symbol, side, quantity, signal_id=signal.signal.id)
        return [signal, order, self.fill(order, price, commission=0.5)]


def run_config(*symbols: str, **overrides: object) -> StrategyRunConfig:
    return StrategyRunConfig.model_validate({"symbols": list(symbols), **overrides})
