"""The event bus: delivery by topic, resolved once per event type."""

from __future__ import annotations

from orchestrator.bus import EventBus
from orchestrator.model.events import Event, ExecutionStatus, ExecutionStatusChanged, QuoteUpdated
from orchestrator.model.market import Tick
from tests.support import START


def quote(price: float) -> QuoteUpdated:
    return QuoteUpdated(Tick("AAPL", price, 1.0, START))


def test_a_subscriber_added_after_a_type_was_resolved_receives_it_and_leaves_cleanly() -> None:
    bus = EventBus()
    first: list[Event] = []
    later: list[Event] = []
    bus.subscribe(first.append)
    bus.publish(quote(1.0))  # resolves QuoteUpdated's handlers
    bus.subscribe(later.append, [QuoteUpdated.topic])
    bus.publish(quote(2.0))
    bus.unsubscribe(later.append)
    bus.publish(quote(3.0))
    assert first == [quote(1.0), quote(2.0), quote(3.0)]
    assert later == [quote(2.0)]


def test_an_event_type_nobody_subscribed_to_has_no_handlers() -> None:
    bus = EventBus()
    quotes: list[Event] = []
    bus.subscribe(quotes.append, [QuoteUpdated.topic])
    bus.publish(ExecutionStatusChanged(ExecutionStatus.RUNNING, START))
    assert bus.handlers_of(ExecutionStatusChanged) == ()
    assert bus.handlers_of(QuoteUpdated) == (quotes.append,)
    assert quotes == []
    assert bus.published == 1


def test_each_type_is_counted_heard_or_not_and_the_count_outlives_subscriptions() -> None:
    bus = EventBus()
    quotes: list[Event] = []
    bus.publish(quote(1.0))  # nobody hears it: counted all the same
    bus.subscribe(quotes.append, [QuoteUpdated.topic])
    bus.publish(quote(2.0))
    bus.unsubscribe(quotes.append)
    bus.publish(quote(3.0))
    bus.publish(ExecutionStatusChanged(ExecutionStatus.RUNNING, START))
    assert quotes == [quote(2.0)]
    assert bus.published_of(QuoteUpdated) == 3
    assert bus.published_of(ExecutionStatusChanged) == 1
    assert bus.published == 4
