"""RSI Mean Reversion: buy when the RSI says oversold, sell when it says overbought.

The rule, evaluated on every closed bar once the RSI (Wilder's, ``period``
changes) is ready:

- ``RSI <= oversold`` and not long: buy (a short is reversed: one order covers
  it and opens the long).
- ``RSI >= overbought`` and long: sell to close the long; with ``allow_short``
  and not already short, sell to go short instead (one order reverses the long).
- otherwise: nothing; a position is held until the opposite extreme.

Entries carry ``quantity=None`` (the runtime sizes them); exits carry the held
quantity. Confidence grows with depth into the extreme zone, from 0.5 at the
threshold to 1 at the end of the scale: for a buy
``0.5 + 0.5 * (oversold - RSI) / oversold``, for a sell
``0.5 + 0.5 * (RSI - overbought) / (100 - overbought)``. ``metadata`` is
``{"orderType": "MARKET", "rsi": rsi, "reason": ...}``, the
reason "entry", "exit" or "reversal".
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.indicators import RSI


class RsiReversionParams(StrategyParams):
    period: int = Field(14, ge=2, le=1000, description="Price changes the RSI averages over.")
    oversold: float = Field(
        30.0, gt=0, lt=100, description="RSI at or below which the market counts as oversold."
    )
    overbought: float = Field(
        70.0, gt=0, lt=100, description="RSI at or above which the market counts as overbought."
    )
    allow_short: bool = Field(
        False, description="Go short when overbought; otherwise only close longs."
    )

    @model_validator(mode="after")
    def _oversold_below_overbought(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError(
                f"oversold ({self.oversold}) must be less than overbought ({self.overbought})"
            )
        return self


class RsiReversion(Strategy[RsiReversionParams]):
    """RSI Mean Reversion; see the module docstring for the exact rule."""

    params_model = RsiReversionParams

    def __init__(self, params: RsiReversionParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._by_symbol: dict[str, RSI] = {}

    @property
    def warmup_bars(self) -> int:
        # period changes need period + 1 closes.
        return self.params.period + 1

    def on_bar(self, bar: Bar) -> None:
        rsi = self._update_rsi(bar)
        if rsi is None:
            return
        metadata: dict[str, Any] = {"orderType": "MARKET", "rsi": rsi}
        if rsi <= self.params.oversold:
            confidence = 0.5 + 0.5 * (self.params.oversold - rsi) / self.params.oversold
            self.enter_long(bar.symbol, bar.close, confidence, **metadata)
        elif rsi >= self.params.overbought:
            headroom = 100.0 - self.params.overbought
            confidence = 0.5 + 0.5 * (rsi - self.params.overbought) / headroom
            self._leave_long(bar, confidence, metadata)

    def _leave_long(self, bar: Bar, confidence: float, metadata: dict[str, Any]) -> None:
        if self.params.allow_short:
            self.enter_short(bar.symbol, bar.close, confidence, **metadata)
        elif self.position(bar.symbol) > 0:
            self.close_position(bar.symbol, bar.close, confidence, **metadata)

    def _update_rsi(self, bar: Bar) -> float | None:
        rsi = self._by_symbol.get(bar.symbol)
        if rsi is None:
            rsi = self._by_symbol[bar.symbol] = RSI(self.params.period)
        return rsi.update(bar.close)
