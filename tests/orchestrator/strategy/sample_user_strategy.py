"""An example user strategy in its own module, loaded by dotted path in the tests.

Rule: buy a bar that closes at least ``min_drop`` below its open while not long.
"""

from __future__ import annotations

from pydantic import Field

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyParams


class DipBuyerParams(StrategyParams):
    min_drop: float = Field(
        0.01, ge=0, le=0.5, description="Fractional drop from open to close that triggers a buy."
    )


class DipBuyer(Strategy[DipBuyerParams]):
    params_model = DipBuyerParams

    def on_bar(self, bar: Bar) -> None:
        dropped = bar.close <= bar.open * (1 - self.params.min_drop)
        if dropped and self.position(bar.symbol) <= 0:
            self.buy(bar.symbol, bar.close, confidence=0.5, orderType="MARKET")


class NotAStrategy:
    """A class that happens to live next to a strategy."""


def not_a_class() -> None:
    """A function that happens to live next to a strategy."""
