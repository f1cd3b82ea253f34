"""The in-process event bus: named topics, synchronous in-order delivery.

Delivery is synchronous so that every subscriber sees events in the order they
were published, and a subscriber registered first (the journal) has handled an
event before a later one (a WebSocket server) sends it to anyone.

Subscriptions are by topic; delivery is by event type, resolved once per type
(and again only after a subscription changes), so publishing an event costs one
dict lookup before its handlers run, and nothing more when it has none. Each
type's route also counts what was published of it, heard or not
(:meth:`EventBus.published_of`): a subscriber that listens only while it has a
use for the events (the edges' fan-out, ``gateways.fanout``) can still number
what it was not handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from orchestrator.model.events import Event, Topic

Handler = Callable[[Event], None]

log = structlog.get_logger("orchestrator.bus")


class _Route:
    """One event type's handlers, in subscription order, and its events published so far."""

    __slots__ = ("handlers", "published")

    def __init__(self, handlers: tuple[Handler, ...]) -> None:
        self.handlers = handlers
        self.published = 0


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[Topic, list[Handler]] = {topic: [] for topic in Topic}
        self._routes: dict[type[Event], _Route] = {}
        """Each published event type's route, made on first use and kept (its count
        lives there); its handlers are resolved again when a subscription changes."""
        self.handler_errors = 0

    def subscribe(self, handler: Handler, topics: Iterable[Topic] | None = None) -> None:
        """Deliver events of ``topics`` (all topics when None) to ``handler``."""
        for topic in Topic if topics is None else topics:
            self._handlers[topic].append(handler)
        self._reroute()

    def unsubscribe(self, handler: Handler) -> None:
        for handlers in self._handlers.values():
            if handler in handlers:
                handlers.remove(handler)
        self._reroute()

    def _reroute(self) -> None:
        for event_type, route in self._routes.items():
            route.handlers = tuple(self._handlers[event_type.topic])

    def _route(self, event_type: type[Event]) -> _Route:
        route = self._routes.get(event_type)
        if route is None:
            route = self._routes[event_type] = _Route(tuple(self._handlers[event_type.topic]))
        return route

    def handlers_of(self, event_type: type[Event]) -> tuple[Handler, ...]:
        """What an event of ``event_type`` is delivered to, in subscription order."""
        return self._route(event_type).handlers

    @property
    def published(self) -> int:
        """Events published so far, of every type."""
        return sum(route.published for route in self._routes.values())

    def published_of(self, event_type: type[Event]) -> int:
        """Events of ``event_type`` published so far, whoever heard them."""
        route = self._routes.get(event_type)
        return 0 if route is None else route.published

    def publish(self, event: Event) -> None:
        # The route inlined (no call to _route): every tick publishes here.
        route = self._routes.get(type(event)) or self._route(type(event))
        route.published += 1
        for handler in route.handlers:
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not starve the others of the event.
                self.handler_errors += 1
                log.exception("bus_handler_failed", topic=event.topic, handler=repr(handler))
