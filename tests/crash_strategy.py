"""Strategies that trade on almost every tick, for the crash and restart tests.

Named in a catalog as ``tests.crash_strategy:Churn``: on each tick it buys or
sells 1 to ``max_order`` units, chosen by a seeded random generator, so that its
position in each symbol is a random walk between ``-max_units`` and
``max_units``: positions grow, shrink and reverse, which exercises the average
entry price and realized P&L that a restart must rebuild from the fills.
``tests.crash_strategy:RestingChurn`` also places, cancels and replaces limit orders
(on a venue they rest there and fill in parts).
"""

from __future__ import annotations

import random

from pydantic import Field

from orchestrator.model.market import Tick
from orchestrator.model.orders import BUY, SELL, Order, Side, TimeInForce
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


class RestingChurnParams(ChurnParams):
    most_resting: int = Field(4, ge=1, le=100, description="Most limit orders resting at once.")
    offset: float = Field(
        0.002, gt=0.0, lt=0.1, description="Furthest a resting limit is from the price, as a share."
    )
    new_quantity_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of the replaces that also change the quantity."
    )


class RestingChurn(Strategy[RestingChurnParams]):
    """On each tick, a seeded choice among: a market order, a GTC limit order a little
    away from the price (on a venue it rests there and fills in parts as the price
    moves through it), a marketable IOC limit (a part at once, the rest expires), a
    cancel or a replace (a new limit nearer the price, a share of them with a new
    quantity: ``new_quantity_share``) of one of its resting orders.

    Long only, between 0 and ``max_units`` counting what rests: a spot account sells
    only what it holds (the venue refuses the rest, which the crash test allows)."""

    params_model = RestingChurnParams

    def __init__(self, params: RestingChurnParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self._random = random.Random(params.seed)

    def on_tick(self, tick: Tick) -> None:
        resting = self.open_orders(tick.symbol)
        choice = self._random.random()
        if choice < 0.15 and resting:
            self.cancel(self._random.choice(resting).id)
        elif choice < 0.35 and resting:
            self._replace(tick, resting)
        elif choice < 0.6 and len(resting) < self.params.most_resting:
            self._limit(tick, resting, TimeInForce.GTC)
        elif choice < 0.7:
            self._limit(tick, resting, TimeInForce.IOC)
        else:
            self._market(tick, resting)

    def _replace(self, tick: Tick, resting: list[Order]) -> None:
        """Halfway to the price (a replace that fills sooner than the order it replaces),
        and for ``new_quantity_share`` of them a new quantity of whole units within the
        room, larger or smaller than what rests (on a venue the new revision is of the
        new quantity). With a share of 0 nothing more is drawn from the seeded stream."""
        order = self._random.choice(resting)
        assert order.limit_price is not None
        limit = round((order.limit_price + tick.price) / 2, 2)
        quantity = None
        share = self.params.new_quantity_share
        if share and self._random.random() < share:
            can_buy, can_sell = self._room(tick.symbol, resting)
            room = order.quantity + (can_buy if order.side is BUY else can_sell)
            sizes = [q for q in range(1, self.params.max_order + 1) if q <= room]
            quantity = float(self._random.choice(sizes)) if sizes else None
        self.replace(order.id, limit=limit, quantity=quantity)

    def _room(self, symbol: str, resting: list[Order]) -> tuple[float, float]:
        """How much may be bought and sold now, counting the resting orders."""
        held = self.position(symbol)  # orders in flight included
        buys = sum(o.quantity for o in resting if o.side is BUY)
        sells = sum(o.quantity for o in resting if o.side is SELL)
        return self.params.max_units - held - buys, held - sells

    def _side(self, symbol: str, resting: list[Order]) -> tuple[Side, float] | None:
        """A seeded side and quantity within the room, or None (no room either way)."""
        quantity = float(self._random.randint(1, self.params.max_order))
        can_buy, can_sell = self._room(symbol, resting)
        sides = [side for side, room in ((BUY, can_buy), (SELL, can_sell)) if room >= quantity]
        return (self._random.choice(sides), quantity) if sides else None

    def _limit(self, tick: Tick, resting: list[Order], force: TimeInForce) -> None:
        chosen = self._side(tick.symbol, resting)
        if chosen is None:
            return
        side, quantity = chosen
        away = self._random.uniform(0.0, self.params.offset)
        # GTC: behind the price, so it rests; IOC: through it, so part of it fills at once.
        sign = -side.sign if force is TimeInForce.GTC else side.sign
        limit = round(tick.price * (1 + sign * away), 2)
        trade = self.buy if side is BUY else self.sell
        trade(tick.symbol, tick.price, quantity=quantity, limit=limit, time_in_force=force)

    def _market(self, tick: Tick, resting: list[Order]) -> None:
        chosen = self._side(tick.symbol, resting)
        if chosen is None:
            return
        side, quantity = chosen
        trade = self.buy if side is BUY else self.sell
        trade(tick.symbol, tick.price, quantity=quantity, orderType="MARKET")
