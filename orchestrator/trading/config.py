"""Config of the paper broker: its account's starting cash, commission, slippage and
order expiry."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

BPS = 1e4


class BracketRule(StrEnum):
    """Which exit of a bracket fills when one bar reaches both its stop and its target."""

    STOP_FIRST = "stop_first"
    """Pessimistic: the stop (backtesting.py's rule too)."""
    TARGET_FIRST = "target_first"
    """Optimistic: the target."""
    WALK = "walk"
    """Whichever the bar's walk (open, low/high, close) reaches first."""


class PaperBrokerConfig(BaseModel):
    """How the paper broker prices fills and how long and how many orders it holds."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    initial_cash: float = Field(
        default=100_000.0,
        gt=0.0,
        le=1e12,
        description="The paper account's starting cash, in quote currency: its cash is "
        "this plus realized P&L less the cost of the open positions, its equity cash plus "
        "their market value.",
    )
    slippage_bps: float = Field(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="Price moved against every fill, in basis points: buys pay "
        "price * (1 + bps / 1e4), sells receive price * (1 - bps / 1e4).",
    )
    commission_per_share: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Commission per unit of quantity filled, in quote currency.",
    )
    commission_bps: float = Field(
        default=0.0,
        ge=0.0,
        le=1000.0,
        description="Commission in basis points of the filled notional (quantity * fill price).",
    )
    min_commission: float = Field(
        default=0.0,
        ge=0.0,
        le=10_000.0,
        description="Smallest commission charged on a fill, in quote currency.",
    )
    fill_timeout_seconds: float = Field(
        default=5.0,
        gt=0.0,
        le=86_400.0,
        description="An order that sees no price of its symbol within this many seconds "
        "of submission is rejected.",
    )
    bracket_rule: BracketRule = Field(
        default=BracketRule.STOP_FIRST,
        description="Which exit of a bracket fills when one backtest bar reaches both its "
        "stop and its target: stop_first (pessimistic), target_first, or walk (whichever "
        "the bar's walk of open, low/high, close reaches first); docs/orders.md.",
    )
    partial_fills: bool = Field(
        default=False,
        description="Fill an order at most the size of the tick that reaches it (a "
        "backtest: the bar's volume), the rest waiting for the next prices; off: every "
        "order fills whole at the first price that fills it (docs/orders.md#partial-fills).",
    )
    max_pending_orders: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Most orders waiting for a price at once, over all symbols; "
        "orders beyond it are rejected.",
    )
