"""Partial fills (``broker.partial_fills``, docs/orders.md#partial-fills): a tick fills
at most its size of an order, resting or at the broker; the rest rests (or waits) on.
The pipeline runs with the live risk guardian and the paper broker, as in
test_resting.py; each tick here says its size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import (
    HaltSource,
    OrderCancelled,
    OrderLifecycle,
    OrderPartiallyFilled,
    OrderReplaced,
    OrderTriggered,
)
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
)
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import OrderPipeline, with_terms
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

E = TypeVar("E")
T0 = 1_700_006_400.0
LIMITS = StrategyRunConfig(
    symbols=("AAPL",), max_position_value=10_000.0, max_orders_per_minute=100,
    stop_loss_percentage=0.0,
)  # fmt: skip
LIMIT, STOP, STOP_LIMIT, MARKET = (
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
    OrderType.MARKET,
)


class Events:
    """The pipeline's owner: what was sent, settled and announced."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.lifecycle_events: list[OrderLifecycle] = []
        self.submitted: list[Order] = []
        self.parts: list[Order] = []
        self.pipeline: OrderPipeline | None = None

    def accepted(self, order: Order) -> None:
        self.submitted.append(order)

    def part(self, order: Order) -> None:
        self.parts.append(order)

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

    def tick(self, price: float, size: float) -> None:
        self.clock.advance(1.0)
        self.pipeline.on_tick(Tick("AAPL", price, size, self.clock.now()))

    def filled(self) -> list[tuple[Side, float, float, float]]:
        """(side, quantity, price, remaining) of every fill, in order."""
        return [
            (f.side, f.quantity, f.price, f.remaining)
            for f in self.events.fills
            if f.status is FILLED
        ]

    def rejected(self) -> list[tuple[float, str | None]]:
        return [
            (f.quantity, f.reason) for f in self.events.fills if f.status is TradeStatus.REJECTED
        ]

    def resting(self) -> list[tuple[OrderType, float]]:
        return [(o.order_type, o.quantity) for o in self.pipeline.open_orders("s1")]

    def of_kind(self, kind: type[E]) -> list[E]:
        return [e for e in self.events.lifecycle_events if isinstance(e, kind)]

    @property
    def held(self) -> float:
        return self.pipeline.book.quantity("s1", "AAPL")


def desk(partial_fills: bool = True, **risk: object) -> Desk:
    clock, bus, book, ids = ManualClock(T0 + 3600), EventBus(), PortfolioBook(), SequentialIds()
    guardian = RiskGuardian(RiskConfig.model_validate(risk), book, bus, clock, ids)
    config = PaperBrokerConfig(slippage_bps=0.0, partial_fills=partial_fills)
    broker = PaperBroker(config, clock, ids)
    events = Events()
    pipeline = OrderPipeline(
        book, guardian, broker, clock, ids, events, partial_fills=partial_fills
    )
    events.pipeline = pipeline
    made = Desk(clock, pipeline, events, ids)
    made.tick(100.0, 50.0)  # the market's price before anything is placed
    return made


# --------------------------------------------------------------------------- limits


def test_a_limit_fills_at_most_each_ticks_size_and_the_rest_rests_on() -> None:
    d = desk()
    order_id = d.place(BUY, order_type=LIMIT, limit_price=98.0)
    d.tick(97.0, 4.0)
    assert d.filled() == [(BUY, 4.0, 97.0, 6.0)]
    assert d.resting() == [(LIMIT, 6.0)]
    [part] = d.of_kind(OrderPartiallyFilled)
    assert (part.order.id, part.order.quantity, part.filled_quantity, part.fill_price) == (
        order_id,
        6.0,
        4.0,
        97.0,
    )
    d.tick(99.0, 100.0)  # above the limit: nothing
    d.tick(97.5, 4.0)
    d.tick(96.0, 4.0)  # only 2 are left: the last part takes the order off the book
    assert d.filled() == [
        (BUY, 4.0, 97.0, 6.0),
        (BUY, 4.0, 97.5, 2.0),
        (BUY, 2.0, 96.0, 0.0),
    ]
    assert d.resting() == [] and d.held == 10.0
    assert [e.order.quantity for e in d.of_kind(OrderTriggered)] == [2.0]
    # The parts are filled at once; only the last goes to the broker as a submission.
    assert [o.quantity for o in d.events.parts] == [4.0, 4.0]
    assert [o.quantity for o in d.events.submitted] == [2.0]


def test_a_tick_of_unknown_size_fills_the_whole_order() -> None:
    d = desk()
    d.place(BUY, order_type=LIMIT, limit_price=98.0)
    d.tick(97.0, 0.0)
    assert d.filled() == [(BUY, 10.0, 97.0, 0.0)] and d.resting() == []


def test_with_the_option_off_a_small_tick_fills_the_whole_order() -> None:
    d = desk(partial_fills=False)
    d.place(BUY, order_type=LIMIT, limit_price=98.0)
    market = d.place(SELL, 3.0)
    d.tick(97.0, 1.0)
    assert d.filled() == [(SELL, 3.0, 97.0, 0.0), (BUY, 10.0, 97.0, 0.0)]
    assert d.of_kind(OrderPartiallyFilled) == [] and market


# --------------------------------------------------------------------------- market orders


def test_a_market_order_fills_across_ticks_and_counts_its_rest_as_pending() -> None:
    d = desk()
    d.place(BUY, 10.0)
    assert d.pipeline.projected_position("s1", "AAPL") == 10.0
    d.tick(100.0, 3.0)
    assert d.held == 3.0 and d.pipeline.projected_position("s1", "AAPL") == 10.0
    d.tick(101.0, 3.0)
    d.tick(102.0, 30.0)
    assert d.filled() == [
        (BUY, 3.0, 100.0, 7.0),
        (BUY, 3.0, 101.0, 4.0),
        (BUY, 4.0, 102.0, 0.0),
    ]
    assert d.held == 10.0 and d.pipeline.projected_position("s1", "AAPL") == 10.0
    assert d.pipeline.broker.pending_count == 0
    assert [o.quantity for o in d.events.submitted] == [10.0]


def test_a_market_orders_rest_times_out_as_a_rejection_of_the_rest() -> None:
    d = desk()
    d.place(BUY, 10.0)
    d.tick(100.0, 4.0)
    d.clock.advance(60.0)  # longer than fill_timeout_seconds
    d.pipeline.expire()
    assert d.rejected() == [(6.0, "no price for AAPL within 5.0 s")]
    assert d.pipeline.projected_position("s1", "AAPL") == 4.0 == d.held


# --------------------------------------------------------------------------- stops


def test_a_triggered_stops_rest_rests_as_a_market_order_and_fills_at_the_next_ticks() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=STOP, stop_price=101.0)
    d.tick(101.5, 4.0)
    assert d.filled() == [(BUY, 4.0, 101.5, 6.0)]
    assert d.resting() == [(MARKET, 6.0)]  # what it became: a stop no longer waits
    assert d.of_kind(OrderPartiallyFilled)[0].order.stop_price is None
    d.tick(99.0, 4.0)  # below the stop, but the rest is a market order now
    d.tick(98.0, 4.0)
    assert d.filled()[1:] == [(BUY, 4.0, 99.0, 2.0), (BUY, 2.0, 98.0, 0.0)]


def test_a_triggered_stop_limits_rest_rests_as_a_limit() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=STOP_LIMIT, stop_price=101.0, limit_price=101.5)
    d.tick(101.2, 4.0)
    assert d.filled() == [(BUY, 4.0, 101.2, 6.0)] and d.resting() == [(LIMIT, 6.0)]
    d.tick(102.0, 10.0)  # above its limit: waits
    d.tick(100.5, 10.0)
    assert d.filled()[1:] == [(BUY, 6.0, 100.5, 0.0)]


# --------------------------------------------------------------------------- brackets


def test_a_bracket_entrys_exits_are_armed_for_its_first_part_and_grow_with_the_next() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0,
            bracket=Bracket(stop_loss=95.0, take_profit=105.0))  # fmt: skip
    d.tick(97.0, 4.0)
    exits = d.pipeline.open_orders("s1")
    assert sorted((o.purpose, o.quantity) for o in exits if o.parent_id) == [
        (OrderPurpose.STOP_LOSS, 4.0),
        (OrderPurpose.TAKE_PROFIT, 4.0),
    ]
    d.tick(97.0, 4.0)
    d.tick(97.0, 4.0)
    assert d.held == 10.0 and d.resting() == [(STOP, 10.0), (LIMIT, 10.0)]
    grown = d.of_kind(OrderReplaced)
    assert [(e.previous.quantity, e.order.quantity) for e in grown] == [
        (4.0, 8.0),
        (4.0, 8.0),
        (8.0, 10.0),
        (8.0, 10.0),
    ]


def test_a_part_of_the_target_keeps_the_stop_and_the_last_part_cancels_it() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0,
            bracket=Bracket(stop_loss=95.0, take_profit=105.0))  # fmt: skip
    d.tick(97.0, 100.0)
    d.tick(105.5, 6.0)  # the target fills 6 of 10: the stop still protects the rest
    assert d.held == 4.0
    assert d.resting() == [(STOP, 10.0), (LIMIT, 4.0)]
    d.tick(106.0, 6.0)
    assert d.held == 0.0 and d.resting() == []
    assert d.rejected() == [(10.0, "the other exit of its bracket filled")]


def test_a_protective_stop_is_cut_to_the_position_and_its_rest_fills_at_market() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0,
            bracket=Bracket(stop_loss=95.0))  # fmt: skip
    d.tick(97.0, 100.0)
    d.tick(94.0, 4.0)
    assert d.held == 6.0 and d.resting() == [(MARKET, 6.0)]
    d.tick(93.0, 100.0)
    assert d.held == 0.0 and d.resting() == []
    assert [f[1] for f in d.filled()] == [10.0, 4.0, 6.0]


# --------------------------------------------------- time in force, cancels, risk


def test_an_ioc_fills_what_the_first_tick_allows_and_cancels_the_rest() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0, time_in_force=TimeInForce.IOC)
    d.tick(97.0, 4.0)
    assert d.filled() == [(BUY, 4.0, 97.0, 6.0)] and d.resting() == []
    assert d.rejected() == [(6.0, "IOC: the first price after it filled only part of it")]


def test_a_cancel_cancels_the_rest() -> None:
    d = desk()
    order_id = d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0)
    d.tick(97.0, 4.0)
    assert d.pipeline.cancel("s1", order_id, "cancelled by the strategy")
    assert d.rejected() == [(6.0, "cancelled by the strategy")]
    [cancelled] = d.of_kind(OrderCancelled)
    assert cancelled.order.quantity == 6.0 and d.held == 4.0


def test_the_kill_switch_cancels_an_entrys_rest_and_keeps_an_exits() -> None:
    d = desk()
    d.place(BUY, 10.0, order_type=LIMIT, limit_price=98.0)
    d.place(SELL, 10.0, order_type=LIMIT, limit_price=110.0)  # an entry too: flat, it opens
    d.tick(97.0, 4.0)
    d.pipeline.engage(Halt("test", False, HaltSource.COMMAND, d.clock.now()))
    assert sorted(d.rejected()) == [
        (6.0, "trading is halted (test): resting entries are cancelled"),
        (10.0, "trading is halted (test): resting entries are cancelled"),
    ]
    assert d.resting() == []


def test_the_guardian_counts_the_rest_as_resting_exposure() -> None:
    d = desk()
    limits = LIMITS.model_copy(update={"max_position_value": 1_000.0})
    d.place(BUY, 10.0, limits, order_type=LIMIT, limit_price=98.0)
    d.tick(97.0, 4.0)  # 4 held, 6 resting: 10 at ~97 is the whole 1,000
    assert d.pipeline.resting.entries_quantity("s1", "AAPL", BUY) == 6.0
    d.place(BUY, 1.0, limits, order_type=LIMIT, limit_price=96.0)
    assert len(d.resting()) == 1 and "maxPositionValue" in (d.rejected()[0][1] or "")
    d.tick(97.0, 100.0)
    assert d.held == 10.0
