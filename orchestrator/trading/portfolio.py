"""Positions and P&L: one net position per (strategy, symbol), netted fill by fill.

Netting semantics: a sell against a long reduces it rather than opening a
separate short; a fill that crosses through zero closes the old side (realizing
P&L on the closed quantity) and opens the remainder on the other side at the
fill price. Commissions are charged to realized P&L on every fill, opening ones
included, so that realized + unrealized always equals the cash-flow P&L.

Flat positions are kept (quantity 0) rather than removed: they carry the
realized P&L of closed trades and the last mark of the symbol, and they keep the
book's symbol index stable. ``open_positions()`` is what the wire shows.

P&L is defined here once, as :class:`Pnl`'s three figures: realized today
(fills since 00:00 UTC of the day asked for, by their timestamps), realized
since start (every fill the book was given: the journal replays them all at a
restart, so a strategy's figure runs from its first trade, across restarts and
stops), and unrealized (the open quantity marked at the last price).
:func:`account` adds the paper account's cash, equity and exposure.

Everything here is in-process state owned by the execution path, so positions
are plain mutable slotted dataclasses; what leaves this module about a fill is
an immutable :class:`PositionChange`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from orchestrator.model.clock import DAY_SECONDS
from orchestrator.model.orders import FILLED, Fill, TradeStatus
from orchestrator.model.records import record

QUANTITY_EPSILON = 1e-9
"""A position whose absolute quantity is below this is flat (float dust from netting)."""


def _is_valid_price(price: float) -> bool:
    # One comparison chain rejects NaN, infinities, zero and negatives.
    return 0.0 < price < math.inf


def utc_day(ts: float) -> int:
    """The UTC day of ``ts``, counted from the epoch: the period of "realized today"."""
    return int(ts // DAY_SECONDS)


def _sign(quantity: float) -> int:
    return (quantity > 0.0) - (quantity < 0.0)


def reduces_position(held: float, signed_quantity: float) -> bool:
    """Whether trading ``signed_quantity`` shrinks ``held`` toward zero without crossing it."""
    after = held + signed_quantity
    return held != 0.0 and abs(after) < abs(held) and after * held >= 0.0


def reverses_position(held: float, signed_quantity: float) -> bool:
    """Whether trading ``signed_quantity`` takes ``held`` through zero to the other side."""
    return (held + signed_quantity) * held < 0.0


def reducing_part(held: float, signed_quantity: float) -> float:
    """The unsigned quantity of an order that only reduces ``held``: the whole order
    when it reduces, ``abs(held)`` of a reversal, 0 of an order that adds."""
    if reduces_position(held, signed_quantity):
        return abs(signed_quantity)
    return abs(held) if reverses_position(held, signed_quantity) else 0.0


@record
class PositionChange:
    """What one fill did to one position.

    The fields are enough to build both trade events of the dgbit API:
    ``trade.entered`` from the opened part (``opened_quantity`` at
    ``entry_price_after``, direction of ``quantity_after``) and ``trade.exited``
    from the closed part (``closed_quantity`` of the old direction, entry
    ``entry_price_before``, exit ``exit_price``, ``closed_pnl``,
    ``closed_pnl_pct``, ``closed_duration_minutes``). A reversal has both parts.
    """

    fill: Fill
    quantity_before: float
    quantity_after: float
    entry_price_before: float
    entry_price_after: float
    closed_quantity: float
    """How much of the previous position this fill closed (always >= 0)."""
    opened_quantity: float
    """How much this fill added to or opened on the resulting side (always >= 0)."""
    closed_pnl: float
    """Gross P&L of the closed quantity: price move only, before commission."""
    realized_pnl: float
    """What this fill added to realized P&L: ``closed_pnl`` minus its commission."""
    closed_duration: float | None
    """Seconds the closed part was held (fill ts minus the position's open ts); None if
    nothing was closed."""

    @property
    def symbol(self) -> str:
        return self.fill.symbol

    @property
    def applied(self) -> bool:
        """False for a rejected fill, which changes nothing."""
        return self.fill.status is TradeStatus.FILLED

    @property
    def is_entry(self) -> bool:
        return self.opened_quantity > 0.0

    @property
    def is_exit(self) -> bool:
        return self.closed_quantity > 0.0

    @property
    def is_reversal(self) -> bool:
        return self.is_entry and self.is_exit

    @property
    def exit_price(self) -> float:
        return self.fill.price

    @property
    def closed_direction(self) -> int:
        """+1 if the closed part was long, -1 if short, 0 if nothing was closed."""
        return _sign(self.quantity_before) if self.is_exit else 0

    @property
    def opened_direction(self) -> int:
        """+1 if the opened part is long, -1 if short, 0 if nothing was opened."""
        return _sign(self.quantity_after) if self.is_entry else 0

    @property
    def closed_pnl_pct(self) -> float:
        """Gross return of the closed part in percent of its entry cost (2.0 means 2 %)."""
        cost = self.closed_quantity * self.entry_price_before
        return self.closed_pnl / cost * 100.0 if cost > 0.0 else 0.0

    @property
    def closed_duration_minutes(self) -> float | None:
        return None if self.closed_duration is None else self.closed_duration / 60.0


@dataclass(slots=True, eq=False)
class Position:
    """The net position of one strategy in one symbol.

    ``eq=False``: positions are identities (the book indexes them), not values.
    """

    symbol: str
    quantity: float = 0.0
    """Signed: positive long, negative short, 0 flat."""
    entry_price: float = 0.0
    """Average cost of the open quantity; 0 when flat."""
    realized_pnl: float = 0.0
    """Closed-trade P&L net of every commission paid in this symbol."""
    last_price: float = 0.0
    """Latest mark; 0 until the first mark or fill."""
    opened_at: float | None = None
    """When the current position was opened (flat to open, or reversal); None when flat."""
    commission_paid: float = 0.0
    marked_at: float | None = None
    realized_day: int = -1
    """The UTC day (:func:`utc_day`) of the last fill; -1 before the first."""
    realized_in_day: float = 0.0
    """Realized P&L of the fills of ``realized_day``."""

    def realized_on(self, day: int) -> float:
        """Realized P&L of the fills stamped on UTC ``day`` (0 when none were); ``day``
        is today, no earlier than the last fill's: only that day's sum is kept."""
        return self.realized_in_day if day == self.realized_day else 0.0

    @property
    def is_open(self) -> bool:
        return self.quantity != 0.0

    @property
    def market_value(self) -> float:
        """Signed value at the last mark: the stock-bot ``currentValue``."""
        return self.quantity * self.last_price

    @property
    def unrealized_pnl(self) -> float:
        return (self.last_price - self.entry_price) * self.quantity

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.last_price

    def mark(self, price: float, ts: float | None = None) -> None:
        """Take ``price`` as the current price; a non-finite or non-positive one is ignored."""
        if _is_valid_price(price):
            self.last_price = price
            if ts is not None:
                self.marked_at = ts

    def apply_fill(self, fill: Fill) -> PositionChange:
        """Net ``fill`` into this position; a rejected fill changes nothing."""
        if fill.status is not FILLED:
            return unchanged(fill, self.quantity, self.entry_price)
        _check_fill(fill, self.symbol)
        price, quantity, commission = fill.price, fill.quantity, fill.commission
        quantity_before, entry_before = self.quantity, self.entry_price
        direction = fill.side.sign
        closed = closed_pnl = 0.0
        duration = None
        if quantity_before * direction < 0.0:
            # Reducing: close what the fill covers (realizing its P&L), open the rest.
            held = abs(quantity_before)
            closed = held if held < quantity else quantity  # min(), without the builtin
            # quantity_before's sign is -direction here (what _sign would say).
            closed_pnl = closed * (price - entry_before) * -direction
            duration = self._closed_duration(fill.ts)
            self._reduce(closed)
        opened = quantity - closed
        if opened < QUANTITY_EPSILON:
            opened = 0.0
        else:
            self._add(direction * opened, price, fill.ts)
        realized = closed_pnl - commission
        self.realized_pnl += realized
        self._count_in_day(fill.ts, realized)
        self.commission_paid += commission
        if self.last_price == 0.0:
            # Never marked: the fill is the only price we know. A later mark wins;
            # an existing mark is kept so slippage shows up as unrealized loss.
            self.last_price = price
        return PositionChange(
            fill,
            quantity_before,
            self.quantity,
            entry_before,
            self.entry_price,
            closed,
            opened,
            closed_pnl,
            realized,
            duration,
        )

    def _count_in_day(self, ts: float, realized: float) -> None:
        day = int(ts // DAY_SECONDS)  # utc_day, inlined: once per fill
        if day != self.realized_day:
            self.realized_day, self.realized_in_day = day, 0.0
        self.realized_in_day += realized

    def _closed_duration(self, ts: float) -> float | None:
        return None if self.opened_at is None else ts - self.opened_at

    def _reduce(self, closed: float) -> None:
        remaining = abs(self.quantity) - closed
        if remaining < QUANTITY_EPSILON:
            self._flatten()
        else:
            self.quantity = _sign(self.quantity) * remaining

    def _add(self, signed_quantity: float, price: float, ts: float) -> None:
        """Open from flat, or add on the same side at a new average cost."""
        new_quantity = self.quantity + signed_quantity
        if self.quantity == 0.0:
            self.opened_at = ts
            self.entry_price = price
        else:
            cost = abs(self.quantity) * self.entry_price + abs(signed_quantity) * price
            self.entry_price = cost / abs(new_quantity)
        self.quantity = new_quantity

    def _flatten(self) -> None:
        self.quantity = 0.0
        self.entry_price = 0.0
        self.opened_at = None


def unchanged(fill: Fill, quantity: float, entry_price: float) -> PositionChange:
    """The change report of a fill that did nothing (a rejection)."""
    return PositionChange(
        fill=fill,
        quantity_before=quantity,
        quantity_after=quantity,
        entry_price_before=entry_price,
        entry_price_after=entry_price,
        closed_quantity=0.0,
        opened_quantity=0.0,
        closed_pnl=0.0,
        realized_pnl=0.0,
        closed_duration=None,
    )


def _check_fill(fill: Fill, symbol: str) -> None:
    # A filled fill with a bad number would poison every total after it: fail loudly.
    if fill.symbol != symbol:
        raise ValueError(f"fill {fill.id} is for {fill.symbol}, not {symbol}")
    if not 0.0 < fill.quantity < math.inf:
        raise ValueError(f"fill {fill.id} has quantity {fill.quantity}; must be positive")
    if not _is_valid_price(fill.price):
        raise ValueError(f"fill {fill.id} has price {fill.price}; must be positive")
    if not 0.0 <= fill.commission < math.inf:
        raise ValueError(f"fill {fill.id} has commission {fill.commission}")


@record
class Pnl:
    """The three P&L figures every view shows, commissions included."""

    realized_today: float
    """Of the fills since 00:00 UTC of the day asked for."""
    realized_since_start: float
    """Of every fill since the strategy first traded (across restarts: the journal)."""
    unrealized: float
    """Of the open quantity, marked at the last price."""

    def __add__(self, other: Pnl) -> Pnl:
        return Pnl(
            self.realized_today + other.realized_today,
            self.realized_since_start + other.realized_since_start,
            self.unrealized + other.unrealized,
        )


NO_PNL = Pnl(0.0, 0.0, 0.0)


def positions_pnl(positions: Iterable[Position], day: int) -> Pnl:
    """The P&L of ``positions`` (flat ones carry realized P&L too) on UTC ``day``."""
    today = since_start = unrealized = 0.0
    for position in positions:
        today += position.realized_on(day)
        since_start += position.realized_pnl
        unrealized += position.unrealized_pnl
    return Pnl(today, since_start, unrealized)


@record
class Account:
    """The paper account: what it holds in cash and positions, and its P&L.

    ``cash`` is the starting cash plus realized P&L less what the open positions
    cost (a short's proceeds add to it), so ``equity = cash + positions' market
    value = starting cash + realized + unrealized``.
    """

    equity: float
    cash: float
    exposure: float
    """Gross position value: the sum of ``|quantity| x last price``."""
    pnl: Pnl


def account(book: PortfolioBook, initial_cash: float, day: int) -> Account:
    """``book``'s account on UTC ``day``, starting from ``initial_cash``."""
    positions = list(book.positions())
    pnl = positions_pnl(positions, day)
    cost = sum(p.quantity * p.entry_price for p in positions)
    value = sum(p.market_value for p in positions)
    exposure = sum(p.notional for p in positions)
    cash = initial_cash + pnl.realized_since_start - cost
    return Account(equity=cash + value, cash=cash, exposure=exposure, pnl=pnl)


PositionListener = Callable[[Position], None]


class Portfolio:
    """The positions of one strategy, by symbol."""

    def __init__(
        self, strategy_id: str, on_position_created: PositionListener | None = None
    ) -> None:
        self.strategy_id = strategy_id
        self._positions: dict[str, Position] = {}
        self._on_position_created = on_position_created

    def apply_fill(self, fill: Fill) -> PositionChange:
        if fill.strategy_id != self.strategy_id:
            raise ValueError(
                f"fill {fill.id} belongs to {fill.strategy_id}, not {self.strategy_id}"
            )
        existing = self._positions.get(fill.symbol)
        if existing is None and fill.status is not FILLED:
            # Do not create a position just to record that nothing happened.
            return unchanged(fill, 0.0, 0.0)
        position = existing if existing is not None else self._create(fill.symbol)
        return position.apply_fill(fill)

    def _create(self, symbol: str) -> Position:
        position = Position(symbol)
        self._positions[symbol] = position
        if self._on_position_created is not None:
            self._on_position_created(position)
        return position

    def mark(self, symbol: str, price: float, ts: float | None = None) -> None:
        position = self._positions.get(symbol)
        if position is not None:
            position.mark(price, ts)

    def position(self, symbol: str) -> float:
        """Signed quantity held in ``symbol`` (0 when none)."""
        position = self._positions.get(symbol)
        return 0.0 if position is None else position.quantity

    def get(self, symbol: str) -> Position | None:
        return self._positions.get(symbol)

    def open_positions(self) -> list[Position]:
        return [p for p in self._positions.values() if p.is_open]

    def __iter__(self) -> Iterator[Position]:
        """Every position ever held, flat ones included."""
        return iter(self._positions.values())

    def pnl(self, day: int) -> Pnl:
        """This strategy's P&L with ``day`` (:func:`utc_day` of the clock's now) as
        today: the one definition, :class:`Pnl`."""
        return positions_pnl(self._positions.values(), day)

    @property
    def realized_pnl(self) -> float:
        return sum(p.realized_pnl for p in self._positions.values())

    @property
    def unrealized_pnl(self) -> float:
        return sum(p.unrealized_pnl for p in self._positions.values())

    @property
    def gross_exposure(self) -> float:
        return sum(p.notional for p in self._positions.values())


class PortfolioBook:
    """Every strategy's portfolio, with a symbol index so a tick is cheap.

    ``mark`` touches only the positions in the ticked symbol, whatever the
    number of strategies. The book also remembers the last price of each
    symbol so a position opened later starts marked.
    """

    def __init__(self) -> None:
        self._portfolios: dict[str, Portfolio] = {}
        self._by_symbol: dict[str, list[Position]] = {}
        self._last_prices: dict[str, float] = {}

    def portfolio(self, strategy_id: str) -> Portfolio:
        """The strategy's portfolio, created empty on first use."""
        portfolio = self._portfolios.get(strategy_id)
        if portfolio is None:
            portfolio = Portfolio(strategy_id, on_position_created=self._index)
            self._portfolios[strategy_id] = portfolio
        return portfolio

    def get(self, strategy_id: str) -> Portfolio | None:
        return self._portfolios.get(strategy_id)

    def quantity(self, strategy_id: str, symbol: str) -> float:
        """``portfolio(strategy_id).position(symbol)``, one call shorter: the order
        pipeline asks it for every signal and every order."""
        portfolio = self._portfolios.get(strategy_id)
        if portfolio is None:
            portfolio = self.portfolio(strategy_id)
        return portfolio.position(symbol)

    def strategy_ids(self) -> list[str]:
        return list(self._portfolios)

    def apply_fill(self, fill: Fill) -> PositionChange:
        return self.portfolio(fill.strategy_id).apply_fill(fill)

    def mark(self, symbol: str, price: float, ts: float | None = None) -> int:
        """Mark every position in ``symbol``; returns how many positions were touched."""
        if not 0.0 < price < math.inf:  # _is_valid_price, inlined: every price passes here
            return 0
        self._last_prices[symbol] = price
        positions = self._by_symbol.get(symbol)
        if not positions:
            return 0
        for position in positions:
            # Position.mark, inlined: the price is checked already.
            position.last_price = price
            if ts is not None:
                position.marked_at = ts
        return len(positions)

    def last_price(self, symbol: str) -> float | None:
        return self._last_prices.get(symbol)

    def positions(self) -> Iterator[Position]:
        """Every position of every strategy, flat ones included."""
        for portfolio in self._portfolios.values():
            yield from portfolio

    def _index(self, position: Position) -> None:
        self._by_symbol.setdefault(position.symbol, []).append(position)
        last = self._last_prices.get(position.symbol)
        if last is not None:
            position.last_price = last

    @property
    def realized_pnl(self) -> float:
        return sum(p.realized_pnl for p in self._portfolios.values())

    @property
    def unrealized_pnl(self) -> float:
        return sum(p.unrealized_pnl for p in self._portfolios.values())

    @property
    def gross_exposure(self) -> float:
        return sum(p.gross_exposure for p in self._portfolios.values())
