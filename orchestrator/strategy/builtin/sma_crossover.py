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
"entry", "exit" or "reversal". Where nobody reads them (a backtest:
``describes_signals`` is False) only the reason is sent, with confidence 1.

Its indicator lines (``indicators``): ``SMA <fast>`` and ``SMA <slow>``, once both
averages are ready.

In a backtest the averages of every bar are computed at once before the first
(``precompute``, :class:`~orchestrator.strategy.indicators.DualSMASeries`: the
same regimes and the same bits as updating bar by bar), and each bar reads its
own; live, each bar updates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import Field, model_validator

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.indicators import DualSMA, DualSMASeries


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
        self._by_symbol: dict[str, _Averages] = {}
        self._allow_short = params.allow_short
        self._position_of = context.position
        """The context's own method: ``Strategy.position`` would add a call per bar."""
        self._describes_signals = context.describes_signals
        """Whether to compute confidence and metadata: a backtest ignores them."""

    @property
    def warmup_bars(self) -> int:
        return self.params.slow

    def precompute(self, symbol: str, bars: Sequence[Bar]) -> None:
        averages = self._averages(symbol)
        averages.precompute(bars)

    def on_bar(self, bar: Bar) -> None:
        # Most bars change nothing: the averages move, the regime and the position
        # stay. Those cost one indicator update and one look at the position; the
        # averages, confidence and metadata are built only for a bar that signals.
        symbol = bar.symbol
        averages = self._by_symbol.get(symbol)
        if averages is None:
            averages = self._averages(symbol)
        index = averages.upcoming
        if index < len(averages.bars) and averages.bars[index] is bar:
            # The bar computed ahead (a backtest's), read in place: a call less a bar.
            averages.upcoming = index + 1
            regime = averages.regimes[index]
        else:
            regime = averages.update(bar)
        if not regime:  # None while the averages warm up, 0 when they are level
            return
        held = self._position_of(symbol)
        if regime > 0:
            if held <= 0:
                self._go_long(bar, averages)
        elif held > 0 or (held == 0 and self._allow_short):
            self._leave_long(bar, averages)

    def _averages(self, symbol: str) -> _Averages:
        averages = self._by_symbol.get(symbol)
        if averages is None:
            averages = self._by_symbol[symbol] = _Averages(self.params.fast, self.params.slow)
        return averages

    def indicators(self, symbol: str) -> Mapping[str, float]:
        averages = self._by_symbol.get(symbol)
        means = averages.value if averages is not None else None
        if means is None:
            return {}
        return {f"SMA {self.params.fast}": means[0], f"SMA {self.params.slow}": means[1]}

    def _go_long(self, bar: Bar, averages: _Averages) -> None:
        confidence, metadata = self._signal_terms(averages)
        self.enter_long(bar.symbol, bar.close, confidence, **metadata)

    def _leave_long(self, bar: Bar, averages: _Averages) -> None:
        confidence, metadata = self._signal_terms(averages)
        if self._allow_short:
            self.enter_short(bar.symbol, bar.close, confidence, **metadata)
        else:
            self.close_position(bar.symbol, bar.close, confidence, **metadata)

    def _signal_terms(self, averages: _Averages) -> tuple[float, dict[str, Any]]:
        """The confidence and metadata of a signal, from the averages of its bar; none
        where nobody reads them (a backtest: a tenth of its time went into them)."""
        if not self._describes_signals:
            return 1.0, {}
        means = averages.value
        assert means is not None  # asked only once the regime is known
        fast, slow = means
        return _spread_confidence(fast, slow), {"orderType": "MARKET", "fast": fast, "slow": slow}


class _Averages:
    """One symbol's two averages: read from those computed ahead over a backtest's
    bars while the bars are those, else updated bar by bar."""

    __slots__ = ("_ahead", "_fast", "_live", "_slow", "bars", "regimes", "upcoming")

    def __init__(self, fast: int, slow: int) -> None:
        self._fast, self._slow = fast, slow
        self._live: DualSMA | None = None
        self._ahead: DualSMASeries | None = None
        self.bars: Sequence[Bar] = ()
        """The bars computed ahead; ``regimes`` has the regime after each."""
        self.regimes: Sequence[int | None] = ()
        self.upcoming = 0
        """The index in ``bars`` of the bar expected next."""

    def precompute(self, bars: Sequence[Bar]) -> None:
        """Compute the averages of every bar of ``bars`` (the bars to come) at once."""
        try:
            ahead = DualSMASeries([bar.close for bar in bars], self._fast, self._slow)
        except ValueError:
            return  # a price that is no number: update() raises at its bar, as live
        self._live, self._ahead, self.bars, self.upcoming = None, ahead, bars, 0
        self.regimes = ahead.regimes

    def update(self, bar: Bar) -> int | None:
        """The regime after ``bar``, which is not the one computed ahead (or none was):
        +1 fast above slow, -1 below, 0 level, None warming up."""
        live = self._live
        if live is None:
            # Another bar than the one computed ahead (or nothing was): go on one by
            # one from the bars seen so far (the last slow - 1 and this one are the
            # window the averages are taken over).
            live = self._live = DualSMA(self._fast, self._slow)
            seen = self.bars[max(self.upcoming - self._slow + 1, 0) : self.upcoming]
            for earlier in seen:
                live.update(earlier.close)
            self._ahead, self.bars, self.regimes = None, (), ()
        return live.update(bar.close)

    @property
    def value(self) -> tuple[float, float] | None:
        """``(fast, slow)`` after the last bar; None while warming up."""
        if self._ahead is not None:
            return self._ahead.value_at(self.upcoming - 1)
        return self._live.value if self._live is not None else None


def _spread_confidence(fast: float, slow: float) -> float:
    if slow == 0:
        return 1.0
    return min(1.0, abs(fast - slow) / abs(slow) * 100.0)
