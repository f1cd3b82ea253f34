"""A refused signal is remembered: the same signal is held back while the refusal's
cause holds, and sent again when the position, the signal or the limit changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event, HaltSource, OrderLifecycle, OrderRejected, RiskLimit
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import FILLED, Fill, Order, OrderPurpose, Side
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import OrderPipeline
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

T0 = 1_700_000_000.0
LIMITS = StrategyRunConfig(symbols=("AAPL",), max_position_value=1_000, stop_loss_percentage=0)


@dataclass
class Recorder:
    """The pipeline's owner: keeps what it hears."""

    fills: list[Fill] = field(default_factory=list)

    def accepted(self, order: Order) -> None:
        return None

    def settled(
        self, fill: Fill, change: PositionChange | None, limits: StrategyRunConfig | None
    ) -> None:
        self.fills.append(fill)

    def lifecycle(self, event: OrderLifecycle) -> None:
        return None

    def engage_kill_switch(self, halt: Halt) -> None:
        return None


@dataclass
class Desk:
    clock: ManualClock
    pipeline: OrderPipeline
    owner: Recorder
    refusals: list[OrderRejected]
    ids: SequentialIds

    def signal(
        self,
        quantity: float,
        side: Side = Side.BUY,
        limits: StrategyRunConfig = LIMITS,
        sized: bool = False,
    ) -> str:
        """What the runtime and the backtest do with a signal of ``quantity`` (one the
        runtime ``sized`` asked for no quantity): 'held back', 'sent' or 'refused'."""
        asked = None if sized else quantity
        if self.pipeline.holds_back(("s1", "AAPL", side), asked, limits):
            return "held back"
        order = Order(
            self.ids("order"), "s1", "AAPL", side, quantity, self.clock.now(), OrderPurpose.SIGNAL
        )
        return "sent" if self.pipeline.submit_signal(order, limits, 100.0, asked) else "refused"

    def price(self, price: float) -> None:
        self.clock.advance(1.0)
        self.pipeline.on_tick(Tick("AAPL", price, 1.0, self.clock.now()))


def desk(**risk: object) -> Desk:
    clock, bus, book, ids = ManualClock(T0), EventBus(), PortfolioBook(), SequentialIds()
    refusals: list[OrderRejected] = []

    def keep(event: Event) -> None:
        if isinstance(event, OrderRejected):
            refusals.append(event)

    bus.subscribe(keep)
    guardian = RiskGuardian(RiskConfig.model_validate(risk), book, bus, clock, ids)
    broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0), clock, ids)
    owner = Recorder()
    pipeline = OrderPipeline(book, guardian, broker, clock, ids, owner)
    made = Desk(clock, pipeline, owner, refusals, ids)
    made.price(100.0)
    return made


def test_an_entry_over_the_position_limit_is_refused_once_then_held_back() -> None:
    desk_ = desk()
    answers = []
    for price in (100.0, 100.5, 99.5, 100.0):
        answers.append(desk_.signal(20.0))
        desk_.price(price)
    assert answers == ["refused", "held back", "held back", "held back"]
    assert [r.limit for r in desk_.refusals] == [RiskLimit.MAX_POSITION_VALUE]


def test_another_signal_or_other_limits_are_sent_again() -> None:
    desk_ = desk()
    assert desk_.signal(20.0) == "refused"
    assert desk_.signal(15.0) == "refused"  # another quantity asked
    assert desk_.signal(15.0) == "held back"
    wider = LIMITS.model_copy(update={"max_position_value": 5_000})
    assert desk_.signal(15.0, limits=wider) == "sent"


def test_a_fill_forgets_the_refusal() -> None:
    desk_ = desk()
    assert desk_.signal(20.0) == "refused"
    assert desk_.signal(5.0) == "sent"  # a position the limit allows: 500 of 1,000
    desk_.price(100.0)
    assert [f.status for f in desk_.owner.fills if f.status is FILLED] == [FILLED]
    assert desk_.signal(20.0) == "refused"  # asked again from a new position


def test_a_sized_signal_is_remembered_by_what_it_asked_not_by_its_size() -> None:
    desk_ = desk(max_gross_exposure=500)
    assert desk_.signal(9.0, sized=True) == "refused"  # 900 over the gross limit
    # The next price sizes it to another quantity; the signal is the same.
    assert desk_.signal(8.0, sized=True) == "held back"


def test_the_kill_switch_refusal_lasts_until_it_is_released() -> None:
    desk_ = desk()
    halt = Halt("test", False, HaltSource.COMMAND, T0)
    desk_.pipeline.engage(halt)
    assert desk_.signal(5.0) == "refused"
    assert desk_.signal(5.0) == "held back"
    desk_.pipeline.halt = None
    assert desk_.signal(5.0) == "sent"


def test_a_rate_limit_refusal_is_held_back_until_the_window_has_room() -> None:
    desk_ = desk()
    limits = LIMITS.model_copy(update={"max_orders_per_minute": 1, "max_position_value": 10_000})
    assert desk_.signal(5.0, limits=limits) == "sent"
    desk_.price(100.0)
    assert desk_.signal(5.0, limits=limits) == "refused"  # one order a minute
    assert desk_.signal(5.0, limits=limits) == "held back"
    desk_.clock.advance(10.0)
    assert desk_.signal(5.0, limits=limits) == "held back"
    desk_.clock.advance(60.0)  # the first order has left the minute's window
    assert desk_.signal(5.0, limits=limits) == "sent"


def test_a_refusal_for_want_of_a_price_is_not_remembered() -> None:
    clock, bus, book, ids = ManualClock(T0), EventBus(), PortfolioBook(), SequentialIds()
    guardian = RiskGuardian(RiskConfig(), book, bus, clock, ids)
    broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0), clock, ids)
    pipeline = OrderPipeline(book, guardian, broker, clock, ids, Recorder())
    order = Order("o1", "s1", "AAPL", Side.BUY, 5.0, T0, OrderPurpose.SIGNAL)
    assert not pipeline.submit_signal(order, LIMITS, 100.0, 5.0)
    assert not pipeline.holds_back(("s1", "AAPL", Side.BUY), 5.0, LIMITS)
