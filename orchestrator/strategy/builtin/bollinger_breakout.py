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

Two options use resting orders (docs/orders.md); their defaults keep the rule above
exactly:

- ``entry = "stop"``: a breakout stop entry at the band instead of a market order
  after the close. While flat, a buy stop rests at the upper band when the close is
  at or above the middle, or (``allow_short``) a sell stop at the lower band when it
  is below; after each bar it is cancelled and placed again at the new band when the
  band moved (or the side changed). It fills when the price trades through the band
  (a gap through it: at the open); a band already crossed by the close triggers at
  the next price, as the market entry would. While a position is held nothing rests
  but its bracket; the exit at the middle is unchanged, and there is no reversal: a
  position closes before the other side's stop rests. ``metadata["orderType"]`` is
  "STOP" and its confidence 0.5 (the band's).
- ``stop_loss_pct`` / ``take_profit_pct``: a bracket on every entry, its stop-loss and
  target this fraction from the entry's expected price (the close for a market
  entry, the stop for a stop entry); 0 leaves that exit out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from orchestrator.model.market import Bar
from orchestrator.model.orders import BUY, SELL, OrderPurpose, Side
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.indicators import Bands, BollingerBands


class BollingerBreakoutParams(StrategyParams):
    period: int = Field(20, ge=2, le=5000, description="Closes in the rolling window.")
    num_std: float = Field(
        2.0, gt=0, le=10, description="Band distance from the middle, in standard deviations."
    )
    allow_short: bool = Field(
        False, description="Go short on a close below the lower band; otherwise only go long."
    )
    entry: Literal["market", "stop"] = Field(
        "market",
        description="market: enter at the next price after a close outside the bands; stop: "
        "rest a stop order at the band the close is nearer, entering as the price breaks out.",
    )
    stop_loss_pct: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="A stop-loss on each entry, this fraction from its price (0: none).",
    )
    take_profit_pct: float = Field(
        0.0,
        ge=0,
        le=10,
        description="A take-profit on each entry, this fraction from its price (0: none).",
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
        back_inside = (close < bands.middle and held > 0) or (close > bands.middle and held < 0)
        if self.params.entry == "stop":
            self._rest_breakout(bar, held, bands)
            if back_inside:
                self.close_position(symbol, close, exit_confidence, **metadata)
        elif close > bands.upper:
            bracket = self._bracket(BUY, close)
            self.enter_long(symbol, close, entry_confidence, **bracket, **metadata)
        elif close < bands.lower and self.params.allow_short:
            bracket = self._bracket(SELL, close)
            self.enter_short(symbol, close, entry_confidence, **bracket, **metadata)
        elif back_inside:
            self.close_position(symbol, close, exit_confidence, **metadata)

    def _rest_breakout(self, bar: Bar, held: float, bands: Bands) -> None:
        """Flat: the stop entry at the band on the close's side of the middle, placed
        again when the band moved; holding: no entry rests (the bracket's exits may)."""
        symbol = bar.symbol
        side: Side | None = None
        if held == 0:
            side = BUY if bar.close >= bands.middle else SELL if self.params.allow_short else None
        level = bands.upper if side is BUY else bands.lower
        resting = False
        for order in self.open_orders(symbol):
            if order.purpose is not OrderPurpose.SIGNAL:
                continue
            if order.side is side and order.stop_price == level and not resting:
                resting = True
            else:
                self.cancel(order.id)
        if side is None or resting:
            return
        place = self.buy if side is BUY else self.sell
        metadata = {"orderType": "STOP", **bands._asdict(), "reason": "entry"}
        place(symbol, bar.close, None, 0.5, stop=level, **self._bracket(side, level), **metadata)

    def _bracket(self, side: Side, price: float) -> dict[str, Any]:
        """The stop-loss and take-profit of an entry expected at ``price`` (none at 0)."""
        bracket: dict[str, Any] = {}
        if self.params.stop_loss_pct > 0:
            bracket["stop_loss"] = price * (1 - side.sign * self.params.stop_loss_pct)
        if self.params.take_profit_pct > 0:
            bracket["take_profit"] = price * (1 + side.sign * self.params.take_profit_pct)
        return bracket

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
