"""The core bus's events on their way to the outbox: through the journal writer when it
must commit them first, straight on when it need not.

The writer commits what it stores (:func:`orchestrator.journal.store.journaled`) and
hands every event to the outbox after the commit of the batch it came in, in order.
Another event the journal does not store goes to the outbox at once when the writer
holds nothing (nothing can be overtaken), and waits its turn in the writer behind a
pending commit, so the outbox keeps the bus's order for it. A quote or a bar never
waits: the writer would tell it at once anyway (market data is not held behind a
commit, ``orchestrator.journal.writer``), and nothing of it is stored, so this stage
does not take it at all: the edges' fan-out takes it from the bus itself, while
anyone hears it (``gateways.fanout.Fanout.follow_market_data``), the hops through
this stage and the outbox saved on every tick. An event that nobody on the outbox
hears is not delivered at all, only counted (``unheard``: the NNG publisher, deaf while
no subscriber is connected, still numbers it; a strategy's indicators, once a bar, are
most of these in a daemon nobody watches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from orchestrator.bus import EventBus
from orchestrator.journal.store import journaled
from orchestrator.journal.writer import MARKET_DATA
from orchestrator.model.events import Event, Topic

MARKET_DATA_TOPICS = frozenset(kind.topic for kind in MARKET_DATA)


class Writer(Protocol):
    """What this stage needs of :class:`~orchestrator.journal.writer.JournalWriter`."""

    @property
    def pending(self) -> int: ...

    def submit(self, record: Event) -> None: ...


class JournalStage:
    def __init__(
        self,
        writer: Writer,
        outbox: EventBus,
        heard: Callable[[Topic], bool],
        unheard: Callable[[Topic], None] = lambda topic: None,
    ) -> None:
        self._writer = writer
        self._outbox = outbox
        self._heard = heard
        self._count_unheard = unheard
        self.passed = 0
        """Events that went to the outbox without the writer."""
        self.unheard = 0
        """Events dropped here: the journal does not store them and nobody hears them."""

    def attach(self, bus: EventBus) -> None:
        """Take ``bus``'s events but market data through :meth:`submit`."""
        bus.subscribe(self.submit, (topic for topic in Topic if topic not in MARKET_DATA_TOPICS))

    def submit(self, event: Event) -> None:
        """Bus handler: ``event`` to the writer, or past it (see the module docstring)."""
        if journaled(event):
            self._writer.submit(event)
        elif not self._heard(event.topic):
            self.unheard += 1
            self._count_unheard(event.topic)
        elif self._writer.pending:
            self._writer.submit(event)
        else:
            self.passed += 1
            self._outbox.publish(event)
