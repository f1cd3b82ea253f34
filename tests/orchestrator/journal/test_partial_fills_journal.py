"""Partial fills across a restart (docs/orders.md#partial-fills): the journal restores a
resting order's remainder, resolves the rest of an order at the broker, and no order
ever fills more than its quantity in total. The events come from a real execution
service (pipeline, guardian, paper broker) on a bus, and go to the journal as the
daemon's writer hands them over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.bus import EventBus
from orchestrator.journal.store import RESTART_FILL_PREFIX, Journal
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import BUY, FILLED, Order, OrderTerms, OrderType, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import RiskGuardian
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import with_terms
from orchestrator.trading.portfolio import PortfolioBook

T0 = 1_700_006_400.0
LIMITS = StrategyRunConfig(
    symbols=("AAPL",), max_position_value=100_000.0, max_orders_per_minute=100,
    stop_loss_percentage=0.0,
)  # fmt: skip


class Run:
    """One daemon run on a journal: its execution service, every event written."""

    def __init__(
        self, journal: Journal, clock: ManualClock, sink: Callable[[Event], None] | None = None
    ) -> None:
        self.clock, self.journal = clock, journal
        bus, book = EventBus(), journal.rebuild_book(PortfolioBook())
        ids = SequentialIds(journal.id_watermarks())
        guardian = RiskGuardian(RiskConfig(), book, bus, clock, ids)
        broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0, partial_fills=True), clock, ids)
        self.execution = ExecutionService(
            bus, clock, book, broker, guardian, ids, partial_fills=True
        )
        self.ids = ids
        bus.subscribe(sink or self._write)

    def _write(self, event: Event) -> None:
        self.journal.write([event])

    def place(self, quantity: float, **terms: object) -> str:
        self.tick(100.0, 50.0)  # a price to value it at
        order = Order(self.ids("order"), "s1", "AAPL", BUY, quantity, self.clock.now())
        order = with_terms(order, OrderTerms(**terms))  # type: ignore[arg-type]
        assert self.execution.submit(order, LIMITS)
        return order.id

    def tick(self, price: float, size: float) -> None:
        self.clock.advance(1.0)
        self.execution.on_tick(Tick("AAPL", price, size, self.clock.now()))


def filled_total(journal: Journal, order_id: str) -> float:
    return sum(f.quantity for f in journal.fills() if f.order_id == order_id and f.status is FILLED)


def test_a_restart_restores_a_resting_orders_remainder_and_it_never_fills_more(
    tmp_path: Path,
) -> None:
    clock, path = ManualClock(T0), tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        run = Run(journal, clock)
        limit = run.place(10.0, order_type=OrderType.LIMIT, limit_price=98.0)
        run.tick(97.0, 4.0)
        run.tick(97.0, 3.0)
    with Journal.open(path) as journal:
        assert journal.resolve_unfilled("daemon restarted", clock.now()) == []
        [rest] = journal.resting_orders()
        assert (rest.id, rest.quantity, rest.order_type) == (limit, 3.0, OrderType.LIMIT)
        assert journal.filled_quantities() == {limit: 7.0}  # what open_orders shows filled
        run = Run(journal, clock)
        run.execution.restore_resting(rest, LIMITS)
        run.tick(97.0, 2.0)
    with Journal.open(path) as journal:
        [rest] = journal.resting_orders()
        assert rest.quantity == 1.0
        assert journal.filled_quantities() == {limit: 9.0}
        run = Run(journal, clock)
        run.execution.restore_resting(rest, LIMITS)
        run.tick(96.0, 50.0)  # more than is left: the last part takes only the rest
        run.tick(95.0, 50.0)
        assert journal.resting_orders() == []
        assert journal.filled_quantities() == {}  # settled: nothing partly open
        assert filled_total(journal, limit) == 10.0
        assert [f.remaining for f in journal.fills() if f.order_id == limit] == [6, 3, 1, 0]
        assert journal.rebuild_book().quantity("s1", "AAPL") == 10.0


def test_a_parts_fill_committed_after_the_orders_last_event_says_what_rests(
    tmp_path: Path,
) -> None:
    """A crash between a part's trade and its order_partially_filled: the fill is the
    truth, as for a whole fill whose closing event was lost."""
    clock, path = ManualClock(T0), tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        written: list[Event] = []
        run = Run(journal, clock, written.append)  # written below, as far as the crash let it
        run.place(10.0, order_type=OrderType.LIMIT, limit_price=98.0)
        run.tick(97.0, 4.0)
        kinds = [type(e).__name__ for e in written]
        assert kinds == ["OrderAccepted", "TradeExecuted", "OrderPartiallyFilled"]
        journal.write(written[:2])  # the partially_filled event is lost with the crash
    with Journal.open(path) as journal:
        [rest] = journal.resting_orders()
        assert rest.quantity == 6.0


def test_the_rest_of_a_market_order_at_the_broker_is_resolved_as_rejected(
    tmp_path: Path,
) -> None:
    clock, path = ManualClock(T0), tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        run = Run(journal, clock)
        market = run.place(10.0)
        run.tick(100.0, 4.0)
    with Journal.open(path) as journal:
        [resolved] = journal.resolve_unfilled("daemon restarted", clock.now())
        assert (resolved.id, resolved.quantity, resolved.status) == (
            RESTART_FILL_PREFIX + market,
            6.0,
            TradeStatus.REJECTED,
        )
        assert journal.resolve_unfilled("again", clock.now()) == []
        assert journal.filled_quantities() == {}
        assert filled_total(journal, market) == 4.0
        assert journal.rebuild_book().quantity("s1", "AAPL") == 4.0
