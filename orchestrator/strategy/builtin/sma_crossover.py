"""Moving Average Crossover: trade the regime of a fast versus a slow simple moving average.

The rule, evaluated on every closed bar once both averages are ready:

- ``fast > slow`` and not long: buy (a short is reversed: one order covers
  it and opens the long).
- ``fast < slow`` and long: sell to close the long; with ``allow_short`` and not
  already short, sell to go short instead (one order reverses the long).
- ``fast == slow``: nothing.

Because it is a regime rule, not a crossing event, a flat strategy signals on
the first bar at which both averages are ready: users expect a signal soon after
starting, not at the next crossing, which may be hours away.

Entries carry ``quantity=None`` (the runtime sizes them); exits carry the held
quantity. ``confidence = min(1, |fast - slow| / slow * 100)``: a spread of 1% of
the slow average or more is full confidence. ``metadata`` is
``{"orderType": "MARKET", "fast": fast, "slow": slow, "reason": ...}``, the reason
"entry", "exit" or "reversal".
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.indicators import DualSMA


class SmaCrossoverParams(StrategyParams):
    fast: int = Field(5, ge=1, le=1000, description="Bars in the fast moving average.")
    slow: int = Field(
        20, ge=2, le=5000, description="Bars in the slow moving average; must exceed fast."
    )
    allow_short: bool = Field(
        False, description="Go short when fast < slow; otherwise only close longs."
    )

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


class SmaCrossover(Strategy[SmaCrossoverParams]):
    """Moving Average Crossover; see the module docstring for the exact rule."""

    params_model = SmaCrossoverParams

    def __init__(self, params: SmaCrossoverParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._by_symbol: dict[str, DualSMA] = {}

    @property
    def warmup_bars(self) -> int:
        return self.params.slow

    def on_bar(self, bar: Bar) -> None:
        averages = self._averages_of(bar.symbol)
        regime = averages.update(bar.close)
        means = averages.value
        if regime is None or means is None:
            return
        fast, slow = means
        metadata = {"orderType": "MARKET", "fast": fast, "slow": slow}
        confidence = _spread_confidence(fast, slow)
        if regime > 0:
            self.enter_long(bar.symbol, bar.close, confidence, **metadata)
        elif regime < 0:
            self._leave_long(bar, confidence, metadata)

    def _leave_long(self, bar: Bar, confidence: float, metadata: dict[str, object]) -> None:
        if self.params.allow_short:
            self.enter_short(bar.symbol, bar.close, confidence, **metadata)
        elif self.position(bar.symbol) > 0:
            self.close_position(bar.symbol, bar.close, confidence, **metadata)

    def _averages_of(self, symbol: str) -> DualSMA:
        averages = self._by_symbol.get(symbol)
        if averages is None:
            averages = self._by_symbol[symbol] = DualSMA(self.params.fast, self.params.slow)
        return averages


def _spread_confidence(fast: float, slow: float) -> float:
    if slow == 0:
        return 1.0
    return min(1.0, abs(fast - slow) / abs(slow) * 100.0)
