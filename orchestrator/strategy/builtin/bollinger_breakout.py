"""Bollinger Band Breakout: follow a close outside the bands, exit back at the middle.

The bands are the rolling mean of ``period`` closes plus and minus ``num_std``
population standard deviations. The rule, evaluated on every closed bar once
the bands are ready (``z = (close - middle) / std``):

- ``close > upper`` and not long: buy (a short is reversed: one order covers
  it and opens the long).
- ``close < lower``, ``allow_short`` and not short: sell (a long is reversed
  the same way).
- ``close < middle`` and long: sell to close the long.
- ``close > middle`` and short: buy to close the short (the mirror of the long
  exit, so a short is not held until an upside breakout).
- otherwise: nothing.

Entries carry ``quantity=None`` (the runtime sizes them); exits carry the held
quantity. Confidence measures how far the close is from the middle: for an
entry ``min(1, |z| / (2 * num_std))`` (0.5 on the band, 1 at twice its
distance), for an exit ``min(1, |z| / num_std)`` (0 at the middle, 1 at the
opposite band). ``metadata`` is
``{"orderType": "MARKET", "middle": .., "upper": .., "lower": .., "reason": ...}``, the
reason "entry", "exit" or "reversal".

Its indicator lines (``indicators``): the ``upper``, ``middle`` and ``lower`` bands,
once they are ready.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.indicators import BollingerBands


class BollingerBreakoutParams(StrategyParams):
    period: int = Field(20, ge=2, le=5000, description="Closes in the rolling window.")
    num_std: float = Field(
        2.0, gt=0, le=10, description="Band distance from the middle, in standard deviations."
    )
    allow_short: bool = Field(
        False, description="Go short on a close below the lower band; otherwise only go long."
    )


class BollingerBreakout(Strategy[BollingerBreakoutParams]):
    """Bollinger Band Breakout; see the module docstring for the exact rule."""

    params_model = BollingerBreakoutParams

    def __init__(self, params: BollingerBreakoutParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._by_symbol: dict[str, BollingerBands] = {}

    @property
    def warmup_bars(self) -> int:
        return self.params.period

    def on_bar(self, bar: Bar) -> None:
        indicator = self._indicator(bar.symbol)
        bands = indicator.update(bar.close)
        if bands is None or indicator.std is None:
            return
        symbol, close = bar.symbol, bar.close
        held = self.position(symbol)
        metadata = {"orderType": "MARKET", **bands._asdict()}
        z = _z_score(close, bands.middle, indicator.std)
        entry_confidence = min(1.0, abs(z) / (2 * self.params.num_std))
        exit_confidence = min(1.0, abs(z) / self.params.num_std)
        if close > bands.upper:
            self.enter_long(symbol, close, entry_confidence, **metadata)
        elif close < bands.lower and self.params.allow_short:
            self.enter_short(symbol, close, entry_confidence, **metadata)
        elif (close < bands.middle and held > 0) or (close > bands.middle and held < 0):
            self.close_position(symbol, close, exit_confidence, **metadata)

    def indicators(self, symbol: str) -> Mapping[str, float]:
        indicator = self._by_symbol.get(symbol)
        bands = indicator.value if indicator is not None else None
        if bands is None:
            return {}
        return {"upper": bands.upper, "middle": bands.middle, "lower": bands.lower}

    def _indicator(self, symbol: str) -> BollingerBands:
        indicator = self._by_symbol.get(symbol)
        if indicator is None:
            indicator = BollingerBands(self.params.period, self.params.num_std)
            self._by_symbol[symbol] = indicator
        return indicator


def _z_score(close: float, middle: float, std: float) -> float:
    # The close is part of the window, so a window without spread has close == middle.
    return (close - middle) / std if std > 0 else 0.0
