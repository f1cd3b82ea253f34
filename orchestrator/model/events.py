"""Domain events published on the in-process bus, and the topics they travel on.

Every event is an immutable record (:mod:`orchestrator.model.records`) with a ``topic``
class attribute.
Edges (WebSocket servers, the NNG publisher, the journal) subscribe to topics
and turn events into their own wire formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from typing import Any, ClassVar, get_args

from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Fill, Order, OrderPurpose, Signal
from orchestrator.model.records import record
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.portfolio import PositionChange


class Topic(StrEnum):
    STRATEGY_STATUS = "strategy.status"
    STRATEGY_SIGNAL = "strategy.signal"
    ORDER_SUBMITTED = "order.submitted"
    STRATEGY_TRADE = "strategy.trade"
    EXECUTION_STATUS = "execution.status"
    MARKET_QUOTE = "market.quote"
    MARKET_BAR = "market.bar"
    MARKET_FEED = "market.feed"
    ORDER_ACCEPTED = "order.accepted"
    ORDER_TRIGGERED = "order.triggered"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_REPLACED = "order.replaced"
    ORDER_EXPIRED = "order.expired"
    ORDER_PARTIALLY_FILLED = "order.partially_filled"
    STRATEGY_INDICATORS = "strategy.indicators"
    RISK_ORDER_REJECTED = "risk.order_rejected"
    RISK_ORDER_REDUCED = "risk.order_reduced"
    RISK_STOP_LOSS = "risk.stop_loss"
    RISK_LIMIT_BREACH = "risk.limit_breach"
    RISK_KILL_SWITCH = "risk.kill_switch"
    RISK_POSITION_MISMATCH = "risk.position_mismatch"
    JOB = "job"
    JOB_PROGRESS = "job.progress"


class StrategyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class FeedCondition(StrEnum):
    """How a feed that reports on itself is doing; the values are the wire names."""

    CONNECTING = "connecting"
    """Started, no answer from its source yet."""
    LIVE = "live"
    """Its source answers."""
    GAP = "gap"
    """Its source has not answered for longer than the feed's gap threshold."""


class RiskLimit(StrEnum):
    """Which risk limit an event is about; the values are the wire names."""

    MAX_POSITION_VALUE = "maxPositionValue"
    MAX_ORDERS_PER_MINUTE = "maxOrdersPerMinute"
    STOP_LOSS_PERCENTAGE = "stopLossPercentage"
    MAX_GROSS_EXPOSURE = "maxGrossExposure"
    MAX_ORDERS_PER_SECOND = "maxOrdersPerSecond"
    MAX_DAILY_LOSS = "maxDailyLoss"
    KILL_SWITCH = "killSwitch"
    PRICE_UNKNOWN = "priceUnknown"
    POSITION_MISMATCH = "positionMismatch"


class HaltSource(StrEnum):
    """What engaged the kill switch."""

    COMMAND = "COMMAND"
    DAILY_LOSS = "DAILY_LOSS"
    CONFIG = "CONFIG"


RequestId = str | int


@record
class CommandOrigin:
    """Who asked for a change: lets the edge route the reply to the requester."""

    server: str
    conn_id: str
    request_id: RequestId | None = None


@record
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
    config: StrategyRunConfig | None = field(default=None, compare=False)
    """The run config the strategy has after the change, for the journal (which restores
    it after a restart). Not part of the change's identity: two events announcing the
    same transition are equal whatever config rides along."""


@record
class SignalEmitted:
    topic: ClassVar[Topic] = Topic.STRATEGY_SIGNAL
    signal: Signal


@record
class OrderSubmitted:
    topic: ClassVar[Topic] = Topic.ORDER_SUBMITTED
    order: Order
    venue: str | None = None
    """The live venue the order goes to; None on paper. The journal keeps it, so that a
    restart asks that venue what became of an order in flight (reconciliation)."""


@record
class OrderAccepted:
    """A resting order (limit, stop, stop-limit, or an exit its bracket's entry armed)
    passed the risk checks and rests in the pipeline until a price reaches it."""

    topic: ClassVar[Topic] = Topic.ORDER_ACCEPTED
    order: Order
    ts: float


@record
class OrderTriggered:
    """A price reached a resting order: it leaves the book and goes to the broker at
    ``price`` (checked by risk again first: refused, it is settled as a rejection)."""

    topic: ClassVar[Topic] = Topic.ORDER_TRIGGERED
    order: Order
    price: float
    ts: float


@record
class OrderCancelled:
    """A resting order left the book unfilled: cancelled by its strategy, by a command
    (``origin``), by its bracket's other exit, by a pause, a stop or the kill switch,
    or an IOC the first price did not fill."""

    topic: ClassVar[Topic] = Topic.ORDER_CANCELLED
    order: Order
    reason: str
    ts: float
    origin: CommandOrigin | None = None


@record
class OrderReplaced:
    """A resting order's quantity or prices changed; it keeps its id."""

    topic: ClassVar[Topic] = Topic.ORDER_REPLACED
    order: Order
    """The order as it rests now."""
    previous: Order
    ts: float


@record
class OrderExpired:
    """A DAY order reached the end of its UTC day unfilled."""

    topic: ClassVar[Topic] = Topic.ORDER_EXPIRED
    order: Order
    reason: str
    ts: float


@record
class OrderPartiallyFilled:
    """A price filled part of a resting limit order (``broker.partial_fills``: at most
    the tick's size); the rest rests on. Published after that part's trade."""

    topic: ClassVar[Topic] = Topic.ORDER_PARTIALLY_FILLED
    order: Order
    """The order as it rests now: ``quantity`` is what remains."""
    filled_quantity: float
    """The quantity of this part (its trade's)."""
    fill_price: float
    ts: float


OrderLifecycle = (
    OrderAccepted
    | OrderTriggered
    | OrderCancelled
    | OrderReplaced
    | OrderExpired
    | OrderPartiallyFilled
)
"""What happens to a resting order, in the order it happens: accepted, maybe replaced or
partially filled, then triggered, cancelled or expired."""

ORDER_TOPICS: tuple[Topic, ...] = (
    Topic.ORDER_ACCEPTED,
    Topic.ORDER_TRIGGERED,
    Topic.ORDER_CANCELLED,
    Topic.ORDER_REPLACED,
    Topic.ORDER_EXPIRED,
    Topic.ORDER_PARTIALLY_FILLED,
)


@record
class TradeExecuted:
    """A fill (or a rejection) and what it did to the strategy's position."""

    topic: ClassVar[Topic] = Topic.STRATEGY_TRADE
    fill: Fill
    change: PositionChange | None
    """None for a rejection, which changes no position."""
    stop_price: float | None = None
    """The stop-loss price of the position after this fill (None when it has none, is
    flat, or nothing changed): what the guardian watches for, so that consumers need
    not look up the strategy's config."""
    purpose: OrderPurpose = OrderPurpose.SIGNAL
    """Why the filled order exists: a strategy's signal, a stop-loss, a bracket's
    target, or the close of ``stop_strategy`` (a closed trade's exit reason)."""


@record
class VenueState:
    """A live venue's connection: whether it takes orders, and why not."""

    name: str
    connected: bool
    reason: str | None = None
    mismatches: tuple[str, ...] = ()
    """The assets whose balance there is not what the journal says (unacknowledged)."""


@record
class ExecutionStatusChanged:
    topic: ClassVar[Topic] = Topic.EXECUTION_STATUS
    status: ExecutionStatus
    ts: float
    reason: str | None = None
    origin: CommandOrigin | None = None
    venues: tuple[VenueState, ...] = ()
    """Each configured venue's connection, announced again whenever one changes."""


@record
class FeedState:
    """A feed's condition: whether its source answers, and since when."""

    kind: str
    """The feed's kind (``ccxt``)."""
    source: str
    """What it reads (the venue's name)."""
    condition: FeedCondition
    since: float
    """When the condition began."""
    reason: str | None = None
    """Why there is a gap (the last error), or why it is still connecting."""
    last_data: float | None = None
    """When the source last answered."""


@record
class FeedStatusChanged:
    """A feed's condition changed (a gap opened, it recovered). Not journaled: the
    snapshot of 3001 carries the current one."""

    topic: ClassVar[Topic] = Topic.MARKET_FEED
    state: FeedState


@record
class QuoteUpdated:
    topic: ClassVar[Topic] = Topic.MARKET_QUOTE
    tick: Tick


@record
class BarClosed:
    topic: ClassVar[Topic] = Topic.MARKET_BAR
    bar: Bar


@record
class IndicatorsUpdated:
    """A strategy's indicator lines in one symbol after one of its bars (not journaled:
    like bars, they are recomputed from market data)."""

    topic: ClassVar[Topic] = Topic.STRATEGY_INDICATORS
    strategy_id: str
    symbol: str
    resolution: str
    start: float
    """The start of the bar they were computed on (where a chart draws them)."""
    values: tuple[tuple[str, float], ...]
    """Each line's name and value, in the strategy's order."""


@record
class OrderRejected:
    """The risk guardian refused (or the kill switch cancelled) an order."""

    topic: ClassVar[Topic] = Topic.RISK_ORDER_REJECTED
    order: Order
    limit: RiskLimit
    limit_value: float
    actual_value: float
    """The value the order would have reached (or the count it would have made)."""
    reason: str
    ts: float


@record
class OrderReduced:
    """The guardian sent a smaller order: one that fits ``maxPositionValue`` (reduce
    mode), or of a reversal a limit refused, the part that closes the position."""

    topic: ClassVar[Topic] = Topic.RISK_ORDER_REDUCED
    order: Order
    """The order as the strategy asked for it."""
    quantity: float
    """The quantity that was sent instead."""
    limit: RiskLimit
    limit_value: float
    actual_value: float
    """What the order would have reached on ``limit`` (after any cut to fit
    maxPositionValue): the position's value, the gross exposure, or (kill switch)
    its own notional."""
    reason: str
    ts: float


@record
class StopLossTriggered:
    """A position lost its stopLossPercentage: ``order`` exits it at market."""

    topic: ClassVar[Topic] = Topic.RISK_STOP_LOSS
    order: Order
    position_quantity: float
    entry_price: float
    trigger_price: float
    stop_price: float
    stop_loss_percentage: float
    unrealized_pnl: float
    ts: float


@record
class LimitBreached:
    """The market (not an order) took a value beyond a limit."""

    topic: ClassVar[Topic] = Topic.RISK_LIMIT_BREACH
    limit: RiskLimit
    limit_value: float
    actual_value: float
    reason: str
    ts: float
    strategy_id: str | None = None
    symbol: str | None = None
    engages_kill_switch: bool = False


@record
class KillSwitchChanged:
    topic: ClassVar[Topic] = Topic.RISK_KILL_SWITCH
    engaged: bool
    reason: str | None
    block_all: bool
    source: HaltSource
    ts: float
    origin: CommandOrigin | None = None


@record
class PositionMismatch:
    """A live venue's balance of an asset is not what the journal's fills make it (plus
    the account's baseline): the strategies trading it there open nothing new until an
    operator acknowledges it (``acknowledged``: this event says so)."""

    topic: ClassVar[Topic] = Topic.RISK_POSITION_MISMATCH
    venue: str
    asset: str
    expected: float
    """The baseline plus the journal's fills, net of the fees taken in the asset."""
    actual: float
    """The venue's balance (free and locked)."""
    strategies: tuple[str, ...]
    ts: float
    acknowledged: bool = False


class JobStatus(StrEnum):
    """A job's state: exactly the dgbit statuses.

    There is no "cancelled": a cancelled job is FAILED with the error
    ``"cancelled by user"``, which dgbit clients already know how to show.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


JOB_EVENT_TYPES: Mapping[JobStatus, str] = {
    JobStatus.PENDING: "job.created",
    JobStatus.RUNNING: "job.started",
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
}
"""The dgbit event type announcing each status."""
JOB_PROGRESS = "job.progress"
"""The dgbit event type of a running job's progress."""


@record
class JobStateChanged:
    """A job was created (pending), started (running), completed or failed."""

    topic: ClassVar[Topic] = Topic.JOB
    job_id: str
    job_type: str
    """Always "backtest" so far."""
    status: JobStatus
    ts: float
    result: Mapping[str, Any] | None = None
    """JSON-ready; set when completed (for a backtest: total_trades, win_rate, total_return...)."""
    error: str | None = None
    """Set when failed: a sentence a person can act on."""

    @property
    def event_type(self) -> str:
        """The dgbit event type announcing this state (job.created...)."""
        return JOB_EVENT_TYPES[self.status]


@record
class JobProgress:
    """A running job's progress, at a bounded rate (see orchestrator/backtest/jobs.py)."""

    topic: ClassVar[Topic] = Topic.JOB_PROGRESS
    job_id: str
    job_type: str
    done: int
    """Bars replayed so far (warm-up included)."""
    total: int
    """Bars in the run."""
    ts: float

    @property
    def fraction(self) -> float:
        """done / total: 0 to 1, never falling for one job."""
        return self.done / self.total if self.total else 1.0


@record
class SweepProgress:
    """A running sweep's trials, after each one finishes (see orchestrator/sweep/jobs.py)."""

    topic: ClassVar[Topic] = Topic.JOB_PROGRESS
    job_id: str
    done: int
    """Trials finished, those read back from the study after a restart included."""
    total: int
    """Trials of the whole sweep (every window of a walk-forward, and its
    out-of-sample runs)."""
    ts: float
    best_value: float | None = None
    """The objective of the best feasible trial so far (None: none yet)."""
    best_params: Mapping[str, Any] | None = None
    """That trial's varied parameters."""
    eta_seconds: float | None = None
    """Remaining trials at this run's pace so far (None before the first)."""
    job_type: str = "sweep"

    @property
    def fraction(self) -> float:
        """done / total: 0 to 1, never falling for one sweep."""
        return self.done / self.total if self.total else 1.0


Event = (
    StrategyStatusChanged
    | SignalEmitted
    | OrderSubmitted
    | OrderAccepted
    | OrderTriggered
    | OrderCancelled
    | OrderReplaced
    | OrderExpired
    | OrderPartiallyFilled
    | TradeExecuted
    | ExecutionStatusChanged
    | QuoteUpdated
    | BarClosed
    | FeedStatusChanged
    | IndicatorsUpdated
    | OrderRejected
    | OrderReduced
    | StopLossTriggered
    | LimitBreached
    | KillSwitchChanged
    | PositionMismatch
    | JobStateChanged
    | JobProgress
    | SweepProgress
)

ANSWER_TOPICS: frozenset[Topic] = frozenset(
    kind.topic for kind in get_args(Event) if "origin" in kind.__dataclass_fields__
)
"""The topics of the events that can answer a command (they carry its CommandOrigin)."""
