"""The execution service: every order passes the risk guardian, then the broker;
every fill updates the book and is published as a trade.

The steps themselves are the order pipeline's
(:class:`orchestrator.trading.pipeline.OrderPipeline`), which the backtest runs
too; this service runs it live, with the broker the kernel injects, and
publishes what it does on the bus.

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
from collections.abc import Collection, Iterable, Mapping

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
    OrderLifecycle,
    OrderSubmitted,
    TradeExecuted,
)
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Tick
from orchestrator.model.orders import PROTECTIVE, Fill, Order, OrderPurpose, Side
from orchestrator.risk.guardian import Halt, PreTradeCheck, stop_price
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.broker import Broker
from orchestrator.trading.pipeline import OrderPipeline, log_flattened
from orchestrator.trading.portfolio import PortfolioBook, PositionChange
from orchestrator.trading.routing import BrokerRouter

log = structlog.get_logger("orchestrator.trading.execution")

CANCELLED_BY_HAND = "cancelled by a cancel_order command"


class ExecutionService:
    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        book: PortfolioBook,
        broker: Broker,
        risk: PreTradeCheck,
        ids: IdFactory,
        router: BrokerRouter | None = None,
        *,
        partial_fills: bool = False,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self.book = book
        self.broker = broker
        self._ids = ids
        self._pipeline = OrderPipeline(
            book, risk, broker, clock, ids, self, partial_fills=partial_fills
        )
        self._waiters: dict[str, asyncio.Future[Fill]] = {}
        self.router = router
        """Where each strategy's orders go when ``broker`` is a router (paper or a venue)."""
        self._exits: dict[str, OrderPurpose] = {}
        """The purpose of each exit at the broker (every order there is settled once),
        for its trade's event; an order absent from it is a strategy's signal."""

    @property
    def halt(self) -> Halt | None:
        """The kill switch while it is engaged; None while trading runs."""
        return self._pipeline.halt

    @property
    def status(self) -> ExecutionStatus:
        return ExecutionStatus.RUNNING if self.halt is None else ExecutionStatus.STOPPED

    def announce(self, origin: CommandOrigin | None = None) -> None:
        reason = self.halt.reason if self.halt is not None else None
        venues = self.router.states() if self.router is not None else ()
        event = ExecutionStatusChanged(self.status, self._clock.now(), reason, origin, venues)
        self._bus.publish(event)

    def venue_problem(self, venue: str | None, symbols: Collection[str]) -> str | None:
        """Why a strategy cannot trade ``symbols`` on ``venue`` now (realTrading), or None."""
        if self.router is None:
            return "no live venue is configured; send realTrading false to paper trade"
        return self.router.problem(venue, symbols)

    def route(self, strategy_id: str, venue: str | None) -> None:
        """The strategy's orders go to ``venue`` (None: the paper broker) from now on."""
        if self.router is not None:
            self.router.route(strategy_id, venue)

    def collect(self) -> None:
        """Settle what the brokers settled on their own (a venue's fills, polled or pushed):
        a live broker calls it, from a task of its own, never from inside a broker call."""
        self._pipeline.expire()

    def settle_recovered(self, fills: Iterable[Fill]) -> None:
        """Book and publish outcomes learnt outside a broker call: what a venue did with
        orders in flight while the daemon was down (reconciliation at start)."""
        self._pipeline.settle_all(fills)

    def engage_kill_switch(self, halt: Halt, origin: CommandOrigin | None = None) -> None:
        """Halt trading. Engaging it again replaces the reason and the block-all flag.

        Also what the pipeline calls when the guardian asks for the kill switch.
        """
        was_running = self.halt is None
        log.warning(
            "kill_switch_engaged", reason=halt.reason, block_all=halt.block_all, source=halt.source
        )
        self._pipeline.engage(halt)
        self._bus.publish(
            KillSwitchChanged(True, halt.reason, halt.block_all, halt.source, halt.since, origin)
        )
        if was_running:
            self.announce()

    def restore_halt(self, halt: Halt) -> None:
        """The kill switch as the journal left it before a restart: engaged again without
        announcing it as a new engagement (start-up announces the status to everyone)."""
        self._pipeline.halt = halt
        log.warning(
            "kill_switch_restored", reason=halt.reason, block_all=halt.block_all, source=halt.source
        )

    def flatten(self, limits: Mapping[str, StrategyRunConfig], reason: str) -> list[Order]:
        """Close every open position with a market order (``halt_trading``'s flatten,
        with block-all): on the venue a live strategy trades on, on paper else. Each is
        sent past the risk checks (block-all refuses every order): ``limits`` are the
        run configs of the strategies, for their trades' stop-loss figures."""
        fallback = next(iter(limits.values()), None)
        orders = self._pipeline.flatten(lambda sid: limits.get(sid) or fallback)
        for order in orders:
            log_flattened(order, reason)
        return orders

    def release_kill_switch(
        self, reason: str | None = None, origin: CommandOrigin | None = None
    ) -> None:
        """Resume trading; raises InvalidTransition when it is not halted."""
        if self.halt is None:
            raise InvalidTransition("trading is not halted: there is nothing to resume")
        self._pipeline.halt = None
        log.warning("kill_switch_released", reason=reason)
        now = self._clock.now()
        self._bus.publish(KillSwitchChanged(False, reason, False, HaltSource.COMMAND, now, origin))
        self.announce()

    def new_order_id(self) -> str:
        return self._ids("order")

    def submit(self, order: Order, limits: StrategyRunConfig) -> bool:
        """Risk first; an order the checks refuse is published as a REJECTED trade.

        Returns whether the order (maybe reduced) went to the broker.
        """
        return self._pipeline.submit(order, limits)

    def submit_signal(
        self, order: Order, limits: StrategyRunConfig, price: float, asked: float | None
    ) -> bool:
        """A sized signal's order (``asked``: the quantity the signal asked for, None
        when sized): one of no units is rejected as too small, else ``submit``."""
        return self._pipeline.submit_signal(order, limits, price, asked)

    def holds_back(
        self, order: tuple[str, str, Side], asked: float | None, limits: StrategyRunConfig
    ) -> bool:
        """Whether this signal repeats a refused one whose refusal still holds."""
        return self._pipeline.holds_back(order, asked, limits)

    def reject(self, order: Order, reason: str) -> None:
        self._pipeline.reject(order, reason)

    def projected_position(self, strategy_id: str, symbol: str) -> float:
        """Held quantity plus what pending orders will add when they fill."""
        return self._pipeline.projected_position(strategy_id, symbol)

    def open_orders(self, strategy_id: str, symbol: str | None = None) -> list[Order]:
        """The strategy's resting orders (limit, stop, a bracket's exits)."""
        return self._pipeline.open_orders(strategy_id, symbol)

    def cancel_entries(self, strategy_id: str, reason: str) -> None:
        """Cancel the strategy's resting entries, keeping its bracket exits (pause)."""
        self._pipeline.cancel_entries(strategy_id, reason)

    def cancel_order(self, strategy_id: str, order_id: str) -> bool:
        """Cancel one resting order of the strategy (settled as a rejection)."""
        return self._pipeline.cancel(strategy_id, order_id, "cancelled by the strategy")

    def cancel_by_hand(self, order_id: str, origin: CommandOrigin | None = None) -> list[Order]:
        """A user's cancel_order: the resting order ``order_id`` (or, for a bracket's
        entry that filled, the exits it armed), whatever its strategy. Returns what was
        cancelled, nothing when no resting order has that id."""
        cancelled = self._pipeline.cancel_by_id(order_id, CANCELLED_BY_HAND, origin)
        for order in cancelled:
            if order.purpose in PROTECTIVE:
                # Allowed (the user owns the position), but the position loses a guard.
                log.warning(
                    "protective_exit_cancelled",
                    order_id=order.id,
                    strategy_id=order.strategy_id,
                    symbol=order.symbol,
                    purpose=order.purpose.value,
                    parent_id=order.parent_id,
                )
        return cancelled

    def restore_resting(self, order: Order, limits: StrategyRunConfig) -> None:
        """A resting order the journal kept over a restart rests again, silently (it
        was announced before the restart)."""
        self._pipeline.restore(order, limits)

    def cancel_unrestored(self, order: Order, reason: str) -> None:
        """A resting order the journal kept whose strategy does not run after the
        restart: cancelled (announced, then settled as a rejection)."""
        self._pipeline.cancel_unrestored(order, reason)

    def replace_order(
        self,
        strategy_id: str,
        order_id: str,
        quantity: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> bool:
        """Change a resting order of the strategy; see ``OrderPipeline.replace``."""
        return self._pipeline.replace(strategy_id, order_id, quantity, limit_price, stop_price)

    def on_tick(self, tick: Tick) -> None:
        """Fill orders waiting for this symbol's next price, mark positions, then let
        the guardian watch them (stop-losses, daily loss, limits the market broke)."""
        self._pipeline.on_tick(tick)

    def cancel_strategy(self, strategy_id: str, reason: str) -> None:
        """Reject the strategy's orders still waiting at the broker."""
        self._pipeline.cancel_strategy(strategy_id, reason)

    def cancel_pending(self, reason: str) -> None:
        """Reject every order still waiting at the broker (shutdown); resting orders
        stay in the journal for the next start."""
        self._pipeline.cancel_pending(reason)

    async def run_expiry(self, interval: float = 0.5) -> None:
        """Reject orders that found no price in time, even when no tick ever comes."""
        while True:
            await asyncio.sleep(interval)
            self._pipeline.expire()

    async def wait_for(self, order_ids: Iterable[str]) -> list[Fill]:
        """Await the outcome (fill or rejection) of pending orders."""
        loop = asyncio.get_running_loop()
        futures = []
        for order_id in order_ids:
            if self._pipeline.is_pending(order_id):
                future = self._waiters.setdefault(order_id, loop.create_future())
                futures.append(future)
        return list(await asyncio.gather(*futures))

    # ------------------------------------------------------------ OrderEvents

    def accepted(self, order: Order) -> None:
        if order.purpose is not OrderPurpose.SIGNAL:
            self._exits[order.id] = order.purpose
        venue = self.router.venue_of(order.strategy_id) if self.router is not None else None
        self._bus.publish(OrderSubmitted(order, venue))

    def part(self, order: Order) -> None:
        """A part of a resting order, filled at once (partial fills): not announced as
        submitted (the order's last part is), but its trade has the order's purpose."""
        if order.purpose is not OrderPurpose.SIGNAL:
            self._exits[order.id] = order.purpose

    def lifecycle(self, event: OrderLifecycle) -> None:
        self._bus.publish(event)

    def settled(
        self, fill: Fill, change: PositionChange | None, limits: StrategyRunConfig | None
    ) -> None:
        if fill.remaining > 0.0:
            # A part (partial fills): the order's purpose and waiter wait for the rest.
            purpose = self._exits.get(fill.order_id, OrderPurpose.SIGNAL)
            self._bus.publish(TradeExecuted(fill, change, _stop_after(change, limits), purpose))
            return
        purpose = self._exits.pop(fill.order_id, OrderPurpose.SIGNAL)
        self._bus.publish(TradeExecuted(fill, change, _stop_after(change, limits), purpose))
        waiter = self._waiters.pop(fill.order_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(fill)


def _stop_after(change: PositionChange | None, limits: StrategyRunConfig | None) -> float | None:
    """The stop-loss price of the position a fill left, by the limits its order came with."""
    if change is None or limits is None:
        return None
    return stop_price(change.quantity_after, change.entry_price_after, limits.stop_loss_percentage)
