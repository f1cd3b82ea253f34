"""A strategy for the latency benchmark: it trades on every tick.

Named in a catalog as ``bench.tick_strategy:EveryTick``. Flat, it buys one
unit; long, it sells it; the order fills on the symbol's next tick. So from the
second tick on, every tick fills the previous tick's order (one
``strategy_trade``) and sends a new one (one ``strategy_signal``).
"""

from __future__ import annotations

from orchestrator.model.market import Tick
from orchestrator.strategy.api import Strategy, StrategyParams


class EveryTick(Strategy[StrategyParams]):
    params_model = StrategyParams

    def on_tick(self, tick: Tick) -> None:
        if self.position(tick.symbol) <= 0:
            self.buy(tick.symbol, tick.price, quantity=1.0, orderType="MARKET")
        else:
            self.sell(tick.symbol, tick.price, quantity=1.0, orderType="MARKET")
