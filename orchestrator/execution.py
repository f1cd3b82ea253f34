"""The execution service: every order passes the pre-trade checks, then the
paper broker; every fill updates the book and is published as a trade.

The execution service is RUNNING or STOPPED (the kill switch); each change is
announced as an ExecutionStatusChanged event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from orchestrator.broker import IdFactory, PaperBroker, PaperBrokerConfig
from orchestrator.bus import EventBus
from orchestrator.clock import Clock
from orchestrator.config import StrategyRunConfig
from orchestrator.events import (
    CommandOrigin,
    ExecutionStatus,
    ExecutionStatusChanged,
    OrderSubmitted,
    TradeExecuted,
)
from orchestrator.market import Tick
from orchestrator.orders import Fill, Order, TradeStatus
from orchestrator.portfolio import PortfolioBook

log = structlog.get_logger("orchestrator.execution")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pre-trade checks decided: the order to send (maybe reduced) or why not."""

    order: Order | None
    reason: str | None = None


class PreTradeCheck(Protocol):
    def check(self, order: Order, limits: StrategyRunConfig, halted: bool) -> Verdict: ...

    def on_fill(self, fill: Fill) -> None: ...


class ExecutionService:
    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        book: PortfolioBook,
        broker_config: PaperBrokerConfig,
        risk: PreTradeCheck,
        ids: IdFactory,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self.book = book
        self._risk = risk
        self._ids = ids
        self.broker = PaperBroker(broker_config, clock, self._on_fill, ids)
        self.status = ExecutionStatus.RUNNING
        self._pending: dict[tuple[str, str], float] = {}
        self._orders: dict[str, Order] = {}
        self._waiters: dict[str, asyncio.Future[Fill]] = {}

    def announce(self, reason: str | None = None, origin: CommandOrigin | None = None) -> None:
        event = ExecutionStatusChanged(self.status, self._clock.now(), reason, origin)
        self._bus.publish(event)

    def set_status(
        self, status: ExecutionStatus, reason: str | None, origin: CommandOrigin | None = None
    ) -> None:
        previous, self.status = self.status, status
        log.info("execution_status_changed", status=status, previous=previous, reason=reason)
        self.announce(reason, origin)

    def new_order_id(self) -> str:
        return self._ids("order")

    def submit(self, order: Order, limits: StrategyRunConfig) -> None:
        """Risk first; an order the checks refuse is published as a REJECTED trade."""
        verdict = self._risk.check(order, limits, self.status is ExecutionStatus.STOPPED)
        if verdict.order is None:
            self.reject(order, verdict.reason or "refused by the risk checks")
            return
        accepted = verdict.order
        key = (accepted.strategy_id, accepted.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + accepted.side.sign * accepted.quantity
        self._orders[accepted.id] = accepted
        self._bus.publish(OrderSubmitted(accepted))
        self.broker.submit(accepted)

    def reject(self, order: Order, reason: str) -> None:
        self._publish_fill(
            Fill(
                id=self._ids("trade"),
                order_id=order.id,
                strategy_id=order.strategy_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=0.0,
                commission=0.0,
                ts=self._clock.now(),
                status=TradeStatus.REJECTED,
                reason=reason,
            )
        )

    def projected_position(self, strategy_id: str, symbol: str) -> float:
        """Held quantity plus what pending orders will add when they fill."""
        held = self.book.portfolio(strategy_id).position(symbol)
        return held + self._pending.get((strategy_id, symbol), 0.0)

    def on_tick(self, tick: Tick) -> None:
        """Fill orders waiting for this symbol's next price, then mark positions."""
        self.broker.on_tick(tick)
        self.book.mark(tick.symbol, tick.price, tick.ts)

    async def run_expiry(self, interval: float = 0.5) -> None:
        """Reject orders that found no price in time, even when no tick ever comes."""
        while True:
            await asyncio.sleep(interval)
            self.broker.expire()

    async def wait_for(self, order_ids: Iterable[str]) -> list[Fill]:
        """Await the outcome (fill or rejection) of pending orders."""
        loop = asyncio.get_running_loop()
        futures = []
        for order_id in order_ids:
            if order_id in self._orders:
                future = self._waiters.setdefault(order_id, loop.create_future())
                futures.append(future)
        return list(await asyncio.gather(*futures))

    def _on_fill(self, fill: Fill) -> None:
        order = self._orders.pop(fill.order_id, None)
        if order is not None:
            key = (order.strategy_id, order.symbol)
            remaining = self._pending.get(key, 0.0) - order.side.sign * order.quantity
            if abs(remaining) < 1e-9:
                self._pending.pop(key, None)
            else:
                self._pending[key] = remaining
        self._publish_fill(fill)
        waiter = self._waiters.pop(fill.order_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(fill)

    def _publish_fill(self, fill: Fill) -> None:
        change = self.book.apply_fill(fill) if fill.status is TradeStatus.FILLED else None
        self._risk.on_fill(fill)
        self._bus.publish(TradeExecuted(fill, change))
