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

Its indicator lines (``indicators``): ``SMA <fast>`` and ``SMA <slow>``, once both
averages are ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

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
        self._allow_short = params.allow_short
        self._position_of = context.position
        """The context's own method: ``Strategy.position`` would add a call per bar."""

    @property
    def warmup_bars(self) -> int:
        return self.params.slow

    def on_bar(self, bar: Bar) -> None:
        # Most bars change nothing: the averages move, the regime and the position
        # stay. Those cost one indicator update and one look at the position; the
        # averages, confidence and metadata are built only for a bar that signals.
        symbol = bar.symbol
        averages = self._by_symbol.get(symbol)
        if averages is None:
            averages = self._by_symbol[symbol] = DualSMA(self.params.fast, self.params.slow)
        regime = averages.update(bar.close)
        if not regime:  # None while the averages warm up, 0 when they are level
            return
        held = self._position_of(symbol)
        if regime > 0:
            if held <= 0:
                self._go_long(bar, averages)
        elif held > 0 or (held == 0 and self._allow_short):
            self._leave_long(bar, averages)

    def indicators(self, symbol: str) -> Mapping[str, float]:
        averages = self._by_symbol.get(symbol)
        means = averages.value if averages is not None else None
        if means is None:
            return {}
        return {f"SMA {self.params.fast}": means[0], f"SMA {self.params.slow}": means[1]}

    def _go_long(self, bar: Bar, averages: DualSMA) -> None:
        confidence, metadata = self._signal_terms(averages)
        self.enter_long(bar.symbol, bar.close, confidence, **metadata)

    def _leave_long(self, bar: Bar, averages: DualSMA) -> None:
        confidence, metadata = self._signal_terms(averages)
        if self._allow_short:
            self.enter_short(bar.symbol, bar.close, confidence, **metadata)
        else:
            self.close_position(bar.symbol, bar.close, confidence, **metadata)

    @staticmethod
    def _signal_terms(averages: DualSMA) -> tuple[float, dict[str, Any]]:
        """The confidence and metadata of a signal, from the averages of its bar."""
        means = averages.value
        assert means is not None  # asked only once the regime is known
        fast, slow = means
        return _spread_confidence(fast, slow), {"orderType": "MARKET", "fast": fast, "slow": slow}


def _spread_confidence(fast: float, slow: float) -> float:
    if slow == 0:
        return 1.0
    return min(1.0, abs(fast - slow) / abs(slow) * 100.0)
