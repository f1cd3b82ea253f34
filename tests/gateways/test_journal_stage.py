"""The journal stage: what the journal stores goes through the writer; another event goes
past it only when nothing there could be overtaken, and nowhere when nobody hears it;
market data never waits."""

from __future__ import annotations

from gateways.journal_stage import MARKET_DATA_TOPICS, JournalStage
from orchestrator.bus import EventBus
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    HaltSource,
    KillSwitchChanged,
    QuoteUpdated,
    Topic,
)
from orchestrator.model.market import Tick
from tests.support import START


class HoldingWriter:
    """Holds what it is given until ``commit``, then delivers it, as the writer does."""

    def __init__(self, outbox: EventBus) -> None:
        self._outbox = outbox
        self.held: list[Event] = []
        self.submitted: list[Event] = []

    @property
    def pending(self) -> int:
        return len(self.held)

    def submit(self, record: Event) -> None:
        self.submitted.append(record)
        self.held.append(record)

    def commit(self) -> None:
        for event in self.held:
            self._outbox.publish(event)
        self.held.clear()


def quote(price: float) -> QuoteUpdated:
    return QuoteUpdated(Tick("AAPL", price, 1.0, START))


def stage_with(
    heard: set[Topic], unheard: list[Topic] | None = None
) -> tuple[EventBus, JournalStage, HoldingWriter, list[Event]]:
    """A stage attached to a core bus, the outbox to ``delivered``, and market data
    taken from the bus to ``delivered`` as the edges' fan-out takes it; the topics of
    events nobody hears to ``unheard``."""
    bus, outbox = EventBus(), EventBus()
    delivered: list[Event] = []
    outbox.subscribe(delivered.append)
    writer = HoldingWriter(outbox)
    counted = unheard if unheard is not None else []
    stage = JournalStage(writer, outbox, heard.__contains__, counted.append)
    stage.attach(bus)
    bus.subscribe(delivered.append, MARKET_DATA_TOPICS)
    return bus, stage, writer, delivered


def test_a_quote_never_waits_and_an_unstored_event_waits_behind_a_pending_commit() -> None:
    """The writer's rule (orchestrator.journal.writer): market data is told at once, ahead
    of the commits in flight; another event the journal does not store keeps its place."""
    heard = {Topic.RISK_KILL_SWITCH, Topic.EXECUTION_STATUS}
    bus, stage, writer, delivered = stage_with(heard)
    halt = KillSwitchChanged(True, "maintenance", True, HaltSource.COMMAND, START)  # stored
    later = ExecutionStatusChanged(ExecutionStatus.STOPPED, START, "maintenance")  # not stored
    bus.publish(quote(1.0))
    bus.publish(halt)
    bus.publish(quote(2.0))
    bus.publish(later)
    assert delivered == [quote(1.0), quote(2.0)]
    writer.commit()
    bus.publish(quote(3.0))
    bus.publish(later)  # nothing pending now: straight on
    assert delivered == [quote(1.0), quote(2.0), halt, later, quote(3.0), later]
    assert writer.submitted == [halt, later]  # never a quote: they skip the stage
    assert stage.passed == 1


def test_an_event_nobody_hears_goes_nowhere_and_a_stored_event_always_to_the_writer() -> None:
    """Nor does it wait behind a pending commit: it is only counted (for the NNG
    publisher's numbers), at once."""
    unheard: list[Topic] = []
    bus, stage, writer, delivered = stage_with(set(), unheard)
    halt = KillSwitchChanged(True, "maintenance", True, HaltSource.COMMAND, START)
    bus.publish(ExecutionStatusChanged(ExecutionStatus.STOPPED, START, "maintenance"))
    bus.publish(halt)
    writer.commit()
    assert delivered == [halt]
    assert writer.submitted == [halt]
    assert stage.unheard == 1
    assert unheard == [Topic.EXECUTION_STATUS]
