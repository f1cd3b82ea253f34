"""The risk guardian through the real execution service, paper broker and book.

Every test runs on a ManualClock with zero slippage and commission, so prices,
P&L and windows are exact and each limit can be tested at, just under and just
over its bound.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from gateways.config import DaemonConfig
from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.errors import InvalidTransition
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    HaltSource,
    KillSwitchChanged,
    LimitBreached,
    OrderReduced,
    OrderRejected,
    RiskLimit,
    StopLossTriggered,
    TradeExecuted,
)
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order, OrderPurpose, Side, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook

START = 1_700_000_000.0
E = TypeVar("E")


def limits(**overrides: Any) -> StrategyRunConfig:
    values: dict[str, Any] = {
        "symbols": ("AAPL", "MSFT"),
        "max_position_value": 10_000.0,
        "max_orders_per_minute": 1_000,
        "stop_loss_percentage": 0.0,
    }
    values.update(overrides)
    return StrategyRunConfig(**values)


class Harness:
    """A guardian inside a real execution service, recording every bus event."""

    def __init__(self, **risk: Any) -> None:
        self.clock = ManualClock(START)
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.book = PortfolioBook()
        ids = SequentialIds()
        self.guardian = RiskGuardian(RiskConfig(**risk), self.book, self.bus, self.clock, ids)
        broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0), self.clock, ids)
        self.execution = ExecutionService(
            self.bus, self.clock, self.book, broker, self.guardian, ids
        )
        self._ids = ids

    def tick(self, price: float, symbol: str = "AAPL") -> None:
        self.execution.on_tick(Tick(symbol, price, 1.0, self.clock.now()))

    def order(
        self,
        side: Side,
        quantity: float,
        *,
        strategy: str = "s1",
        symbol: str = "AAPL",
        purpose: OrderPurpose = OrderPurpose.SIGNAL,
        run: StrategyRunConfig | None = None,
    ) -> bool:
        order = Order(
            self._ids("order"), strategy, symbol, side, quantity, self.clock.now(), purpose
        )
        return self.execution.submit(order, run or limits())

    def hold(
        self,
        quantity: float,
        price: float,
        *,
        strategy: str = "s1",
        symbol: str = "AAPL",
        run: StrategyRunConfig | None = None,
    ) -> None:
        """Open a position of signed ``quantity`` filled at ``price``."""
        self.tick(price, symbol)
        side = Side.BUY if quantity > 0 else Side.SELL
        assert self.order(side, abs(quantity), strategy=strategy, symbol=symbol, run=run)
        self.tick(price, symbol)
        assert self.position(strategy, symbol) == quantity

    def position(self, strategy: str = "s1", symbol: str = "AAPL") -> float:
        return self.book.portfolio(strategy).position(symbol)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def clear(self) -> None:
        self.events.clear()


def rejection(harness: Harness) -> OrderRejected:
    [event] = harness.of(OrderRejected)
    return event


# ---------------------------------------------------------------- config


def test_risk_config_is_part_of_the_daemon_config_and_forbids_typos() -> None:
    assert DaemonConfig().risk == RiskConfig()
    with pytest.raises(ValidationError):
        RiskConfig(max_daily_los=100.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RiskConfig(max_orders_per_second=0)
    with pytest.raises(ValidationError):
        RiskConfig(position_limit_mode="shrink")  # type: ignore[arg-type]
    for name, field in RiskConfig.model_fields.items():
        assert field.description, f"{name} has no description"


# ---------------------------------------------------------------- maxPositionValue


@pytest.mark.parametrize(
    ("quantity", "accepted"), [(99, True), (100, True), (101, False)], ids=["under", "at", "over"]
)
def test_max_position_value_bound(quantity: int, accepted: bool) -> None:
    harness = Harness()
    harness.tick(100.0)
    assert harness.order(Side.BUY, quantity) is accepted
    if accepted:
        assert not harness.of(OrderRejected)
        return
    event = rejection(harness)
    assert (event.limit, event.limit_value, event.actual_value) == (
        RiskLimit.MAX_POSITION_VALUE,
        10_000.0,
        10_100.0,
    )
    assert event.order.quantity == 101
    [trade] = harness.of(TradeExecuted)
    assert trade.fill.status is TradeStatus.REJECTED
    assert trade.fill.reason == event.reason


def test_max_position_value_counts_held_and_in_flight_orders() -> None:
    harness = Harness()
    harness.hold(50, 100.0)
    assert harness.order(Side.BUY, 40)  # in flight
    assert not harness.order(Side.BUY, 11)
    assert rejection(harness).actual_value == 10_100.0
    assert harness.order(Side.BUY, 10)


def test_max_position_value_applies_to_shorts() -> None:
    harness = Harness()
    harness.tick(100.0)
    assert harness.order(Side.SELL, 100)
    assert not harness.order(Side.SELL, 1)
    assert rejection(harness).actual_value == 10_100.0


def test_reduce_mode_sends_the_largest_order_that_fits() -> None:
    harness = Harness(position_limit_mode="reduce")
    harness.hold(60, 100.0)
    harness.clear()
    assert harness.order(Side.BUY, 50)
    [reduced] = harness.of(OrderReduced)
    assert (reduced.order.quantity, reduced.quantity, reduced.actual_value) == (50, 40, 11_000.0)
    assert reduced.limit is RiskLimit.MAX_POSITION_VALUE
    harness.tick(100.0)
    assert harness.position() == 100
    assert not harness.of(OrderRejected)


def test_reduce_mode_leaves_an_order_that_fits_alone_and_rejects_when_nothing_fits() -> None:
    harness = Harness(position_limit_mode="reduce")
    harness.hold(100, 100.0)
    harness.clear()
    assert not harness.order(Side.BUY, 1)
    assert rejection(harness).limit is RiskLimit.MAX_POSITION_VALUE
    assert not harness.of(OrderReduced)


def test_an_order_that_reduces_a_position_ignores_exposure_limits() -> None:
    harness = Harness(max_gross_exposure=10_000.0)
    harness.hold(100, 100.0)
    harness.tick(150.0)  # now worth 15 000: beyond both limits
    harness.clear()
    assert harness.order(Side.SELL, 10)
    assert not harness.of(OrderRejected)


def test_an_order_before_any_price_is_rejected() -> None:
    harness = Harness()
    assert not harness.order(Side.BUY, 1)
    assert rejection(harness).limit is RiskLimit.PRICE_UNKNOWN


# ---------------------------------------------------------------- maxOrdersPerMinute


def test_orders_per_minute_at_under_and_over_the_limit() -> None:
    harness = Harness()
    harness.tick(100.0)
    run = limits(max_orders_per_minute=3)
    assert harness.order(Side.BUY, 1, run=run)  # under
    assert harness.order(Side.BUY, 1, run=run)  # under
    assert harness.order(Side.BUY, 1, run=run)  # at
    assert not harness.order(Side.BUY, 1, run=run)  # over
    event = rejection(harness)
    assert (event.limit, event.limit_value, event.actual_value) == (
        RiskLimit.MAX_ORDERS_PER_MINUTE,
        3.0,
        4.0,
    )


def test_the_order_rate_window_slides_with_the_clock() -> None:
    harness = Harness()
    harness.tick(100.0)
    run = limits(max_orders_per_minute=2)
    assert harness.order(Side.BUY, 1, run=run)  # t = 0
    harness.clock.advance(30.0)
    assert harness.order(Side.BUY, 1, run=run)  # t = 30
    harness.clock.advance(29.999)
    assert not harness.order(Side.BUY, 1, run=run)  # t = 59.999: both still in the window
    harness.clock.advance(0.001)
    assert harness.order(Side.BUY, 1, run=run)  # t = 60: the first left the window
    assert not harness.order(Side.BUY, 1, run=run)
    harness.clock.advance(30.0)
    assert harness.order(Side.BUY, 1, run=run)  # t = 90: the one at 30 left
    assert len(harness.of(OrderRejected)) == 2


def test_rejected_orders_do_not_count_in_the_window() -> None:
    harness = Harness()
    harness.tick(100.0)
    run = limits(max_orders_per_minute=1)
    assert harness.order(Side.BUY, 1, run=run)
    for _ in range(10):
        harness.clock.advance(1.0)
        assert not harness.order(Side.BUY, 1, run=run)
    harness.clock.advance(50.0)  # 60 s after the only order that was sent
    assert harness.order(Side.BUY, 1, run=run)


def test_orders_per_minute_is_per_strategy() -> None:
    harness = Harness()
    harness.tick(100.0)
    run = limits(max_orders_per_minute=1)
    assert harness.order(Side.BUY, 1, strategy="a", run=run)
    assert not harness.order(Side.BUY, 1, strategy="a", run=run)
    assert harness.order(Side.BUY, 1, strategy="b", run=run)


def test_exits_are_not_held_back_by_rate_limits() -> None:
    harness = Harness(max_orders_per_second=1)
    run = limits(max_orders_per_minute=1)
    harness.hold(10, 100.0, run=run)
    assert harness.order(Side.SELL, 10, purpose=OrderPurpose.STRATEGY_STOP, run=run)
    assert not harness.of(OrderRejected)


# ---------------------------------------------------------------- max_orders_per_second


@pytest.mark.parametrize(("count", "rejected"), [(3, 0), (4, 0), (5, 1)])
def test_orders_per_second_at_under_and_over_the_limit(count: int, rejected: int) -> None:
    harness = Harness(max_orders_per_second=4)
    harness.tick(100.0)
    outcomes = [harness.order(Side.BUY, 1) for _ in range(count)]
    assert outcomes.count(False) == rejected
    if rejected:
        event = rejection(harness)
        assert (event.limit, event.limit_value, event.actual_value) == (
            RiskLimit.MAX_ORDERS_PER_SECOND,
            4.0,
            5.0,
        )


def test_the_global_window_is_one_sliding_second() -> None:
    harness = Harness(max_orders_per_second=2)
    harness.tick(100.0)
    assert harness.order(Side.BUY, 1)
    harness.clock.advance(0.5)
    assert harness.order(Side.BUY, 1)
    assert not harness.order(Side.BUY, 1)
    harness.clock.advance(0.5)  # the first left the window
    assert harness.order(Side.BUY, 1)
    assert not harness.order(Side.BUY, 1)


def test_one_strategy_alone_may_use_the_whole_global_rate() -> None:
    harness = Harness(max_orders_per_second=10)
    harness.tick(100.0)
    assert [harness.order(Side.BUY, 1) for _ in range(11)].count(True) == 10


def test_a_flood_from_one_strategy_does_not_starve_another() -> None:
    harness = Harness(max_orders_per_second=10)
    harness.tick(100.0)
    harness.tick(100.0, "MSFT")
    quiet_run = limits(max_orders_per_minute=1_000)
    flood_run = limits(max_orders_per_minute=10_000, max_position_value=1e9)
    quiet: list[bool] = []
    flooded = 0
    for step in range(50):  # five seconds in steps of 0.1 s
        if step % 5 == 0:
            quiet.append(harness.order(Side.BUY, 1, strategy="quiet", symbol="MSFT", run=quiet_run))
        for _ in range(20):  # 200 orders a second from the flooding strategy
            flooded += harness.order(Side.BUY, 1, strategy="flood", run=flood_run)
        harness.clock.advance(0.1)
    assert all(quiet), quiet
    assert len(quiet) == 10
    # Two strategies traded in the last minute: the flood is held to its half of the
    # global rate, 5 orders in any second, for five seconds.
    assert flooded == 5 * 5
    limits_hit = {event.limit for event in harness.of(OrderRejected)}
    assert limits_hit == {RiskLimit.MAX_ORDERS_PER_SECOND}
    assert all(event.order.strategy_id == "flood" for event in harness.of(OrderRejected))


# ---------------------------------------------------------------- max_gross_exposure


@pytest.mark.parametrize(
    ("quantity", "accepted"), [(39, True), (40, True), (41, False)], ids=["under", "at", "over"]
)
def test_gross_exposure_bound_across_strategies(quantity: int, accepted: bool) -> None:
    harness = Harness(max_gross_exposure=15_000.0)
    harness.hold(100, 100.0, strategy="a")
    harness.hold(-10, 100.0, strategy="c")  # a short counts by its absolute value
    harness.clear()
    assert harness.order(Side.BUY, quantity, strategy="b") is accepted
    if not accepted:
        event = rejection(harness)
        assert (event.limit, event.limit_value, event.actual_value) == (
            RiskLimit.MAX_GROSS_EXPOSURE,
            15_000.0,
            15_100.0,
        )


def test_a_reversal_beyond_gross_exposure_sends_the_part_that_closes_the_position() -> None:
    harness = Harness(max_gross_exposure=10_000.0)
    harness.hold(-50, 100.0)  # short 5,000
    harness.hold(40, 100.0, strategy="other")  # gross 9,000
    harness.clear()
    assert harness.order(Side.BUY, 120)  # to long 70: gross would be 11,000
    [reduced] = harness.of(OrderReduced)
    assert (reduced.quantity, reduced.limit, reduced.limit_value, reduced.actual_value) == (
        50,
        RiskLimit.MAX_GROSS_EXPOSURE,
        10_000.0,
        11_000.0,
    )
    assert reduced.reason.endswith("; sent 50 of 120 to close the position")
    assert not harness.of(OrderRejected)
    harness.tick(100.0)
    assert harness.position() == 0


def test_a_reversal_beyond_max_position_value_in_reject_mode_still_closes() -> None:
    harness = Harness()
    harness.hold(50, 100.0)
    harness.clear()
    assert harness.order(Side.SELL, 200)  # to short 150: worth 15,000 over 10,000
    [reduced] = harness.of(OrderReduced)
    assert (reduced.quantity, reduced.limit) == (50, RiskLimit.MAX_POSITION_VALUE)
    harness.tick(100.0)
    assert harness.position() == 0


def test_a_reversal_without_a_price_sends_the_part_that_closes_the_position() -> None:
    harness = Harness()
    harness.hold(-50, 100.0)
    harness.book._last_prices.clear()  # as after a restart: positions, no prices yet
    harness.clear()
    assert harness.order(Side.BUY, 120)
    [reduced] = harness.of(OrderReduced)
    assert (reduced.quantity, reduced.limit) == (50, RiskLimit.PRICE_UNKNOWN)


def test_a_refused_order_that_does_not_reverse_is_not_cut() -> None:
    harness = Harness(max_gross_exposure=10_000.0)
    harness.hold(90, 100.0)
    harness.clear()
    assert not harness.order(Side.BUY, 20)  # adds to the long: refused whole
    assert rejection(harness).limit is RiskLimit.MAX_POSITION_VALUE
    assert not harness.of(OrderReduced)


def test_a_reversal_over_the_rate_limit_sends_the_part_that_closes() -> None:
    # The rule changed: a rate limit once refused the whole reversal, which kept the
    # strategy in the position it asked to leave.
    harness = Harness()
    run = limits(max_orders_per_minute=1)
    harness.hold(-50, 100.0, run=run)  # the minute's one order
    harness.clear()
    assert harness.order(Side.BUY, 120, run=run)
    [reduced] = harness.of(OrderReduced)
    assert (reduced.limit, reduced.quantity) == (RiskLimit.MAX_ORDERS_PER_MINUTE, 50)
    assert not harness.of(OrderRejected)
    assert not harness.order(Side.BUY, 10, run=run)  # flat now: an entry waits for the window
    assert rejection(harness).limit is RiskLimit.MAX_ORDERS_PER_MINUTE


def test_a_strategys_own_exit_is_not_held_back_by_rate_limits() -> None:
    harness = Harness(max_orders_per_second=1)
    run = limits(max_orders_per_minute=1)
    harness.hold(10, 100.0, run=run)
    harness.clear()
    assert harness.order(Side.SELL, 4, run=run)  # a signal's exit, not stop_strategy's
    assert harness.order(Side.SELL, 6, run=run)
    assert not harness.of(OrderRejected)
    assert not harness.order(Side.SELL, 1, run=run)  # opening a short is an entry
    assert rejection(harness).limit is RiskLimit.MAX_ORDERS_PER_MINUTE


# ---------------------------------------------------------------- stop-loss


def stop_harness(quantity: float, pct: float = 0.02, **risk: Any) -> Harness:
    harness = Harness(**risk)
    harness.hold(quantity, 100.0, run=limits(stop_loss_percentage=pct))
    harness.clear()
    return harness


@pytest.mark.parametrize(
    ("price", "fires"), [(98.01, False), (98.0, True), (97.99, True)], ids=["under", "at", "over"]
)
def test_stop_loss_on_a_long_position(price: float, fires: bool) -> None:
    harness = stop_harness(100)
    harness.tick(price)
    triggered = harness.of(StopLossTriggered)
    assert len(triggered) == int(fires)
    if fires:
        [event] = triggered
        assert event.order.side is Side.SELL
        assert event.order.quantity == 100
        assert event.order.purpose is OrderPurpose.STOP_LOSS
        assert (event.entry_price, event.trigger_price, event.stop_price) == (100.0, price, 98.0)
        assert event.unrealized_pnl == pytest.approx((price - 100.0) * 100)


@pytest.mark.parametrize(
    ("price", "fires"),
    [(101.99, False), (102.0, True), (102.01, True)],
    ids=["under", "at", "over"],
)
def test_stop_loss_on_a_short_position(price: float, fires: bool) -> None:
    harness = stop_harness(-100)
    harness.tick(price)
    triggered = harness.of(StopLossTriggered)
    assert len(triggered) == int(fires)
    if fires:
        assert triggered[0].order.side is Side.BUY
        assert triggered[0].stop_price == 102.0


@pytest.mark.parametrize("quantity", [100, -100], ids=["long", "short"])
def test_stop_loss_fires_exactly_once_and_exits_with_a_normal_trade(quantity: float) -> None:
    harness = stop_harness(quantity)
    bad = 97.0 if quantity > 0 else 103.0
    harness.tick(bad)  # triggers
    harness.tick(bad - 1 if quantity > 0 else bad + 1)  # fills the exit
    for _ in range(5):
        harness.tick(bad)
    [triggered] = harness.of(StopLossTriggered)
    exits = [t for t in harness.of(TradeExecuted) if t.fill.order_id == triggered.order.id]
    [exit_trade] = exits
    assert exit_trade.fill.status is TradeStatus.FILLED
    assert harness.position() == 0


def test_stop_loss_is_not_resubmitted_while_its_exit_is_pending() -> None:
    harness = stop_harness(100)
    guardian = harness.guardian
    first = guardian.on_price(Tick("AAPL", 90.0, 1.0, START), None)
    again = guardian.on_price(Tick("AAPL", 89.0, 1.0, START), None)
    assert len(first.exits) == 1
    assert again.exits == ()
    assert len(harness.of(StopLossTriggered)) == 1


def test_a_refused_stop_loss_exit_is_tried_again_on_the_next_price() -> None:
    harness = stop_harness(100)
    guardian = harness.guardian
    [(order, _)] = guardian.on_price(Tick("AAPL", 90.0, 1.0, START), None).exits
    harness.execution.reject(order, "the broker refused it")
    assert len(guardian.on_price(Tick("AAPL", 89.0, 1.0, START), None).exits) == 1


def test_stop_loss_percentage_zero_disables_it() -> None:
    harness = stop_harness(100, pct=0.0)
    harness.tick(50.0)
    assert not harness.of(StopLossTriggered)


def test_stop_loss_exit_passes_while_trading_is_halted_reduce_only() -> None:
    harness = stop_harness(100)
    harness.execution.engage_kill_switch(Halt("test", False, HaltSource.COMMAND, START))
    harness.tick(97.0)
    harness.tick(96.0)
    assert len(harness.of(StopLossTriggered)) == 1
    assert harness.position() == 0
    assert not harness.of(OrderRejected)


def test_stop_loss_waits_while_everything_is_blocked_then_fires_once() -> None:
    harness = stop_harness(100)
    harness.execution.engage_kill_switch(Halt("test", True, HaltSource.COMMAND, START))
    harness.tick(97.0)
    harness.tick(96.0)
    assert not harness.of(StopLossTriggered)
    assert harness.position() == 100
    harness.execution.release_kill_switch()
    harness.tick(96.0)
    harness.tick(96.0)
    assert len(harness.of(StopLossTriggered)) == 1
    assert harness.position() == 0


def test_every_fill_carries_the_stop_price_of_the_position_it_leaves() -> None:
    harness = Harness()
    run = limits(stop_loss_percentage=0.05)
    harness.hold(10, 100.0, run=run)
    assert [t.stop_price for t in harness.of(TradeExecuted)] == [pytest.approx(95.0)]
    harness.clear()
    assert harness.order(Side.SELL, 20, run=run)  # through zero: short 10 at 100
    harness.tick(100.0)
    assert [t.stop_price for t in harness.of(TradeExecuted)] == [pytest.approx(105.0)]
    harness.clear()
    assert harness.order(Side.BUY, 10, run=run)
    harness.tick(100.0)
    assert harness.position() == 0.0
    assert [t.stop_price for t in harness.of(TradeExecuted)] == [None]  # flat: no stop
    harness.clear()
    harness.hold(10, 100.0, strategy="s2", run=limits(stop_loss_percentage=0.0))
    assert [t.stop_price for t in harness.of(TradeExecuted)] == [None]  # stop-loss off


# ---------------------------------------------------------------- daily loss


@pytest.mark.parametrize(
    ("price", "engages"), [(95.01, False), (95.0, True), (94.99, True)], ids=["under", "at", "over"]
)
def test_daily_loss_limit_engages_the_kill_switch(price: float, engages: bool) -> None:
    harness = Harness(max_daily_loss=500.0)
    harness.hold(100, 100.0)
    harness.clear()
    harness.tick(price)
    assert (harness.execution.status is ExecutionStatus.STOPPED) is engages
    if not engages:
        assert not harness.of(LimitBreached)
        return
    [breach] = harness.of(LimitBreached)
    assert (breach.limit, breach.limit_value) == (RiskLimit.MAX_DAILY_LOSS, 500.0)
    assert breach.actual_value == pytest.approx((100.0 - price) * 100)
    assert breach.engages_kill_switch
    [switch] = harness.of(KillSwitchChanged)
    assert (switch.engaged, switch.source, switch.block_all) == (True, HaltSource.DAILY_LOSS, False)
    [status] = harness.of(ExecutionStatusChanged)
    assert status.status is ExecutionStatus.STOPPED
    assert status.reason == switch.reason


def test_daily_loss_counts_realized_and_unrealized_pnl_and_engages_once() -> None:
    harness = Harness(max_daily_loss=500.0)
    harness.hold(100, 100.0)
    harness.tick(97.0)
    assert harness.order(Side.SELL, 50)
    harness.tick(97.0)  # realized -150, unrealized -150
    assert harness.execution.status is ExecutionStatus.RUNNING
    harness.tick(93.0)  # realized -150, unrealized -350
    assert harness.execution.status is ExecutionStatus.STOPPED
    harness.tick(80.0)
    harness.execution.release_kill_switch("operator accepts the loss")
    harness.tick(70.0)
    assert harness.execution.status is ExecutionStatus.RUNNING
    assert len(harness.of(LimitBreached)) == 1
    assert [e.engaged for e in harness.of(KillSwitchChanged)] == [True, False]


def test_the_daily_loss_counts_from_utc_midnight() -> None:
    midnight = datetime(2024, 3, 5, tzinfo=UTC).timestamp()
    harness = Harness(max_daily_loss=500.0)
    harness.clock.set(midnight - 60.0)
    harness.hold(100, 100.0)
    harness.tick(96.0)  # -400 yesterday
    harness.clock.set(midnight + 1.0)
    harness.tick(96.0)  # the new day starts at -400
    harness.tick(91.01)  # -499 today
    assert harness.execution.status is ExecutionStatus.RUNNING
    assert harness.guardian.daily_pnl() == pytest.approx(-499.0)
    harness.tick(91.0)  # -500 today
    assert harness.execution.status is ExecutionStatus.STOPPED


def test_the_daily_loss_switch_may_block_everything() -> None:
    harness = Harness(max_daily_loss=500.0, daily_loss_blocks_all=True)
    harness.hold(100, 100.0)
    harness.tick(90.0)
    assert harness.execution.halt is not None and harness.execution.halt.block_all
    assert not harness.order(Side.SELL, 10)


# ---------------------------------------------------------------- kill switch


def test_reduce_only_while_halted() -> None:
    harness = Harness()
    harness.hold(100, 100.0)
    harness.clear()
    harness.execution.engage_kill_switch(Halt("manual", False, HaltSource.COMMAND, START))
    assert not harness.order(Side.BUY, 1)  # an entry
    event = rejection(harness)
    assert (event.limit, event.limit_value, event.actual_value) == (
        RiskLimit.KILL_SWITCH,
        0.0,
        100.0,
    )
    assert "halted (manual)" in event.reason
    assert not harness.order(Side.BUY, 1, strategy="other")  # a new position
    assert harness.order(Side.SELL, 40)  # reduces
    assert harness.order(Side.SELL, 60)  # reduces to flat, counting the one in flight
    assert not harness.order(Side.SELL, 1)  # would go short once both fill
    harness.tick(100.0)
    assert harness.position() == 0


def test_reduce_only_cuts_a_reversal_to_the_part_that_closes_the_position() -> None:
    harness = Harness()
    harness.hold(100, 100.0)
    harness.clear()
    harness.execution.engage_kill_switch(Halt("manual", False, HaltSource.COMMAND, START))
    harness.clear()
    assert harness.order(Side.SELL, 250)  # long 100 to short 150: sends the 100
    [reduced] = harness.of(OrderReduced)
    assert (reduced.order.quantity, reduced.quantity, reduced.limit) == (
        250,
        100,
        RiskLimit.KILL_SWITCH,
    )
    assert (reduced.limit_value, reduced.actual_value) == (0.0, 25_000.0)
    assert "halted (manual)" in reduced.reason
    assert "sent 100 of 250" in reduced.reason
    assert not harness.of(OrderRejected)
    assert not harness.order(Side.SELL, 1)  # flat once it fills: nothing more passes
    harness.tick(100.0)
    assert harness.position() == 0


def test_block_all_refuses_reversals_too() -> None:
    harness = Harness()
    harness.hold(100, 100.0)
    harness.execution.engage_kill_switch(Halt("panic", True, HaltSource.COMMAND, START))
    harness.clear()
    assert not harness.order(Side.SELL, 250)
    assert rejection(harness).limit is RiskLimit.KILL_SWITCH
    assert not harness.of(OrderReduced)
    harness.tick(100.0)
    assert harness.position() == 100


def test_block_all_refuses_reductions_and_cancels_orders_in_flight() -> None:
    harness = Harness()
    harness.hold(50, 100.0)
    assert harness.order(Side.BUY, 10)  # waits for the next price
    harness.clear()
    harness.execution.engage_kill_switch(Halt("panic", True, HaltSource.COMMAND, START))
    [cancelled] = harness.of(OrderRejected)
    assert cancelled.limit is RiskLimit.KILL_SWITCH
    [trade] = harness.of(TradeExecuted)
    assert trade.fill.status is TradeStatus.REJECTED
    assert trade.fill.order_id == cancelled.order.id
    assert harness.execution.broker.pending_count == 0
    assert not harness.order(Side.SELL, 10)
    harness.tick(100.0)
    assert harness.position() == 50


def test_reduce_only_leaves_orders_already_at_the_broker() -> None:
    harness = Harness()
    harness.tick(100.0)
    assert harness.order(Side.BUY, 10)
    harness.execution.engage_kill_switch(Halt("manual", False, HaltSource.COMMAND, START))
    harness.tick(100.0)
    assert harness.position() == 10


def test_engaging_and_releasing_announce_the_execution_status() -> None:
    harness = Harness()
    execution = harness.execution
    execution.engage_kill_switch(Halt("first", False, HaltSource.COMMAND, START))
    execution.engage_kill_switch(Halt("second", True, HaltSource.COMMAND, START))
    execution.release_kill_switch("all clear")
    statuses = [(e.status, e.reason) for e in harness.of(ExecutionStatusChanged)]
    assert statuses == [(ExecutionStatus.STOPPED, "first"), (ExecutionStatus.RUNNING, None)]
    switches = [(e.engaged, e.reason, e.block_all) for e in harness.of(KillSwitchChanged)]
    assert switches == [(True, "first", False), (True, "second", True), (False, "all clear", False)]
    with pytest.raises(InvalidTransition):
        execution.release_kill_switch()
    harness.tick(100.0)
    assert harness.order(Side.BUY, 1)


# ---------------------------------------------------------------- breaches by the market


def test_a_position_pushed_beyond_its_limit_by_the_market_is_reported_once() -> None:
    harness = Harness()
    harness.hold(100, 100.0)
    harness.clear()
    harness.tick(100.5)
    harness.tick(101.0)
    harness.tick(99.0)  # back under: re-armed
    harness.tick(102.0)
    breaches = harness.of(LimitBreached)
    assert [(b.limit, b.strategy_id, b.symbol) for b in breaches] == [
        (RiskLimit.MAX_POSITION_VALUE, "s1", "AAPL"),
        (RiskLimit.MAX_POSITION_VALUE, "s1", "AAPL"),
    ]
    assert breaches[0].actual_value == pytest.approx(10_050.0)
    assert not breaches[0].engages_kill_switch


def test_gross_exposure_pushed_beyond_its_limit_by_the_market_is_reported() -> None:
    harness = Harness(max_gross_exposure=10_000.0)
    harness.hold(50, 100.0, strategy="a")
    harness.hold(50, 100.0, strategy="b")
    harness.clear()
    harness.tick(101.0)
    harness.tick(102.0)
    [breach] = harness.of(LimitBreached)
    assert (breach.limit, breach.strategy_id, breach.actual_value) == (
        RiskLimit.MAX_GROSS_EXPOSURE,
        None,
        pytest.approx(10_100.0),
    )


# ---------------------------------------------------------------- status


def test_snapshot_reports_limits_and_usage() -> None:
    harness = Harness()
    run = limits(stop_loss_percentage=0.05)
    harness.hold(10, 100.0, run=run)
    harness.tick(110.0)
    snapshot = harness.guardian.snapshot({"s1": run, "idle": limits()})
    assert snapshot.gross_exposure == pytest.approx(1_100.0)
    assert snapshot.daily_pnl == pytest.approx(100.0)
    [s1, idle] = snapshot.strategies
    assert (s1.strategy_id, s1.orders_last_minute, s1.exposure) == ("s1", 1, 1_100.0)
    assert s1.unrealized_pnl == pytest.approx(100.0)
    [position] = s1.positions
    assert position.stop_price == pytest.approx(95.0)
    assert (idle.strategy_id, idle.positions, idle.exposure) == ("idle", (), 0.0)


# ---------------------------------------------------------------- restart


def test_resync_adopts_positions_rebuilt_without_the_guardian() -> None:
    harness = Harness(max_gross_exposure=1_500.0)
    harness.tick(100.0)
    # As a restart does: fills replayed straight into the book, the guardian unaware.
    for strategy, side in (("s1", Side.BUY), ("s2", Side.SELL)):
        fill = Fill(
            f"trade-{strategy}",
            f"order-{strategy}",
            strategy,
            "AAPL",
            side,
            5,
            100.0,
            0.0,
            START,
            TradeStatus.FILLED,
        )
        harness.book.apply_fill(fill)
    harness.guardian.resync({"s1": limits(stop_loss_percentage=0.02)})
    assert harness.guardian.gross_exposure == 1_000.0
    assert not harness.order(Side.BUY, 6, strategy="s3")  # 1 000 held + 600 > 1 500
    assert rejection(harness).actual_value == 1_600.0
    harness.tick(98.0)  # s1 long from 100: its stop; s2 has no known limits yet
    [stop] = harness.of(StopLossTriggered)
    assert (stop.order.strategy_id, stop.order.quantity) == ("s1", 5)
    assert harness.guardian.daily_pnl() == 0.0  # -10 on s1, +10 on s2


def test_measure_updates_the_exposure_and_the_day_without_acting() -> None:
    harness = Harness()
    run = limits(stop_loss_percentage=0.02)
    harness.hold(100, 100.0, run=run)
    harness.clear()
    harness.book.mark("AAPL", 90.0, START)  # beyond the 2 % stop
    harness.guardian.measure("AAPL", START)
    assert harness.guardian.gross_exposure == 9_000.0
    assert harness.events == []  # measuring is not watching: no stop-loss, no breach
    harness.clock.advance(86_400.0)
    harness.book.mark("AAPL", 95.0, START + 86_400.0)
    harness.guardian.measure("AAPL", START + 86_400.0)
    # The new day starts from the equity last measured, at 90: up 500 since.
    assert harness.guardian.daily_pnl() == 500.0


def test_a_restart_keeps_what_the_day_realized_toward_the_daily_loss() -> None:
    """The day's fills replayed into the book before a resync: their realized loss still
    counts toward max_daily_loss (a restart used to start the day again from 0)."""
    harness = Harness(max_daily_loss=500.0)
    harness.tick(100.0)
    for number, (side, price) in enumerate(((Side.BUY, 100.0), (Side.SELL, 96.0))):
        fill = Fill(
            f"trade-{number}", f"order-{number}", "s1", "AAPL", side, 100, price, 0.0,
            START, TradeStatus.FILLED,
        )  # fmt: skip
        harness.book.apply_fill(fill)
    harness.guardian.resync()
    assert harness.guardian.daily_pnl() == pytest.approx(-400.0)
    harness.hold(100, 100.0, strategy="s2")
    harness.tick(99.01)  # -400 realized, -99 open
    assert harness.execution.status is ExecutionStatus.RUNNING
    harness.tick(99.0)  # -500 in the day
    assert harness.execution.status is ExecutionStatus.STOPPED
