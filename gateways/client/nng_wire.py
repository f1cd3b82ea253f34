"""The two NNG wire formats, in one place: published events and ingested market data.

Importable without the daemon (only ``orjson``), so that the helper other
processes use (:mod:`gateways.client.nng_client`) stays light. docs/nng.md describes
both formats for people who write their own client in another language.

Events (the daemon's Pub0 socket)
---------------------------------
One NNG message per bus event::

    <topic> SP <JSON envelope>

``<topic>`` is the bus topic in ASCII (``strategy.signal``, ``risk.stop_loss``,
``market.quote``...), so a Sub0 socket filters by event type with a prefix:
``strategy.`` is every strategy event, ``risk.`` every risk event,
``strategy.trade `` (with the space) exactly one topic. The envelope is::

    {"type": "strategy_signal", "timestamp": "2024-01-15T10:30:00.000Z",
     "seq": 42, "epoch": 1705314600000, "topicSeq": 7, "data": {...}}

``type`` and ``data`` are exactly the WebSocket message of the same event.
``seq`` counts every event the publisher numbered since it started (1, 2,
3...), ``topicSeq`` counts those of this topic only, and ``epoch`` is the
publisher's start time in milliseconds. A subscriber of every topic detects
loss by a jump in ``seq``; a subscriber of some topics by a jump in
``topicSeq`` of one topic; a restart by a new ``epoch``.

Market data (the daemon's Pull0 socket, feed kind ``nng``)
----------------------------------------------------------
One JSON object per NNG message, pushed with a Push0 socket::

    {"type": "tick", "symbol": "AAPL", "price": 190.5, "size": 100,
     "timestamp": 1705314600.25}
    {"type": "ticks", "ticks": [["AAPL", 190.5, 100, 1705314600.25],
                                ["MSFT", 420.1, 5]]}
    {"type": "bar", "symbol": "AAPL", "resolution": "1m",
     "timestamp": "2024-01-15T10:30:00Z", "open": 190.0, "high": 191.0,
     "low": 189.5, "close": 190.5, "volume": 12000}

A timestamp is epoch seconds or ISO-8601 (naive means UTC); a tick without
one is stamped with the daemon's clock on arrival. A bar enters as four ticks
(open, low and high in the likelier order, close) like a replayed CSV row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import orjson

TOPIC_SEPARATOR = b" "
"""Ends the topic prefix of a published event."""

TimestampIn: TypeAlias = float | int | str | datetime | None
"""What a sender may stamp a tick with: epoch seconds, ISO-8601, a datetime, or none."""

TickRow: TypeAlias = Sequence[Any]
"""``(symbol, price, size)`` or ``(symbol, price, size, timestamp)``."""


class FrameError(ValueError):
    """A published message that is not ``<topic> SP <JSON object>``."""


# ---------------------------------------------------------------- events


def event_frame(topic_prefix: bytes, envelope: dict[str, Any]) -> bytes:
    """``topic_prefix`` (the topic and TOPIC_SEPARATOR) followed by the JSON envelope."""
    return topic_prefix + orjson.dumps(envelope)


def topic_prefix(topic: str) -> bytes:
    return topic.encode("ascii") + TOPIC_SEPARATOR


def split_event_frame(frame: bytes) -> tuple[str, dict[str, Any]]:
    """The topic and the decoded envelope of one published message."""
    topic, separator, body = frame.partition(TOPIC_SEPARATOR)
    if not separator or not topic:
        raise FrameError("no topic prefix")
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"the envelope is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise FrameError("the envelope is not a JSON object")
    return topic.decode("ascii", errors="replace"), envelope


# ---------------------------------------------------------------- market data


def _timestamp(value: TimestampIn) -> float | str | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return value


def tick_message(symbol: str, price: float, size: float, timestamp: TimestampIn = None) -> bytes:
    message: dict[str, Any] = {"type": "tick", "symbol": symbol, "price": price, "size": size}
    if timestamp is not None:
        message["timestamp"] = _timestamp(timestamp)
    return orjson.dumps(message)


def ticks_message(rows: Iterable[TickRow]) -> bytes:
    ticks = [
        [row[0], row[1], row[2], _timestamp(row[3])] if len(row) > 3 else list(row) for row in rows
    ]
    return orjson.dumps({"type": "ticks", "ticks": ticks})


def bar_message(
    symbol: str,
    resolution: str,
    timestamp: TimestampIn,
    open: float,
    high: float,
    low: float,
    close: float,
    volume: float,
) -> bytes:
    return orjson.dumps(
        {
            "type": "bar",
            "symbol": symbol,
            "resolution": resolution,
            "timestamp": _timestamp(timestamp),
            "open": open,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
