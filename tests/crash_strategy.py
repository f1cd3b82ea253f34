"""A strategy that trades on almost every tick, for the crash and restart test.

Named in a catalog as ``tests.crash_strategy:Churn``. On each tick it buys or
sells 1 to ``max_order`` units, chosen by a seeded random generator, so that its
position in each symbol is a random walk between ``-max_units`` and
``max_units``: positions grow, shrink and reverse, which exercises the average
entry price and realized P&L that a restart must rebuild from the fills.
"""

from __future__ import annotations

import random

from pydantic import Field

from orchestrator.model.market import Tick
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams


class ChurnParams(StrategyParams):
    seed: int = Field(1, ge=0, description="Seed of the buy/sell and size choices.")
    max_order: int = Field(3, ge=1, le=100, description="Most units per order.")
    max_units: int = Field(10, ge=1, le=10_000, description="Largest position either way.")


class Churn(Strategy[ChurnParams]):
    params_model = ChurnParams

    def __init__(self, params: ChurnParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._random = random.Random(params.seed)

    def on_tick(self, tick: Tick) -> None:
        held = self.position(tick.symbol)  # orders in flight included
        quantity = float(self._random.randint(1, self.params.max_order))
        buy = self._random.random() < 0.5
        if held + quantity > self.params.max_units:
            buy = False
        elif held - quantity < -self.params.max_units:
            buy = True
        if buy:
            self.buy(tick.symbol, tick.price, quantity=quantity, orderType="MARKET")
        else:
            self.sell(tick.symbol, tick.price, quantity=quantity, orderType="MARKET")
