"""Strategies with scripted behaviour, named by dotted path in test catalogs."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyParams


class ScriptParams(StrategyParams):
    fail_on_bar: int = Field(0, ge=0, description="Raise on this bar number (1-based); 0 never.")
    quantity: float = Field(10, gt=0, description="Units per entry.")


class BuyThenHold(Strategy[ScriptParams]):
    """Buys ``quantity`` on the first bar of each symbol, then holds; may raise on a bar."""

    params_model = ScriptParams

    def __init__(self, params: ScriptParams, context: object) -> None:
        super().__init__(params, context)  # type: ignore[arg-type]
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars == self.params.fail_on_bar:
            raise ZeroDivisionError("scripted failure")
        if self.position(bar.symbol) == 0:
            self.buy(bar.symbol, bar.close, quantity=self.params.quantity, orderType="MARKET")


class AlwaysReverse(Strategy[ScriptParams]):
    """On every bar: go long if flat or short, else go short (each a reversal)."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.symbol) <= 0:
            self.enter_long(bar.symbol, bar.close)
        else:
            self.enter_short(bar.symbol, bar.close)


class AlwaysEnter(Strategy[ScriptParams]):
    """On every bar: enter long if flat (sized by the runtime), else close the position."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.symbol) == 0:
            self.enter_long(bar.symbol, bar.close)
        else:
            self.close_position(bar.symbol, bar.close)


class BuyEveryBar(Strategy[ScriptParams]):
    """Buys ``quantity`` on every bar, whatever it holds: the same order again and again."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        self.buy(bar.symbol, bar.close, quantity=self.params.quantity, orderType="MARKET")


class AlternateBuys(Strategy[ScriptParams]):
    """Buys ``quantity`` on odd bars and one more on even bars: two orders, each asked
    again every other bar (so a refusal of one is not the last refusal remembered)."""

    params_model = ScriptParams

    def __init__(self, params: ScriptParams, context: Any) -> None:
        super().__init__(params, context)
        self._bars = 0

    def on_bar(self, bar: Bar) -> None:
        self._bars += 1
        extra = 1 if self._bars % 2 == 0 else 0
        self.buy(bar.symbol, bar.close, quantity=self.params.quantity + extra, orderType="MARKET")


class RestingBracket(Strategy[ScriptParams]):
    """Flat with nothing resting: a limit buy of ``quantity`` 1 % below the close, with a
    stop-loss 5 % and a take-profit 2 % from the limit."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.symbol) == 0 and not self.open_orders(bar.symbol):
            limit = round(bar.close * 0.99, 2)
            self.buy(
                bar.symbol,
                bar.close,
                quantity=self.params.quantity,
                limit=limit,
                stop_loss=round(limit * 0.95, 2),
                take_profit=round(limit * 1.02, 2),
            )


class RestingLadder(Strategy[ScriptParams]):
    """Once, when flat with nothing resting: a market buy of ``quantity`` with a bracket
    (stop-loss at half the close, take-profit at twice it), a limit buy at half the
    close and a stop buy at twice it with a bracket. Nothing a random walk reaches in
    a test's seconds: they rest, and a restart must find them."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        symbol, close = bar.symbol, bar.close
        if self.position(symbol) != 0 or self.open_orders(symbol):
            return
        quantity = self.params.quantity
        low, high = round(close * 0.5, 2), round(close * 2.0, 2)
        self.buy(symbol, close, quantity=quantity, stop_loss=low, take_profit=high)
        self.buy(symbol, close, quantity=quantity, limit=low)
        self.buy(symbol, close, quantity=quantity, stop=high, stop_loss=close, take_profit=high * 2)


class ChasingBracket(Strategy[ScriptParams]):
    """RestingBracket's entry, chased: flat with nothing resting, a limit buy of
    ``quantity`` 1 % below the close with the same bracket; while that entry rests, each
    bar moves its limit to 1 % below the new close (a replace, same id)."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        limit = round(bar.close * 0.99, 2)
        entries = [o for o in self.open_orders(bar.symbol) if o.parent_id is None]
        if entries and entries[0].limit_price != limit:
            self.replace(entries[0].id, limit=limit)
        elif self.position(bar.symbol) == 0 and not self.open_orders(bar.symbol):
            self.buy(
                bar.symbol,
                bar.close,
                quantity=self.params.quantity,
                limit=limit,
                stop_loss=round(limit * 0.95, 2),
                take_profit=round(limit * 1.02, 2),
            )


class RestingLimitBuy(Strategy[ScriptParams]):
    """Once, when flat with nothing resting: a limit buy of ``quantity`` 1 % below the
    close (on a venue: it rests there)."""

    params_model = ScriptParams

    def __init__(self, params: ScriptParams, context: object) -> None:
        super().__init__(params, context)  # type: ignore[arg-type]
        self.placed = False

    def on_bar(self, bar: Bar) -> None:
        if self.placed or self.position(bar.symbol) != 0 or self.open_orders(bar.symbol):
            return
        self.placed = True
        limit = round(bar.close * 0.99, 2)
        self.buy(bar.symbol, bar.close, quantity=self.params.quantity, limit=limit)


class StopParams(ScriptParams):
    stops: list[float] = Field(
        default_factory=lambda: [0.01],
        description="One stop buy per entry, its stop this fraction above the close.",
    )
    limit_offset: float | None = Field(
        0.005,
        description="A stop-limit's limit above its stop, as a fraction of the close; "
        "None: stop (market) orders.",
    )


class RestingStopBuys(Strategy[StopParams]):
    """Once, when flat with nothing resting: per fraction in ``stops``, a stop-limit buy
    of ``quantity`` (a stop buy when ``limit_offset`` is None) with its stop that far
    above the close (on a venue that takes them: they rest there)."""

    params_model = StopParams

    def __init__(self, params: StopParams, context: object) -> None:
        super().__init__(params, context)  # type: ignore[arg-type]
        self.placed = False

    def on_bar(self, bar: Bar) -> None:
        if self.placed or self.position(bar.symbol) != 0 or self.open_orders(bar.symbol):
            return
        self.placed = True
        offset = self.params.limit_offset
        for fraction in self.params.stops:
            stop = round(bar.close * (1 + fraction), 2)
            limit = None if offset is None else round(stop + bar.close * offset, 2)
            self.buy(bar.symbol, bar.close, quantity=self.params.quantity, stop=stop, limit=limit)


class ProtectedLong(Strategy[ScriptParams]):
    """Flat: a market buy of ``quantity``; long with nothing resting: a protective
    stop-limit sell of the position, its stop 1 % below the close and its limit 1.5 %
    (on a venue that takes it: it rests there, and holds while the daemon is down)."""

    params_model = ScriptParams

    def on_bar(self, bar: Bar) -> None:
        held = self.position(bar.symbol)
        if held == 0:
            self.buy(bar.symbol, bar.close, quantity=self.params.quantity, orderType="MARKET")
        elif held > 0 and not self.open_orders(bar.symbol):
            stop, limit = round(bar.close * 0.99, 2), round(bar.close * 0.985, 2)
            self.sell(bar.symbol, bar.close, quantity=held, stop=stop, limit=limit)
