"""Config of the risk guardian: global limits, the daily loss and the kill switch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RiskConfig(BaseModel):
    """The global limits of the risk guardian and how the kill switch starts."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_gross_exposure: float = Field(
        100_000.0,
        gt=0.0,
        le=1e12,
        description="Largest sum over every strategy and symbol of |quantity| * last price; "
        "an order that would take it above is rejected.",
    )
    max_orders_per_second: int = Field(
        50,
        ge=1,
        le=100_000,
        description="Orders the whole daemon may send in any sliding second; strategies "
        "that sent orders in the last minute share it equally when it is contended.",
    )
    max_daily_loss: float = Field(
        5_000.0,
        gt=0.0,
        le=1e12,
        description="Loss of the UTC day (realized plus unrealized P&L since midnight, "
        "over every strategy) at which the kill switch engages by itself.",
    )
    position_limit_mode: Literal["reject", "reduce"] = Field(
        "reject",
        description="An order beyond maxPositionValue is rejected (reject) or cut to the "
        "largest order that fits (reduce; rejected when none fits).",
    )
    halted_at_start: bool = Field(
        False, description="Engage the kill switch (reduce-only) when the daemon starts."
    )
    daily_loss_blocks_all: bool = Field(
        False,
        description="The kill switch engaged by max_daily_loss blocks every order, exits "
        "and stop-losses included, instead of leaving reducing orders through.",
    )
