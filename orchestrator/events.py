"""Domain events published on the in-process bus, and the topics they travel on.

Every event is an immutable slotted dataclass with a ``topic`` class attribute.
Edges (WebSocket servers, the NNG publisher, the journal) subscribe to topics
and turn events into their own wire formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from orchestrator.market import Bar, Tick
from orchestrator.orders import Fill, Order, Signal
from orchestrator.portfolio import PositionChange


class Topic(StrEnum):
    STRATEGY_STATUS = "strategy.status"
    STRATEGY_SIGNAL = "strategy.signal"
    ORDER_SUBMITTED = "order.submitted"
    STRATEGY_TRADE = "strategy.trade"
    EXECUTION_STATUS = "execution.status"
    MARKET_QUOTE = "market.quote"
    MARKET_BAR = "market.bar"


class StrategyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


RequestId = str | int


@dataclass(frozen=True, slots=True)
class CommandOrigin:
    """Who asked for a change: lets the edge route the reply to the requester."""

    server: str
    conn_id: str
    request_id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class StrategyStatusChanged:
    topic: ClassVar[Topic] = Topic.STRATEGY_STATUS
    strategy_id: str
    name: str
    status: StrategyStatus
    previous: StrategyStatus
    symbols: tuple[str, ...]
    ts: float
    origin: CommandOrigin | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SignalEmitted:
    topic: ClassVar[Topic] = Topic.STRATEGY_SIGNAL
    signal: Signal


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    topic: ClassVar[Topic] = Topic.ORDER_SUBMITTED
    order: Order


@dataclass(frozen=True, slots=True)
class TradeExecuted:
    """A fill (or a rejection) and what it did to the strategy's position."""

    topic: ClassVar[Topic] = Topic.STRATEGY_TRADE
    fill: Fill
    change: PositionChange | None
    """None for a rejection, which changes no position."""


@dataclass(frozen=True, slots=True)
class ExecutionStatusChanged:
    topic: ClassVar[Topic] = Topic.EXECUTION_STATUS
    status: ExecutionStatus
    ts: float
    reason: str | None = None
    origin: CommandOrigin | None = None


@dataclass(frozen=True, slots=True)
class QuoteUpdated:
    topic: ClassVar[Topic] = Topic.MARKET_QUOTE
    tick: Tick


@dataclass(frozen=True, slots=True)
class BarClosed:
    topic: ClassVar[Topic] = Topic.MARKET_BAR
    bar: Bar


Event = (
    StrategyStatusChanged
    | SignalEmitted
    | OrderSubmitted
    | TradeExecuted
    | ExecutionStatusChanged
    | QuoteUpdated
    | BarClosed
)
