"""History on load: what a page shows before the live stream goes on.

``get_recent_activity`` (8082) reads the journal's last trades and signals;
``get_bars`` (3001) rebuilds the closed bars of a symbol at a resolution from
the ticks the market data service keeps for warm-up; ``get_indicators`` (8082)
gives the recent points of a running strategy's indicator lines in a symbol
(its warm-up bars included), joined with the live ``strategy_indicators`` by
``start`` as bars are. Neither carries a stream
``seq`` (they are replies, not part of the stream); a client joins them with the
live stream by id instead: ask after the connection's snapshot, so that what was committed
before the reply is in it and what comes later is on the stream; a live trade
or signal whose ``id`` the history already holds (or a bar whose ``start`` it
holds) is the same one and replaces it. Nothing falls in between.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Literal

from pydantic import Field

from gateways.api import outbound
from gateways.api.inbound import Command, ProtocolError, StrategyId
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.journal.store import Journal
from orchestrator.model.clock import Clock
from orchestrator.model.market import Symbol
from orchestrator.strategy.lines import IndicatorLines
from orchestrator.strategy.registry import StrategyRegistry

MAX_ACTIVITY = 500
"""The most trades (and, separately, signals) one ``get_recent_activity`` returns."""

MAX_BARS = 1000
"""The most bars one ``get_bars`` returns."""


class HistoryCommandType(StrEnum):
    GET_RECENT_ACTIVITY = "get_recent_activity"
    GET_INDICATORS = "get_indicators"


class BarsCommandType(StrEnum):
    GET_BARS = "get_bars"


class HistoryUnavailable(ProtocolError):
    code = "history_unavailable"


class GetRecentActivity(Command):
    type: Literal[HistoryCommandType.GET_RECENT_ACTIVITY]
    limit: int = Field(50, ge=1, le=MAX_ACTIVITY)


class GetIndicators(Command):
    type: Literal[HistoryCommandType.GET_INDICATORS]
    strategyId: StrategyId
    symbol: Symbol
    limit: int = Field(300, ge=1, le=MAX_BARS)


class GetBars(Command):
    type: Literal[BarsCommandType.GET_BARS]
    symbol: Symbol
    resolution: str = Field(min_length=1, max_length=8)
    limit: int = Field(300, ge=1, le=MAX_BARS)


class RecentActivity:
    """``get_recent_activity``: the journal's reads run on a thread, off the event loop."""

    def __init__(self, journal: Journal | None, clock: Clock) -> None:
        self._journal = journal
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {HistoryCommandType.GET_RECENT_ACTIVITY: self.get_recent_activity}

    async def get_recent_activity(self, command: GetRecentActivity, _: Session) -> Replies:
        journal = self._journal
        if journal is None:
            raise HistoryUnavailable(
                "journal.enabled is false: this daemon keeps no trades or signals to show"
            )
        trades, signals = await asyncio.to_thread(
            lambda: (journal.recent_trades(command.limit), journal.recent_signals(command.limit))
        )
        data = outbound.recent_activity_data(trades, signals)
        return [outbound.encode("recent_activity", data, self._clock.now(), command.request_id)]


class IndicatorHistory:
    """``get_indicators``: what the runtime keeps of each running strategy's lines."""

    def __init__(self, lines: IndicatorLines, registry: StrategyRegistry, clock: Clock) -> None:
        self._lines = lines
        self._registry = registry
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {HistoryCommandType.GET_INDICATORS: self.get_indicators}

    async def get_indicators(self, command: GetIndicators, _: Session) -> Replies:
        strategy_id, symbol = command.strategyId, command.symbol
        self._registry.view(strategy_id)  # unknown_strategy for an id the catalog lacks
        points = self._lines.recent(strategy_id, symbol, command.limit)
        resolution = self._lines.resolution(strategy_id)
        data = outbound.indicator_history_data(strategy_id, symbol, resolution, points)
        return [outbound.encode("indicators", data, self._clock.now(), command.request_id)]
