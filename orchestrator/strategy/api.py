"""The API a strategy is written against.

A strategy is one class in one file: a :class:`Strategy` subclass with a
:class:`StrategyParams` model. The daemon's config names it by a built-in name
(``sma_crossover``) or by a dotted import path (``mypackage.momentum:Momentum``),
so a new strategy needs no change to the daemon. A minimal one::

    class BuyDipsParams(StrategyParams):
        drop: float = Field(0.01, gt=0, le=0.5, description="Fractional drop that triggers a buy.")

    class BuyDips(Strategy[BuyDipsParams]):
        params_model = BuyDipsParams

        def on_bar(self, bar: Bar) -> None:
            if bar.close < bar.open * (1 - self.params.drop) and self.position(bar.symbol) <= 0:
                self.buy(bar.symbol, bar.close, confidence=0.6, orderType="MARKET")

The contract between a strategy and the runtime that drives it:

- Bars arrive closed and in time order for each (symbol, resolution); the
  runtime delivers only the resolution the strategy was started with, so a
  strategy keys its state by symbol.
- Before going live the runtime feeds :attr:`Strategy.warmup_bars` past bars
  per symbol through ``on_bar``; signals emitted during warm-up are discarded.
- Callbacks run on the daemon's event loop: they must return quickly and never
  block (no sleeping, no network or disk I/O).
- An exception raised from a callback puts the strategy in ``ERROR``; the
  runtime catches it, records the reason and stops delivering data.
- A signal with ``quantity=None`` is sized by the runtime's sizing rule,
  bounded by the strategy's ``maxPositionValue``. Every signal then passes the
  risk checks before the paper broker fills it, so a signal is a wish, not a
  fill: read :meth:`StrategyContext.position` to learn what you hold.
- While the strategy is ``PAUSED`` the runtime drops signals that would open or
  increase a position; signals that reduce or close one still go through, and
  of one that would cross to the other side only the part that closes it.
- ``buy``, ``sell``, ``enter_long`` and ``enter_short`` place market orders
  unless told otherwise: ``limit=`` and/or ``stop=`` make a limit, stop or
  stop-limit order that rests until a price triggers it; ``stop_loss=``,
  ``take_profit=`` and ``trailing=`` make a bracket, whose exits the entry's
  fill arms; ``time_in_force=`` is GTC (default), DAY or IOC. ``open_orders``,
  ``cancel`` and ``replace`` manage the resting ones. docs/orders.md has the
  fill rules.
- A backtest, which knows its bars in advance, first hands each symbol's bars to
  :meth:`Strategy.precompute` (live trading never does): a strategy may compute
  its indicators over them at once, but what it decides at a bar must depend
  only on the bars up to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import (
    BUY,
    SELL,
    Bracket,
    Order,
    OrderTerms,
    OrderType,
    Side,
    TimeInForce,
    Trailing,
    terms_problem,
)

GTC = TimeInForce.GTC


class StrategyParams(BaseModel):
    """Base for each strategy's parameters.

    Subclasses declare every field with ``Field(default, <bounds>, description=...)``
    so that a typo or an out-of-range value is an error when the strategy is
    configured, not a silent default at trading time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategyContext(Protocol):
    """What the runtime gives a strategy: identity, time, positions and an outlet."""

    @property
    def strategy_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def describes_signals(self) -> bool:
        """Whether a signal's confidence and metadata go anywhere: live each signal is
        published and journaled with them; a backtest keeps fills and trades, not
        signals, and ignores them. A strategy may skip computing them when False."""
        ...

    def now(self) -> float:
        """Seconds since the Unix epoch, UTC, from the daemon's clock."""
        ...

    def position(self, symbol: str) -> float:
        """Signed quantity held: positive long, negative short, 0 flat."""
        ...

    def emit(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
    ) -> str | None:
        """Turn a wish to trade into a Signal; sizing, risk and the broker follow.
        Returns the order's id, None when no order was sent."""
        ...

    def place(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms,
    ) -> str | None:
        """``emit`` with the order's type, prices, time in force and bracket; returns the
        order's id, or None when no order was placed (sized to nothing, held back)."""
        ...

    def open_orders(self, symbol: str) -> list[Order]:
        """The strategy's resting orders in ``symbol``, oldest first."""
        ...

    def cancel(self, order_id: str) -> bool:
        """Cancel a resting order; False when none of the strategy's has this id."""
        ...

    def replace(
        self,
        order_id: str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> bool:
        """Change a resting order; False when there is none or risk refuses the change."""
        ...


P = TypeVar("P", bound=StrategyParams)


class Strategy(Generic[P]):
    """Base class of every strategy; override ``on_bar`` and/or ``on_tick``.

    See the module docstring for the contract with the runtime.
    """

    params_model: ClassVar[type[StrategyParams]] = StrategyParams
    """The parameters this strategy accepts; ``build_params`` validates with it."""

    def __init__(self, params: P, context: StrategyContext) -> None:
        self.params = params
        self.context = context

    @property
    def warmup_bars(self) -> int:
        """How many past bars per symbol the runtime feeds before going live."""
        return 0

    def precompute(self, symbol: str, bars: Sequence[Bar]) -> None:
        """Told by a backtest, before its first bar, every bar of ``symbol`` that
        ``on_bar`` will then get, in order (the warm-up bars first), as the same
        objects: the place to compute indicators over the whole series at once, as
        vectorised backtesters do. What ``on_bar`` decides at a bar must still depend
        only on the bars up to it (no look-ahead). Live trading never calls it, and
        ``on_bar`` must work without it. The default: nothing.
        """

    def on_bar(self, bar: Bar) -> None:
        """Called once per closed bar of the strategy's resolution, per symbol."""

    def on_tick(self, tick: Tick) -> None:
        """Called on every trade or quote print of the strategy's symbols."""

    def indicators(self, symbol: str) -> Mapping[str, float]:
        """The current values of this strategy's indicator lines in ``symbol``, by name,
        in price units: the lines a chart draws over the price (an SMA, a band).

        The runtime asks after each ``on_bar`` (warm-up bars included) and sends what it
        gets as ``strategy_indicators``; a line still warming up is left out, and a
        value that is not a finite number is dropped. The default: no lines.
        """
        return {}

    def position(self, symbol: str) -> float:
        """Signed quantity held in ``symbol`` (positive long, negative short)."""
        return self.context.position(symbol)

    def buy(
        self,
        symbol: str,
        price: float,
        quantity: float | None = None,
        confidence: float = 1.0,
        *,
        limit: float | None = None,
        stop: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing: float | Trailing | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        **metadata: Any,
    ) -> str | None:
        """Signal a buy at ``price``; ``quantity=None`` lets the runtime size it.

        A market order unless ``limit``/``stop`` say otherwise; ``stop_loss``,
        ``take_profit`` and ``trailing`` (a distance, or ``Trailing(0.02, fraction=True)``)
        arm exits when it fills. Returns the order's id when it is anything but a
        plain market order (None if nothing was placed), else None.
        """
        terms = order_terms(limit, stop, stop_loss, take_profit, trailing, time_in_force)
        return self._emit(symbol, BUY, price, quantity, confidence, metadata, terms)

    def sell(
        self,
        symbol: str,
        price: float,
        quantity: float | None = None,
        confidence: float = 1.0,
        *,
        limit: float | None = None,
        stop: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing: float | Trailing | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        **metadata: Any,
    ) -> str | None:
        """Signal a sell at ``price``; the order's terms as for :meth:`buy`."""
        terms = order_terms(limit, stop, stop_loss, take_profit, trailing, time_in_force)
        return self._emit(symbol, SELL, price, quantity, confidence, metadata, terms)

    def open_orders(self, symbol: str) -> list[Order]:
        """This strategy's resting orders in ``symbol`` (entries and bracket exits)."""
        return self.context.open_orders(symbol)

    def cancel(self, order_id: str) -> bool:
        """Cancel a resting order; False when this strategy has none by that id."""
        return self.context.cancel(order_id)

    def replace(
        self,
        order_id: str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> bool:
        """Change a resting order's quantity, limit or stop, keeping its id; False when
        there is no such order or the risk checks refuse the change (it rests as it was)."""
        for name, value in (("quantity", quantity), ("limit", limit), ("stop", stop)):
            if value is not None and not 0.0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        return self.context.replace(order_id, quantity=quantity, limit=limit, stop=stop)

    def close_position(
        self, symbol: str, price: float, confidence: float = 1.0, **metadata: Any
    ) -> bool:
        """Signal the trade that flattens ``symbol``; False (and no signal) when flat.

        The quantity is explicit (the size of the position) so that an exit is
        never left to the sizing rule. ``metadata["reason"]`` defaults to "exit".
        """
        held = self.position(symbol)
        if held == 0:
            return False
        side = SELL if held > 0 else BUY
        tagged = {"reason": "exit", **metadata}
        self._emit(symbol, side, price, abs(held), confidence, tagged)
        return True

    def enter_long(
        self,
        symbol: str,
        price: float,
        confidence: float = 1.0,
        *,
        limit: float | None = None,
        stop: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing: float | Trailing | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        **metadata: Any,
    ) -> bool:
        """Go long unless already long, sized by the runtime; a short is reversed.

        Returns False (and emits nothing) when already long. One signal, one
        order: the runtime sizes it to the target long plus the short it covers
        (a netting account reverses in one fill, as live brokers do), and with
        the kill switch engaged the risk guardian cuts it to the covering part.
        ``metadata["reason"]`` defaults to "entry", or "reversal" when short. The
        order's terms (limit, stop, bracket, time in force) as for :meth:`buy`.
        """
        terms = order_terms(limit, stop, stop_loss, take_profit, trailing, time_in_force)
        return self._enter(symbol, BUY, price, confidence, metadata, terms)

    def enter_short(
        self,
        symbol: str,
        price: float,
        confidence: float = 1.0,
        *,
        limit: float | None = None,
        stop: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        trailing: float | Trailing | None = None,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        **metadata: Any,
    ) -> bool:
        """Go short unless already short, reversing a long in one order (see enter_long)."""
        terms = order_terms(limit, stop, stop_loss, take_profit, trailing, time_in_force)
        return self._enter(symbol, SELL, price, confidence, metadata, terms)

    def _enter(
        self,
        symbol: str,
        side: Side,
        price: float,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms | None = None,
    ) -> bool:
        held = self.position(symbol)
        if held * side.sign > 0:
            return False
        tagged = {"reason": "entry" if held == 0 else "reversal", **metadata}
        self._emit(symbol, side, price, None, confidence, tagged, terms)
        return True

    def _emit(
        self,
        symbol: str,
        side: Side,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms | None = None,
    ) -> str | None:
        _check_signal(price, quantity, confidence)
        if terms is None:
            self.context.emit(
                symbol,
                side,
                price=price,
                quantity=quantity,
                confidence=confidence,
                metadata=metadata,
            )
            return None
        problem = terms_problem(terms, side, price)
        if problem is not None:
            raise ValueError(f"invalid order: {problem}")
        return self.context.place(
            symbol,
            side,
            price=price,
            quantity=quantity,
            confidence=confidence,
            metadata=metadata,
            terms=terms,
        )


def order_terms(
    limit: float | None,
    stop: float | None,
    stop_loss: float | None,
    take_profit: float | None,
    trailing: float | Trailing | None,
    time_in_force: TimeInForce | str,
) -> OrderTerms | None:
    """The terms the Strategy API's keywords describe; None for a plain market order."""
    if limit is stop is stop_loss is take_profit is trailing is None and time_in_force is GTC:
        return None  # the common case, decided before any conversion
    tif = TimeInForce(time_in_force)  # ValueError names the allowed values
    bracket = None
    if stop_loss is not None or take_profit is not None or trailing is not None:
        trail = Trailing(trailing) if isinstance(trailing, int | float) else trailing
        bracket = Bracket(stop_loss, take_profit, trail)
    if limit is None and stop is None and bracket is None and tif is TimeInForce.GTC:
        return None
    if stop is None:
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    else:
        kind = OrderType.STOP if limit is None else OrderType.STOP_LIMIT
    return OrderTerms(kind, limit, stop, tif, bracket)


def _check_signal(price: float, quantity: float | None, confidence: float) -> None:
    # Reject here, in the strategy's own call stack, so the traceback points at the bug.
    # Each chained comparison also fails for NaN.
    if not 0.0 < price < math.inf:
        raise ValueError(f"signal price must be a positive finite number, got {price!r}")
    if quantity is not None and not 0.0 < quantity < math.inf:
        raise ValueError(
            f"signal quantity must be a positive finite number or None "
            f"(let the runtime size it), got {quantity!r}"
        )
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"signal confidence must be between 0 and 1, got {confidence!r}")
