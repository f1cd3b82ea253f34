"""Which core events each server sends, and to which channel: one table per server
from bus topic to channel. The messages themselves are :mod:`gateways.api.outbound`'s.

A topic missing from a server's table is not sent by it; a server still hears the
events that answer commands (``ANSWER_TOPICS``) to reply to its own requesters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateways.api import outbound
from gateways.api.market_data import bar_channel, quote_channel
from gateways.ws.server import Routes, Session, to_everyone
from orchestrator.model.events import ORDER_TOPICS, BarClosed, QuoteUpdated, Topic
from orchestrator.strategy.committed_views import CommittedViews


def _quote_channel(event: QuoteUpdated) -> str:
    return quote_channel(event.tick.symbol)


def _bar_channel(event: BarClosed) -> str:
    return bar_channel(event.bar.symbol, event.bar.resolution)


def _to_everyone(*topics: Topic) -> dict[Topic, Callable[[Any], str]]:
    return dict.fromkeys(topics, to_everyone)


ROUTES: Mapping[str, Routes] = {
    "orchestrator": _to_everyone(
        Topic.STRATEGY_STATUS,
        Topic.STRATEGY_SIGNAL,
        Topic.STRATEGY_TRADE,
        Topic.STRATEGY_INDICATORS,
        Topic.EXECUTION_STATUS,
        Topic.JOB,
        Topic.JOB_PROGRESS,
        *ORDER_TOPICS,
    ),
    "market_data": {
        Topic.MARKET_QUOTE: _quote_channel,
        Topic.MARKET_BAR: _bar_channel,
        **_to_everyone(Topic.EXECUTION_STATUS, Topic.MARKET_FEED),
    },
    "risk": _to_everyone(
        Topic.EXECUTION_STATUS,
        Topic.RISK_ORDER_REJECTED,
        Topic.RISK_ORDER_REDUCED,
        Topic.RISK_STOP_LOSS,
        Topic.RISK_LIMIT_BREACH,
        Topic.RISK_KILL_SWITCH,
        Topic.RISK_POSITION_MISMATCH,
    ),
}


KEYED: Mapping[str, Topic] = {
    quote_channel("").partition(":")[0]: Topic.MARKET_QUOTE,
    bar_channel("", "").partition(":")[0]: Topic.MARKET_BAR,
}
"""The channels named per key, by prefix, and their topic: a server keeping none of a
topic's channels is not handed its events (see ``WebSocketServer.deaf_topics``)."""


class Snapshot:
    """What a new connection is sent first, so a frontend never guesses the state: the
    committed state at the stream position the snapshot carries (every later change
    comes as an event), never the core's state ahead of it."""

    def __init__(self, committed: CommittedViews) -> None:
        self._committed = committed

    def messages(self, _: Session) -> list[outbound.Message]:
        committed = self._committed
        # A frontend learns at once why execution is halted.
        status = outbound.execution_status_data(
            committed.execution, committed.execution_reason, committed.execution_venues
        )
        return [
            ("execution_service_status", status),
            ("strategy_status_list", outbound.strategy_list(committed.active())),
        ]

    def feed_messages(self) -> list[outbound.Message]:
        """3001's: the feed's condition, when the feed reports one (ccxt)."""
        feed = self._committed.feed
        return [] if feed is None else [("feed_status", outbound.feed_state_data(feed))]
