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
skip it altogether). It counts what it was handed of each topic (``published``), so
that a sink deaf for a while (the NNG publisher with no subscriber) can number
afterwards what it was not handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from gateways.api.outbound import Outgoing
from orchestrator.model.events import Event, Topic

log = structlog.get_logger("gateways.fanout")

Sink = Callable[[Outgoing], None]


class Fanout:
    def __init__(self) -> None:
        self._sinks: dict[Topic, list[Sink]] = {topic: [] for topic in Topic}
        self._deaf: set[tuple[Sink, Topic]] = set()
        self._live: dict[Topic, tuple[Sink, ...]] = {topic: () for topic in Topic}
        """Each topic's sinks that hear it, in the order they were added."""
        self.published: dict[Topic, int] = dict.fromkeys(Topic, 0)
        """Events handed to this fan-out so far, by topic, heard or not."""
        self.sink_errors = 0
        self.position: int | None = None
        """The journal position of the event being published now: set by the delivery
        of committed events around each one (the outbox carries events alone), None
        for an event the journal does not write."""

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

    def hears(self, topic: Topic) -> bool:
        """Whether any sink would be handed an event of ``topic`` now."""
        return bool(self._live[topic])

    def publish(self, event: Event) -> None:
        topic = event.topic
        self.published[topic] += 1
        sinks = self._live[topic]
        if not sinks:
            return
        outgoing = Outgoing(event, self.position)
        for sink in sinks:
            try:
                sink(outgoing)
            except Exception:
                # One broken sink must not keep the event from the others.
                self.sink_errors += 1
                log.exception("fanout_sink_failed", topic=event.topic, sink=repr(sink))
