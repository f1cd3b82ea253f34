"""The edges' side of the outbox: each committed event, wrapped once, to every sink
that hears its topic.

The journal delivers what it committed on the outbox; :class:`Fanout` is its one
subscriber for the edges. It wraps each event in one :class:`Outgoing`, so the
three servers, the dgbit endpoints and the NNG publisher share the event's message
(built by the first that needs it), and calls only the sinks that hear the event's
topic: a quote costs the orchestrator and risk servers nothing, and the market data
server nothing while no client has a quote channel.

The sinks of each topic are resolved once, and again only when a sink is added or
tells :meth:`Fanout.hear` that it starts or stops hearing a topic (a server whose
last channel of the topic is gone), so publishing costs one dict lookup, and an
event no sink hears is not even wrapped (``hears`` lets the stage before the outbox
skip it altogether, telling :meth:`Fanout.count_unheard` instead).

Market data (quotes and bars) comes from the core bus directly, never through the
journal (:meth:`Fanout.follow_market_data`), and only while a sink hears its topic:
the fan-out subscribes to the bus for a topic when its first sink starts hearing it
and leaves when the last stops, so a tick nobody watches costs the edges no call at
all. ``published`` counts what was published of each topic, handed on or not (the
bus counts the market data it published meanwhile), so that a sink deaf for a while
(the NNG publisher with no subscriber) can number afterwards what it was not handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from gateways.api.outbound import Outgoing
from orchestrator.bus import EventBus
from orchestrator.model.events import Event, Topic

log = structlog.get_logger("gateways.fanout")

Sink = Callable[[Outgoing], None]


class Fanout:
    def __init__(self, journal_position: int = 0) -> None:
        self._sinks: dict[Topic, list[Sink]] = {topic: [] for topic in Topic}
        self._deaf: set[tuple[Sink, Topic]] = set()
        self._live: dict[Topic, tuple[Sink, ...]] = {topic: () for topic in Topic}
        """Each topic's sinks that hear it, in the order they were added."""
        self._handed: dict[Topic, int] = dict.fromkeys(Topic, 0)
        """Events handed to :meth:`publish` so far, by topic, heard or not."""
        self._market_bus: EventBus | None = None
        self._market_kinds: dict[Topic, tuple[type[Event], int]] = {}
        """Each market data topic's event type and the bus's count of it when followed."""
        self._market_followed: frozenset[Topic] = frozenset()
        """The market data topics this fan-out is subscribed to on the bus now."""
        self.sink_errors = 0
        self.position: int | None = None
        """The journal position of the event being published now: set by the delivery
        of committed events around each one (the outbox carries events alone), None
        for an event the journal does not write."""
        self.delivered = journal_position
        """The journal position of the last committed event handed here, whether a
        sink heard it or not (at start: the journal's last, all of it told or restored
        before this run)."""

    def add(self, sink: Sink, topics: Iterable[Topic] = Topic, deaf: Iterable[Topic] = ()) -> None:
        """Hand ``sink`` the events of ``topics`` (every topic by default), in order; not
        those of ``deaf`` until it says it hears them."""
        for topic in topics:
            self._sinks[topic].append(sink)
        self._deaf.update((sink, topic) for topic in deaf)
        self._resolve()

    def hear(self, sink: Sink, topic: Topic, hearing: bool) -> None:
        """Start (or stop) handing ``sink`` the events of ``topic`` it was added for."""
        if hearing:
            self._deaf.discard((sink, topic))
        else:
            self._deaf.add((sink, topic))
        self._resolve()

    def hear_all(self, sink: Sink, hearing: bool) -> None:
        """:meth:`hear` for every topic at once."""
        if hearing:
            self._deaf.difference_update((sink, topic) for topic in Topic)
        else:
            self._deaf.update((sink, topic) for topic in Topic)
        self._resolve()

    def _resolve(self) -> None:
        self._live = {
            topic: tuple(sink for sink in sinks if (sink, topic) not in self._deaf)
            for topic, sinks in self._sinks.items()
        }
        self._follow_heard_market_data()

    def follow_market_data(self, bus: EventBus, kinds: Iterable[type[Event]]) -> None:
        """Take ``bus``'s events of ``kinds`` (market data: told at once, never journaled)
        straight from it, while a sink hears their topic (see the module docstring)."""
        self._market_bus = bus
        self._market_kinds = {kind.topic: (kind, bus.published_of(kind)) for kind in kinds}
        self._follow_heard_market_data()

    def _follow_heard_market_data(self) -> None:
        bus = self._market_bus
        if bus is None:
            return
        heard = frozenset(topic for topic in self._market_kinds if self._live[topic])
        if heard == self._market_followed:
            return
        if self._market_followed:
            bus.unsubscribe(self._publish_market_data)
        if heard:
            bus.subscribe(self._publish_market_data, heard)
        self._market_followed = heard

    @property
    def published(self) -> dict[Topic, int]:
        """Events published so far, by topic, whether a sink heard them or not."""
        counts = dict(self._handed)
        bus = self._market_bus
        if bus is not None:
            for topic, (kind, before) in self._market_kinds.items():
                counts[topic] += bus.published_of(kind) - before
        return counts

    def hears(self, topic: Topic) -> bool:
        """Whether any sink would be handed an event of ``topic`` now."""
        return bool(self._live[topic])

    def count_unheard(self, topic: Topic) -> None:
        """An event of ``topic`` that no sink hears, dropped before it got here: counted
        in :attr:`published` all the same (the NNG publisher numbers it)."""
        self._handed[topic] += 1

    def publish(self, event: Event) -> None:
        topic = event.topic
        self._handed[topic] += 1
        if self.position is not None:
            self.delivered = self.position
        sinks = self._live[topic]
        if sinks:
            self._hand(event, sinks)

    def _publish_market_data(self, event: Event) -> None:
        """Bus handler of the market data heard now (the bus counts it)."""
        self._hand(event, self._live[event.topic])

    def _hand(self, event: Event, sinks: tuple[Sink, ...]) -> None:
        outgoing = Outgoing(event, self.position)
        for sink in sinks:
            try:
                sink(outgoing)
            except Exception:
                # One broken sink must not keep the event from the others.
                self.sink_errors += 1
                log.exception("fanout_sink_failed", topic=event.topic, sink=repr(sink))
