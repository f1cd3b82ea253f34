"""Resting orders in the order pipeline: the fill rules of limit, stop and stop-limit
orders, brackets (OCO), trailing stops and time in force, and what risk does with
them (docs/orders.md). The pipeline runs with the live risk guardian and the paper
broker; "a bar" is what a backtest feeds (``enter_bar`` then its prices), anything
else is live ticks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.bus import EventBus
from orchestrator.model.clock import DAY_SECONDS, ManualClock
from orchestrator.model.events import HaltSource, OrderLifecycle, OrderReplaced, OrderTriggered
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import (
    BUY,
    FILLED,
    SELL,
    Bracket,
    Fill,
    Order,
    OrderPurpose,
    OrderTerms,
    OrderType,
    Side,
    TimeInForce,
    TradeStatus,
    Trailing,
    terms_problem,
)
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import BracketRule, PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import OrderPipeline, with_terms
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

T0 = 1_700_006_400.0  # a UTC midnight
LIMITS = StrategyRunConfig(
    symbols=("AAPL",), max_position_value=10_000.0, max_orders_per_minute=100,
    stop_loss_percentage=0.0,
)  # fmt: skip


class Events:
    """The pipeline's owner: records what was settled, engages the kill switch."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.lifecycle_events: list[OrderLifecycle] = []
        self.pipeline: OrderPipeline | None = None

    def accepted(self, order: Order) -> None:
        return None

    def settled(
        self, fill: Fill, change: PositionChange | None, limits: StrategyRunConfig | None
    ) -> None:
        self.fills.append(fill)

    def lifecycle(self, event: OrderLifecycle) -> None:
        self.lifecycle_events.append(event)

    def engage_kill_switch(self, halt: Halt) -> None:
        assert self.pipeline is not None
        self.pipeline.engage(halt)


@dataclass
class Desk:
    clock: ManualClock
    pipeline: OrderPipeline
    events: Events
    ids: SequentialIds

    def place(
        self,
        side: Side,
        quantity: float = 10.0,
        limits: StrategyRunConfig = LIMITS,
        **terms: object,
    ) -> str:
        order = Order(self.ids("order"), "s1", "AAPL", side, quantity, self.clock.now())
        order = with_terms(order, OrderTerms(**terms))  # type: ignore[arg-type]
        self.pipeline.submit(order, limits)
        return order.id

    def tick(self, price: float, dt: float = 1.0) -> None:
        self.clock.advance(dt)
        self.pipeline.on_tick(Tick("AAPL", price, 1.0, self.clock.now()))

    def bar(self, *prices: float) -> None:
        """A backtest bar: its prices in the order of its walk."""
        self.clock.advance(60.0)
        self.pipeline.enter_bar("AAPL", self.clock.now(), min(prices), max(prices))
        for price in prices:
            self.tick(price, 0.0)

    def filled(self) -> list[tuple[Side, float, float]]:
        return [(f.side, f.quantity, f.price) for f in self.events.fills if f.status is FILLED]

    def cancelled(self) -> list[tuple[str, str | None]]:
        return [
            (f.order_id, f.reason) for f in self.events.fills if f.status is TradeStatus.REJECTED
        ]

    @property
    def held(self) -> float:
        return self.pipeline.book.quantity("s1", "AAPL")


def desk(
    slippage_bps: float = 0.0, rule: BracketRule = BracketRule.STOP_FIRST, **risk: object
) -> Desk:
    clock, bus, book, ids = ManualClock(T0 + 3600), EventBus(), PortfolioBook(), SequentialIds()
    guardian = RiskGuardian(RiskConfig.model_validate(risk), book, bus, clock, ids)
    broker = PaperBroker(PaperBrokerConfig(slippage_bps=slippage_bps), clock, ids)
    events = Events()
    pipeline = OrderPipeline(book, guardian, broker, clock, ids, events, rule)
    events.pipeline = pipeline
    made = Desk(clock, pipeline, events, ids)
    made.tick(100.0)  # the market's price before anything is placed
    return made


LIMIT, STOP, STOP_LIMIT = OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT


# --------------------------------------------------------------------------- fill rules


def test_a_limit_buy_rests_until_a_price_at_or_below_it_and_fills_at_that_price() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=98.0)
    d.tick(99.0)
    assert d.filled() == [] and len(d.pipeline.open_orders("s1")) == 1
    d.tick(97.5)  # a live tick jumped through the limit: filled there, better than 98
    assert d.filled() == [(BUY, 10.0, 97.5)]
    assert d.pipeline.open_orders("s1") == []


def test_inside_a_bar_a_limit_fills_at_its_limit_and_a_gap_at_the_open() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=98.0)
    d.place(SELL, 5.0, order_type=LIMIT, limit_price=103.0)
    d.bar(99.0, 97.0, 99.5, 99.0)  # passes through 98 on the way down to 97
    d.bar(104.0, 104.5, 103.5, 104.0)  # opens above the sell limit: the open of the gap
    assert d.filled() == [(BUY, 10.0, 98.0), (SELL, 5.0, 104.0)]


def test_a_stop_triggers_through_its_price_and_a_gap_fills_at_the_open() -> None:
    d = desk()
    d.place(BUY, order_type=STOP, stop_price=101.0)
    d.place(SELL, 10.0, order_type=STOP, stop_price=95.0)
    d.bar(100.0, 99.5, 102.0, 101.5)  # trades through 101 between 99.5 and 102
    d.bar(93.0, 92.0, 94.0, 93.5)  # opens below the sell stop: filled at the open
    assert d.filled() == [(BUY, 10.0, 101.0), (SELL, 10.0, 93.0)]


def test_a_stop_buy_below_the_market_triggers_at_the_next_price() -> None:
    d = desk()
    d.place(BUY, order_type=STOP, stop_price=90.0)
    d.tick(100.5)
    assert d.filled() == [(BUY, 10.0, 100.5)]


def test_a_marketable_limit_fills_at_the_next_price_and_never_beyond_its_limit() -> None:
    d = desk(slippage_bps=100.0)  # 1 %: 100.5 would slip to 101.505
    d.place(BUY, order_type=LIMIT, limit_price=101.0)
    d.tick(100.5)
    assert d.filled() == [(BUY, 10.0, 101.0)]


def test_a_stop_limit_becomes_a_limit_at_its_stop() -> None:
    d = desk()
    d.place(BUY, order_type=STOP_LIMIT, stop_price=102.0, limit_price=102.5)
    d.tick(103.0)  # the stop is reached, the limit is not: it rests as a limit
    assert d.filled() == []
    assert d.pipeline.resting.by_id[d.pipeline.open_orders("s1")[0].id].stop is None
    d.tick(102.4)
    assert d.filled() == [(BUY, 10.0, 102.4)]


def test_prices_between_the_levels_do_nothing() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=95.0)
    d.place(BUY, order_type=STOP, stop_price=105.0)
    for price in (96.0, 104.0, 100.0):
        d.tick(price)
    assert d.filled() == [] and d.pipeline.resting.band("AAPL") == (95.0, 105.0)


# --------------------------------------------------------------------------- brackets


def test_a_bracket_arms_on_the_fill_and_its_target_cancels_its_stop() -> None:
    d = desk()
    entry = d.place(BUY, order_type=LIMIT, limit_price=99.0,
                    bracket=Bracket(stop_loss=95.0, take_profit=105.0))  # fmt: skip
    d.tick(99.0)
    exits = d.pipeline.open_orders("s1")
    assert [(o.purpose, o.order_type, o.side, o.quantity) for o in exits] == [
        (OrderPurpose.STOP_LOSS, STOP, SELL, 10.0),
        (OrderPurpose.TAKE_PROFIT, LIMIT, SELL, 10.0),
    ]
    assert {o.parent_id for o in exits} == {entry}
    d.tick(106.0)
    assert d.filled() == [(BUY, 10.0, 99.0), (SELL, 10.0, 106.0)]
    assert d.held == 0.0 and d.pipeline.open_orders("s1") == []
    assert d.cancelled() == [(exits[0].id, "the other exit of its bracket filled")]


@pytest.mark.parametrize(
    ("rule", "price"),
    [(BracketRule.STOP_FIRST, 95.0), (BracketRule.TARGET_FIRST, 105.0), (BracketRule.WALK, 105.0)],
)
def test_a_bar_that_reaches_both_exits_fills_by_the_rule(rule: BracketRule, price: float) -> None:
    d = desk(rule=rule)
    d.place(BUY, bracket=Bracket(stop_loss=95.0, take_profit=105.0))  # a market entry
    d.tick(100.0)
    d.bar(100.0, 106.0, 94.0, 100.0)  # the walk reaches the target first
    assert d.filled() == [(BUY, 10.0, 100.0), (SELL, 10.0, price)]
    assert d.pipeline.open_orders("s1") == []


def test_exits_armed_inside_a_bar_wait_for_the_next_bar() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=99.0, bracket=Bracket(stop_loss=97.0))
    d.bar(100.0, 96.0, 100.0, 98.0)  # fills at 99 on the way down; 96 is after the fill
    assert d.filled() == [(BUY, 10.0, 99.0)]
    d.bar(98.0, 96.5, 98.5, 97.5)
    assert d.filled() == [(BUY, 10.0, 99.0), (SELL, 10.0, 97.0)]


def test_a_closed_position_cancels_its_exits() -> None:
    d = desk()
    d.place(BUY, bracket=Bracket(stop_loss=95.0, take_profit=110.0))
    d.tick(100.0)
    d.place(SELL)  # the strategy closes it with a market order
    d.tick(101.0)
    assert d.held == 0.0 and d.pipeline.open_orders("s1") == []
    d.tick(94.0)  # no exit left to open a short
    assert d.held == 0.0


def test_a_trailing_stop_follows_the_best_price_and_never_back() -> None:
    d = desk()
    d.place(BUY, bracket=Bracket(trailing=Trailing(2.0)))
    d.tick(100.0)
    (stop,) = d.pipeline.open_orders("s1")
    assert stop.stop_price == 98.0
    for price in (103.0, 101.5, 104.0):
        d.tick(price)
    assert d.pipeline.open_orders("s1")[0].stop_price == 102.0
    d.tick(101.9)
    assert d.filled()[-1] == (SELL, 10.0, 101.9)


def test_a_fractional_trailing_stop_trails_by_a_share_of_the_price() -> None:
    assert Trailing(0.02, fraction=True).stop_from(200.0, SELL) == 196.0
    assert Trailing(0.02, fraction=True).stop_from(200.0, BUY) == 204.0


# --------------------------------------------------------------------------- time in force


def test_a_day_order_expires_at_the_end_of_its_utc_day() -> None:
    d = desk()
    order_id = d.place(BUY, order_type=LIMIT, limit_price=90.0, time_in_force=TimeInForce.DAY)
    d.clock.set(T0 + DAY_SECONDS - 1)
    d.pipeline.expire()
    assert len(d.pipeline.open_orders("s1")) == 1
    d.clock.set(T0 + DAY_SECONDS)
    d.pipeline.expire()
    assert d.pipeline.open_orders("s1") == []
    assert d.cancelled() == [(order_id, "expired: a DAY order at the end of its UTC day")]


def test_an_ioc_order_is_filled_by_the_next_price_or_cancelled() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=101.0, time_in_force=TimeInForce.IOC)
    missed = d.place(BUY, order_type=LIMIT, limit_price=99.0, time_in_force=TimeInForce.IOC)
    d.tick(100.0)
    assert d.filled() == [(BUY, 10.0, 100.0)]
    assert d.cancelled() == [(missed, "IOC: the first price after it did not fill it")]
    assert d.pipeline.open_orders("s1") == []


# --------------------------------------------------------------------------- cancel, replace


def test_cancel_and_replace_a_resting_order() -> None:
    d = desk()
    order_id = d.place(BUY, order_type=LIMIT, limit_price=95.0)
    assert d.pipeline.replace("s1", order_id, quantity=5.0, limit_price=99.0)
    assert not d.pipeline.replace("other", order_id, limit_price=98.0)
    (order,) = d.pipeline.open_orders("s1")
    assert (order.id, order.quantity, order.limit_price) == (order_id, 5.0, 99.0)
    d.tick(99.0)
    assert d.filled() == [(BUY, 5.0, 99.0)]
    second = d.place(BUY, order_type=LIMIT, limit_price=90.0)
    assert d.pipeline.cancel("s1", second)
    assert not d.pipeline.cancel("s1", second)
    d.tick(89.0)
    assert d.filled() == [(BUY, 5.0, 99.0)]


# --------------------------------------------------------------------------- risk


def test_max_position_value_counts_resting_entries() -> None:
    d = desk()
    limits = LIMITS.model_copy(update={"max_position_value": 1_500.0})
    d.place(BUY, limits=limits, order_type=LIMIT, limit_price=99.0)  # 10 at ~100: 1,000
    refused = d.place(BUY, limits=limits, order_type=LIMIT, limit_price=98.0)
    assert len(d.pipeline.open_orders("s1")) == 1
    assert d.cancelled()[0][0] == refused
    assert "maxPositionValue" in (d.cancelled()[0][1] or "")


def test_the_rate_limit_counts_placements_not_triggers() -> None:
    d = desk()
    limits = LIMITS.model_copy(update={"max_orders_per_minute": 2})
    d.place(BUY, 1.0, limits=limits, order_type=LIMIT, limit_price=99.0)
    d.place(BUY, 1.0, limits=limits, order_type=LIMIT, limit_price=98.0)
    d.tick(97.0, dt=0.0)  # both trigger within the same minute: no third order counted
    assert d.filled() == [(BUY, 1.0, 97.0), (BUY, 1.0, 97.0)]
    refused = d.place(BUY, 1.0, limits=limits, order_type=LIMIT, limit_price=96.0)
    assert d.cancelled()[0][0] == refused
    assert "maxOrdersPerMinute" in (d.cancelled()[0][1] or "")


def test_the_kill_switch_cancels_resting_entries_and_keeps_protective_exits() -> None:
    d = desk()
    d.place(BUY, bracket=Bracket(stop_loss=95.0))
    d.tick(100.0)
    entry = d.place(BUY, order_type=LIMIT, limit_price=90.0)
    d.pipeline.engage(Halt("test", False, HaltSource.COMMAND, d.clock.now()))
    assert [o.purpose for o in d.pipeline.open_orders("s1")] == [OrderPurpose.STOP_LOSS]
    assert d.cancelled()[0][0] == entry
    d.tick(94.0)  # the protective stop still exits (reduce-only)
    assert d.filled()[-1] == (SELL, 10.0, 94.0) and d.held == 0.0


def test_an_entry_is_checked_again_at_its_trigger() -> None:
    d = desk()
    limits = LIMITS.model_copy(update={"max_position_value": 1_040.0})
    d.place(BUY, 5.0, limits=limits)
    d.tick(100.0)
    d.place(BUY, 5.0, limits=limits, order_type=STOP, stop_price=106.0)  # 10 at 100: 1,000
    d.tick(105.0)
    d.tick(107.0)  # 10 at 105 would be worth 1,050: refused at the trigger
    assert d.filled() == [(BUY, 5.0, 100.0)]
    assert "maxPositionValue" in (d.cancelled()[0][1] or "")


def test_a_market_entry_counts_the_resting_entries_too() -> None:
    d = desk()
    limits = LIMITS.model_copy(update={"max_position_value": 1_500.0})
    d.place(BUY, limits=limits, order_type=LIMIT, limit_price=90.0)
    d.place(BUY, limits=limits)  # 10 + 10 at 100 would be 2,000
    assert "maxPositionValue" in (d.cancelled()[0][1] or "")


def test_stopping_a_strategy_cancels_its_resting_orders() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=90.0)
    d.place(SELL, order_type=STOP, stop_price=80.0)
    d.pipeline.cancel_strategy("s1", "strategy stopped")
    assert d.pipeline.open_orders("s1") == []
    assert [reason for _, reason in d.cancelled()] == ["strategy stopped"] * 2


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        (OrderTerms(LIMIT), "a LIMIT order needs limit price"),
        (OrderTerms(STOP, limit_price=1.0, stop_price=2.0), "a STOP order takes no limit price"),
        (OrderTerms(LIMIT, limit_price=-1.0), "limit must be a positive finite price"),
        (OrderTerms(bracket=Bracket(stop_loss=101.0)), "stop_loss 101 must be below"),
        (OrderTerms(bracket=Bracket(take_profit=99.0)), "take_profit 99 must be above"),
        (OrderTerms(bracket=Bracket(trailing=Trailing(1.5, True))), "trailing must be between"),
    ],
)
def test_bad_terms_say_what_is_wrong(terms: OrderTerms, problem: str) -> None:
    found = terms_problem(terms, BUY, 100.0)
    assert found is not None and found.startswith(problem)


def test_a_limit_buy_above_the_market_and_a_stop_buy_below_it_are_valid() -> None:
    assert terms_problem(OrderTerms(LIMIT, limit_price=110.0), BUY, 100.0) is None
    assert terms_problem(OrderTerms(STOP, stop_price=90.0), BUY, 100.0) is None


def test_pausing_cancels_resting_entries_and_keeps_exits() -> None:
    d = desk()
    d.place(BUY, bracket=Bracket(stop_loss=95.0))
    d.tick(100.0)
    entry = d.place(BUY, order_type=LIMIT, limit_price=90.0)
    d.pipeline.cancel_entries("s1", "strategy paused")
    assert [o.purpose for o in d.pipeline.open_orders("s1")] == [OrderPurpose.STOP_LOSS]
    assert d.cancelled() == [(entry, "strategy paused")]


def test_replace_refuses_a_price_the_order_does_not_have() -> None:
    d = desk()
    order_id = d.place(BUY, order_type=LIMIT, limit_price=95.0)
    assert not d.pipeline.replace("s1", order_id, stop_price=99.0)
    assert d.pipeline.open_orders("s1")[0].stop_price is None


# --------------------------------------------------------------------------- lifecycle events


def lifecycle(d: Desk) -> list[tuple[str, str, str | None]]:
    """(event, order id, reason or purpose) of each lifecycle event, in order."""
    out: list[tuple[str, str, str | None]] = []
    for event in d.events.lifecycle_events:
        detail = getattr(event, "reason", None) or event.order.purpose.value
        out.append((type(event).__name__, event.order.id, detail))
    return out


def test_a_bracket_announces_its_entry_its_exits_the_trigger_and_the_oco_cancel() -> None:
    d = desk()
    entry = d.place(BUY, order_type=LIMIT, limit_price=99.0,
                    bracket=Bracket(stop_loss=95.0, take_profit=105.0))  # fmt: skip
    d.tick(99.0)
    stop, target = d.pipeline.open_orders("s1")
    d.tick(106.0)
    assert lifecycle(d) == [
        ("OrderAccepted", entry, "signal"),
        ("OrderTriggered", entry, "signal"),
        ("OrderAccepted", stop.id, "stop_loss"),
        ("OrderAccepted", target.id, "take_profit"),
        ("OrderTriggered", target.id, "take_profit"),
        ("OrderCancelled", stop.id, "the other exit of its bracket filled"),
    ]
    accepted = d.events.lifecycle_events[2]
    assert accepted.order.parent_id == entry and accepted.order.stop_price == 95.0
    triggered = d.events.lifecycle_events[4]
    assert isinstance(triggered, OrderTriggered) and triggered.price == 106.0


def test_replace_expiry_and_ioc_are_announced() -> None:
    d = desk()
    day = d.place(BUY, order_type=LIMIT, limit_price=90.0, time_in_force=TimeInForce.DAY)
    ioc = d.place(BUY, order_type=LIMIT, limit_price=80.0, time_in_force=TimeInForce.IOC)
    assert d.pipeline.replace("s1", day, limit_price=91.0)
    d.tick(100.0)
    d.tick(100.0, dt=DAY_SECONDS)
    assert lifecycle(d) == [
        ("OrderAccepted", day, "signal"),
        ("OrderAccepted", ioc, "signal"),
        ("OrderReplaced", day, "signal"),
        ("OrderCancelled", ioc, "IOC: the first price after it did not fill it"),
        ("OrderExpired", day, "expired: a DAY order at the end of its UTC day"),
    ]
    replaced = d.events.lifecycle_events[2]
    assert isinstance(replaced, OrderReplaced) and replaced.previous.limit_price == 90.0
    assert replaced.order.limit_price == 91.0


def test_a_trailing_stop_is_announced_at_the_stop_it_waits_for() -> None:
    d = desk()
    d.place(BUY, bracket=Bracket(trailing=Trailing(2.0)))
    d.tick(100.0)
    d.tick(104.0)
    (stop,) = d.pipeline.open_orders("s1")
    assert d.pipeline.cancel_by_id(stop.id, "by hand") == [stop]
    cancelled = d.events.lifecycle_events[-1]
    assert type(cancelled).__name__ == "OrderCancelled" and cancelled.order.stop_price == 102.0


def test_cancelling_a_filled_entry_by_id_cancels_the_exits_it_armed() -> None:
    d = desk()
    entry = d.place(BUY, bracket=Bracket(stop_loss=95.0, take_profit=110.0))
    d.tick(100.0)
    exits = d.pipeline.open_orders("s1")
    assert [o.id for o in d.pipeline.cancel_by_id(entry, "by hand")] == [o.id for o in exits]
    assert d.pipeline.open_orders("s1") == [] and d.held == 10.0
    assert d.pipeline.cancel_by_id(entry, "by hand") == []
    assert d.pipeline.cancel_by_id("order_999", "by hand") == []


def test_a_restored_order_rests_again_with_its_day_and_its_bracket() -> None:
    d = desk()
    placed = d.place(BUY, order_type=LIMIT, limit_price=99.0, time_in_force=TimeInForce.DAY,
                     bracket=Bracket(take_profit=105.0))  # fmt: skip
    (order,) = d.pipeline.open_orders("s1")
    fresh = desk()
    fresh.pipeline.restore(order, LIMITS)
    assert fresh.pipeline.open_orders("s1") == [order] and fresh.events.lifecycle_events == []
    fresh.tick(99.0)
    assert fresh.filled() == [(BUY, 10.0, 99.0)]
    (target,) = fresh.pipeline.open_orders("s1")
    assert target.parent_id == placed and target.limit_price == 105.0
    # The DAY order's day is the one it was placed on, not the restart's.
    late = desk()
    late.pipeline.restore(order, LIMITS)
    late.tick(100.0, dt=DAY_SECONDS)
    assert late.cancelled() == [(placed, "expired: a DAY order at the end of its UTC day")]
