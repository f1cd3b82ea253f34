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
from gateways.ws.server import EVERYONE, Routes, Session
from orchestrator.model.events import BarClosed, QuoteUpdated, Topic
from orchestrator.strategy.registry import StrategyRegistry
from orchestrator.trading.execution import ExecutionService


def _everyone(_: Any) -> str:
    return EVERYONE


def _quote_channel(event: QuoteUpdated) -> str:
    return quote_channel(event.tick.symbol)


def _bar_channel(event: BarClosed) -> str:
    return bar_channel(event.bar.symbol, event.bar.resolution)


def _to_everyone(*topics: Topic) -> dict[Topic, Callable[[Any], str]]:
    return dict.fromkeys(topics, _everyone)


ROUTES: Mapping[str, Routes] = {
    "orchestrator": _to_everyone(
        Topic.STRATEGY_STATUS,
        Topic.STRATEGY_SIGNAL,
        Topic.STRATEGY_TRADE,
        Topic.EXECUTION_STATUS,
        Topic.JOB,
    ),
    "market_data": {
        Topic.MARKET_QUOTE: _quote_channel,
        Topic.MARKET_BAR: _bar_channel,
        **_to_everyone(Topic.EXECUTION_STATUS),
    },
    "risk": _to_everyone(
        Topic.EXECUTION_STATUS,
        Topic.RISK_ORDER_REJECTED,
        Topic.RISK_ORDER_REDUCED,
        Topic.RISK_STOP_LOSS,
        Topic.RISK_LIMIT_BREACH,
        Topic.RISK_KILL_SWITCH,
    ),
}


class Snapshot:
    """What a new connection is sent first, so a frontend never guesses the state."""

    def __init__(self, registry: StrategyRegistry, execution: ExecutionService) -> None:
        self._registry = registry
        self._execution = execution

    def messages(self, _: Session) -> list[outbound.Message]:
        halt = self._execution.halt
        reason = halt.reason if halt is not None else None  # a frontend learns why at once
        status = outbound.execution_status_data(self._execution.status, reason)
        return [
            ("execution_service_status", status),
            ("strategy_status_list", outbound.strategy_list(self._registry.active())),
        ]
