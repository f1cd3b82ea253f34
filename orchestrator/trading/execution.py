"""The execution service: every order passes the risk guardian, then the paper
broker; every fill updates the book and is published as a trade.

The execution service is RUNNING or STOPPED. It is STOPPED while the kill
switch is engaged (by a command, by the daily loss limit or by config); every
change is announced as a KillSwitchChanged and an ExecutionStatusChanged event.
While STOPPED the guardian lets only reducing orders through, or none when the
switch blocks everything; then every order waiting at the broker is cancelled
too. In reduce-only mode orders already at the broker are left to fill, as a
trading system's "reducing" state gates new orders only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from orchestrator.bus import EventBus
from orchestrator.model.clock import Clock
from orchestrator.model.errors import InvalidTransition
from orchestrator.model.events import (
    CommandOrigin,
    ExecutionStatus,
    ExecutionStatusChanged,
    HaltSource,
    KillSwitchChanged,
    OrderSubmitted,
    TradeExecuted,
)
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order, TradeStatus, rejection
from orchestrator.risk.guardian import NO_ACTIONS, Halt, PreTradeCheck, RiskActions, stop_price
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

log = structlog.get_logger("orchestrator.trading.execution")


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
        self.halt: Halt | None = None
        """The kill switch while it is engaged; None while trading runs."""
        self._pending: dict[tuple[str, str], float] = {}
        self._orders: dict[str, tuple[Order, StrategyRunConfig]] = {}
        """Orders at the broker, with the limits they were sent with."""
        self._waiters: dict[str, asyncio.Future[Fill]] = {}

    @property
    def status(self) -> ExecutionStatus:
        return ExecutionStatus.RUNNING if self.halt is None else ExecutionStatus.STOPPED

    def announce(self, origin: CommandOrigin | None = None) -> None:
        reason = self.halt.reason if self.halt is not None else None
        self._bus.publish(ExecutionStatusChanged(self.status, self._clock.now(), reason, origin))

    def engage_kill_switch(self, halt: Halt, origin: CommandOrigin | None = None) -> None:
        """Halt trading. Engaging it again replaces the reason and the block-all flag."""
        was_running = self.halt is None
        self.halt = halt
        log.warning(
            "kill_switch_engaged", reason=halt.reason, block_all=halt.block_all, source=halt.source
        )
        if halt.block_all:
            self._cancel_pending(f"trading is halted ({halt.reason}): every order is blocked")
        self._bus.publish(
            KillSwitchChanged(True, halt.reason, halt.block_all, halt.source, halt.since, origin)
        )
        if was_running:
            self.announce()

    def restore_halt(self, halt: Halt) -> None:
        """The kill switch as the journal left it before a restart: engaged again without
        announcing it as a new engagement (start-up announces the status to everyone)."""
        self.halt = halt
        log.warning(
            "kill_switch_restored", reason=halt.reason, block_all=halt.block_all, source=halt.source
        )

    def release_kill_switch(
        self, reason: str | None = None, origin: CommandOrigin | None = None
    ) -> None:
        """Resume trading; raises InvalidTransition when it is not halted."""
        if self.halt is None:
            raise InvalidTransition("trading is not halted: there is nothing to resume")
        self.halt = None
        log.warning("kill_switch_released", reason=reason)
        now = self._clock.now()
        self._bus.publish(KillSwitchChanged(False, reason, False, HaltSource.COMMAND, now, origin))
        self.announce()

    def _cancel_pending(self, reason: str) -> None:
        orders = self.broker.pending_orders()
        for order in orders:
            self._risk.cancelled(order, reason)
        if orders:
            self.broker.cancel_all(reason)

    def new_order_id(self) -> str:
        return self._ids("order")

    def submit(self, order: Order, limits: StrategyRunConfig) -> bool:
        """Risk first; an order the checks refuse is published as a REJECTED trade.

        Returns whether the order (maybe reduced) went to the broker.
        """
        position = self.projected_position(order.strategy_id, order.symbol)
        verdict = self._risk.check(order, limits, position, self.halt)
        if verdict.order is None:
            self.reject(order, verdict.reason or "refused by the risk checks")
            return False
        accepted = verdict.order
        key = (accepted.strategy_id, accepted.symbol)
        self._pending[key] = self._pending.get(key, 0.0) + accepted.side.sign * accepted.quantity
        self._orders[accepted.id] = (accepted, limits)
        self._bus.publish(OrderSubmitted(accepted))
        self.broker.submit(accepted)
        return True

    def reject(self, order: Order, reason: str) -> None:
        self._publish_fill(rejection(order, self._ids("trade"), reason, self._clock.now()), None)

    def projected_position(self, strategy_id: str, symbol: str) -> float:
        """Held quantity plus what pending orders will add when they fill."""
        held = self.book.portfolio(strategy_id).position(symbol)
        return held + self._pending.get((strategy_id, symbol), 0.0)

    def on_tick(self, tick: Tick) -> None:
        """Fill orders waiting for this symbol's next price, mark positions, then let
        the guardian watch them (stop-losses, daily loss, limits the market broke)."""
        self.broker.on_tick(tick)
        self.book.mark(tick.symbol, tick.price, tick.ts)
        self._act(self._risk.on_price(tick, self.halt))

    def _act(self, actions: RiskActions) -> None:
        if actions is NO_ACTIONS:
            return
        if actions.halt is not None:
            self.engage_kill_switch(actions.halt)
        for order, limits in actions.exits:
            self.submit(order, limits)

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
        sent = self._orders.pop(fill.order_id, None)
        limits = None
        if sent is not None:
            order, limits = sent
            key = (order.strategy_id, order.symbol)
            remaining = self._pending.get(key, 0.0) - order.side.sign * order.quantity
            if abs(remaining) < 1e-9:
                self._pending.pop(key, None)
            else:
                self._pending[key] = remaining
        self._publish_fill(fill, limits)
        waiter = self._waiters.pop(fill.order_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(fill)

    def _publish_fill(self, fill: Fill, limits: StrategyRunConfig | None) -> None:
        change = self.book.apply_fill(fill) if fill.status is TradeStatus.FILLED else None
        actions = self._risk.on_fill(fill, change)
        self._bus.publish(TradeExecuted(fill, change, _stop_after(change, limits)))
        self._act(actions)


def _stop_after(change: PositionChange | None, limits: StrategyRunConfig | None) -> float | None:
    """The stop-loss price of the position a fill left, by the limits its order came with."""
    if change is None or limits is None:
        return None
    return stop_price(change.quantity_after, change.entry_price_after, limits.stop_loss_percentage)
