"""The edges' side of the outbox: each committed event, wrapped once, to every sink
of its topic.

The journal delivers what it committed on the outbox; :class:`Fanout` is its one
subscriber for the edges. It wraps each event in one :class:`Outgoing`, so the
three servers, the dgbit endpoints and the NNG publisher share the event's message
(built by the first that needs it), and calls only the sinks of the event's topic:
a quote costs the orchestrator and risk servers nothing.
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
        self.sink_errors = 0

    def add(self, sink: Sink, topics: Iterable[Topic] = Topic) -> None:
        """Hand ``sink`` the events of ``topics`` (every topic by default), in order."""
        for topic in topics:
            self._sinks[topic].append(sink)

    def publish(self, event: Event) -> None:
        sinks = self._sinks[event.topic]
        if not sinks:
            return
        outgoing = Outgoing(event)
        for sink in sinks:
            try:
                sink(outgoing)
            except Exception:
                # One broken sink must not keep the event from the others.
                self.sink_errors += 1
                log.exception("fanout_sink_failed", topic=event.topic, sink=repr(sink))
