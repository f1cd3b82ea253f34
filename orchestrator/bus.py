"""The in-process event bus: named topics, synchronous in-order delivery.

Delivery is synchronous so that every subscriber sees events in the order they
were published, and a subscriber registered first (the journal) has handled an
event before a later one (a WebSocket server) sends it to anyone.

Subscriptions are by topic; delivery is by event type, resolved once per type
(and again only after a subscription changes), so publishing an event costs one
dict lookup before its handlers run, and nothing more when it has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from orchestrator.model.events import Event, Topic

Handler = Callable[[Event], None]

log = structlog.get_logger("orchestrator.bus")


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[Topic, list[Handler]] = {topic: [] for topic in Topic}
        self._routes: dict[type[Event], tuple[Handler, ...]] = {}
        """Each published event type's handlers, resolved on first use."""
        self.published = 0
        self.handler_errors = 0

    def subscribe(self, handler: Handler, topics: Iterable[Topic] | None = None) -> None:
        """Deliver events of ``topics`` (all topics when None) to ``handler``."""
        for topic in Topic if topics is None else topics:
            self._handlers[topic].append(handler)
        self._routes.clear()

    def unsubscribe(self, handler: Handler) -> None:
        for handlers in self._handlers.values():
            if handler in handlers:
                handlers.remove(handler)
        self._routes.clear()

    def handlers_of(self, event_type: type[Event]) -> tuple[Handler, ...]:
        """What an event of ``event_type`` is delivered to, in subscription order."""
        handlers = self._routes.get(event_type)
        if handlers is None:
            handlers = self._routes[event_type] = tuple(self._handlers[event_type.topic])
        return handlers

    def publish(self, event: Event) -> None:
        self.published += 1
        for handler in self.handlers_of(type(event)):
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not starve the others of the event.
                self.handler_errors += 1
                log.exception("bus_handler_failed", topic=event.topic, handler=repr(handler))
