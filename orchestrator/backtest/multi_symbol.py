"""Backtests over several symbols on one account.

:class:`MultiSymbolEngine` runs one strategy instance over the bars of several
symbols with the rules of :mod:`orchestrator.backtest.engine` (the live order
pipeline, risk guardian and the paper broker's prices over a
:class:`~orchestrator.backtest.broker.ReplayBroker`), on one book: one account.

- **Time order.** The symbols' bars are merged by their start. Bars that start at
  the same moment are taken in the order of the job's symbols: first each is
  replayed (its four prices, ``ohlcv_ticks``: fills, resting orders, marks, the
  guardian), one after the other; then each is handed to the strategy's ``on_bar``
  in that order, the clock at their end. So the strategy sees a moment's bars only
  once every price of that moment was traded, as live, and an order it sends fills
  at its symbol's next price (the next bar's open), never at another symbol's.
- **Warm-up** is per symbol, as live: the first ``warmup_bars`` bars of each symbol
  warm the strategy up, and what it signals for that symbol meanwhile is discarded.
- **One account.** The capital (``initial_capital``; None: ``maxPositionValue``
  times the symbols) is shared. Signals are sized as live
  (``floor(maxPositionValue * sizing_fraction / price)``), then the account must be
  able to pay: an order that opens or adds to a position may take the account's
  gross exposure (every symbol's position and orders in flight at their last
  prices, this symbol's at the signal's price) up to its equity (capital, realized
  P&L and the positions marked), no further: it is cut to the units that fit, or
  refused when none does (a rejection naming the buying power), as backtesting.py
  does with its default margin of 1. The part of an order that closes a position
  always passes. The risk guardian sees the whole book: ``max_gross_exposure``
  and ``max_daily_loss`` count every symbol.
- **Results.** Each symbol has its own result (:class:`BacktestResult` in
  ``parts``): its trades and its P&L, as an equity of the account's capital plus
  that symbol's P&L at its bars, so the symbols' returns add up to the account's.
  The account's result has every trade (in exit order), the account's equity at
  each moment a bar started (capital plus every symbol's P&L at its latest bar),
  and for buy and hold a basket: the capital split equally between the symbols at
  the close where the last of them ends its warm-up.

Speed: every bar's four prices go through the pipeline (the one-symbol engine's
alarms, which skip the guardian on the ordinary bar, are not used here), about
four times the work per bar of a one-symbol run; one symbol runs through
:class:`~orchestrator.backtest.engine.BacktestEngine` (:func:`run_spec`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

import numpy as np

from orchestrator.backtest.broker import ReplayBroker
from orchestrator.backtest.engine import (
    CHUNK_BARS,
    LOSS_ALARM_FRACTION,
    STOP_ALARM_MARGIN,
    BacktestCancelled,
    BacktestError,
    BacktestResult,
    BacktestSpec,
    EquityCurve,
    FloatArray,
    Progress,
    build_risk,
    load_bars,
    load_strategy,
    precompute,
    run_backtest,
)
from orchestrator.backtest.trips import TripTracker
from orchestrator.bus import EventBus
from orchestrator.marketdata.feeds import ohlcv_ticks
from orchestrator.model.clock import DAY_SECONDS, ManualClock, iso_utc
from orchestrator.model.events import OrderLifecycle
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import RESOLUTION_SECONDS, Bar, unknown_resolution
from orchestrator.model.orders import SIGNAL, Fill, Order, OrderTerms, Side, TradeStatus
from orchestrator.model.records import no_cycle_collection
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.risk.guardian import stop_price as risk_stop_price
from orchestrator.strategy.api import Strategy
from orchestrator.strategy.config import RuntimeConfig, StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import (
    OrderPipeline,
    halt_at_start,
    signal_quantity,
    with_terms,
)
from orchestrator.trading.portfolio import PortfolioBook, PositionChange

UNIT_TOLERANCE = 1e-9
"""Units: a room of 2.9999999999 units buys 3 (float dust of the equity's sums)."""


def affordable_quantity(
    quantity: float, sign: int, held: float, price: float, room: float
) -> float:
    """The part of an order of ``quantity`` on side ``sign`` the account can pay for.

    ``held``: the symbol's position, orders in flight included; ``room``: the value
    the symbol's position may have (the account's equity less what every other
    symbol holds). The position after the order may be worth up to ``room`` at
    ``price``; whole units for an order of whole units. The part that closes a
    position always passes. 0: nothing fits.
    """
    units = max(room, 0.0) / price
    if float(quantity).is_integer():
        units = math.floor(units + UNIT_TOLERANCE)
    allowed = units - sign * held
    if sign * held < 0:
        allowed = max(allowed, abs(held))  # a reversal may always close
    return min(quantity, max(allowed, 0.0))


class _FillLog:
    """A symbol's P&L after each of its fills (the per-bar curve is computed after the
    run, as the one-symbol engine computes its own)."""

    __slots__ = ("cash", "quantity", "realized", "times")

    def __init__(self) -> None:
        self.realized = 0.0
        self.times: list[float] = []
        self.cash: list[float] = []
        """Capital + realized - quantity x entry price: equity is cash + quantity x close."""
        self.quantity: list[float] = []


class MultiSymbolEngine:
    """Drives one strategy instance over the bars of several symbols on one account;
    use once. It is the strategy's StrategyContext and its pipeline's OrderEvents."""

    _risk: RiskGuardian
    _pipeline: OrderPipeline
    """Both built by ``run``, when the clock stands at the first bar."""

    def __init__(
        self,
        strategy_cls: type[Strategy[Any]],
        params: Any,
        config: StrategyRunConfig,
        *,
        strategy_id: str = "backtest",
        name: str = "Backtest",
        broker: PaperBrokerConfig | None = None,
        risk: RiskConfig | None = None,
        sizing_fraction: float = RuntimeConfig().sizing_fraction,
        initial_capital: float | None = None,
        volume_fraction: float | None = None,
    ) -> None:
        self.config = config
        self.symbols = config.symbols
        self._rank = {symbol: rank for rank, symbol in enumerate(self.symbols)}
        self._limit = config.max_position_value
        self._id = strategy_id
        self._name = name
        self._sizing_fraction = sizing_fraction
        self.initial_capital = (
            initial_capital
            if initial_capital is not None
            else config.max_position_value * len(self.symbols)
        )
        self._clock = ManualClock(0.0)
        self._ids = SequentialIds()
        self._bus = EventBus()
        """The guardian's events go here; nobody listens (fills are recorded instead)."""
        self.book = PortfolioBook()
        self.portfolio = self.book.portfolio(strategy_id)
        self._risk_config = risk if risk is not None else RiskConfig()
        self._broker_config = broker if broker is not None else PaperBrokerConfig()
        pricing = PaperBroker(self._broker_config, self._clock, self._ids)
        self._broker = ReplayBroker(pricing, self._clock, self._ids, volume_fraction)
        self._strategy_cls = strategy_cls
        self._params = params
        self._warming: set[str] = set()
        """Symbols whose warm-up bars are still coming: their signals are discarded."""
        self._placed_terms = False
        self._close_offset = 0.0
        self.fills: list[Fill] = []
        """Every fill and rejection, in order."""
        self._exit_purposes: dict[str, str] = {}
        self.trips = {symbol: TripTracker(self._exit_purposes) for symbol in self.symbols}
        """Each symbol's round trips."""
        self._logs = {symbol: _FillLog() for symbol in self.symbols}
        self._signals = dict.fromkeys(self.symbols, 0)
        self.cash_limited = 0
        """Orders cut or refused for the account's buying power."""
        self._used = False

    # ------------------------------------------------------------ StrategyContext

    describes_signals = False
    """A backtest's result has its fills and trades; signals' details go nowhere."""

    @property
    def strategy_id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    def now(self) -> float:
        """In ``on_bar`` the end of the bar; in ``on_tick`` the tick's time."""
        return self._clock.now()

    def position(self, symbol: str) -> float:
        """Held quantity including orders in flight, so a strategy never doubles up."""
        return self._pipeline.projected_position(self._id, symbol)

    def emit(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms | None = None,
    ) -> str | None:
        """Size a signal, hold it to what the account can pay, and send its order through
        the pipeline; returns the order's id, None when nothing was sent."""
        if symbol not in self._rank:
            raise ValueError(f"{self._id} trades {', '.join(self.symbols)}, not {symbol}")
        if symbol in self._warming:
            return None
        pipeline = self._pipeline
        held = pipeline.projected_position(self._id, symbol)
        sized_at = price if terms is None else terms.limit_price or terms.stop_price or price
        size = signal_quantity(quantity, action, held, sized_at, self._limit, self._sizing_fraction)
        if size is None or pipeline.holds_back((self._id, symbol, action), quantity, self.config):
            return None
        self._signals[symbol] += 1
        order = Order(self._ids("order"), self._id, symbol, action, size, self.now(), SIGNAL)
        if terms is not None:
            order = with_terms(order, terms)
        if size > 0:
            room = self._room(symbol)
            fitting = affordable_quantity(size, action.sign, held, sized_at, room)
            if fitting < size:
                self.cash_limited += 1
                if fitting <= 0:
                    pipeline.reject(order, self._no_buying_power(symbol, sized_at, room))
                    return None
                order = replace(order, quantity=fitting)
        pipeline.submit_signal(order, self.config, price, quantity)
        return order.id

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
        self._placed_terms = True
        return self.emit(
            symbol,
            action,
            price=price,
            quantity=quantity,
            confidence=confidence,
            metadata=metadata,
            terms=terms,
        )

    def open_orders(self, symbol: str) -> list[Order]:
        return self._pipeline.open_orders(self._id, symbol)

    def cancel(self, order_id: str) -> bool:
        return self._pipeline.cancel(self._id, order_id, "cancelled by the strategy")

    def replace(
        self,
        order_id: str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> bool:
        return self._pipeline.replace(self._id, order_id, quantity, limit, stop)

    # ------------------------------------------------------------ the account

    def equity(self) -> float:
        """Capital + realized P&L (commissions paid) + every position marked."""
        portfolio = self.portfolio
        return self.initial_capital + portfolio.realized_pnl + portfolio.unrealized_pnl

    def _room(self, symbol: str) -> float:
        """What ``symbol``'s position may be worth: the equity less the other symbols'
        positions and orders in flight, at their last prices."""
        held_elsewhere = 0.0
        for other in self.symbols:
            if other != symbol:
                quantity = self._pipeline.projected_position(self._id, other)
                if quantity:
                    held_elsewhere += abs(quantity) * (self.book.last_price(other) or 0.0)
        return self.equity() - held_elsewhere

    def _no_buying_power(self, symbol: str, price: float, room: float) -> str:
        equity = self.equity()
        return (
            f"buying power: the account's equity {equity:.2f} less {equity - room:.2f} held "
            f"in other symbols buys no more {symbol} at {price:g}"
        )

    # ------------------------------------------------------------ OrderEvents

    def accepted(self, order: Order) -> None:
        """Notes why an order that is no signal was sent: its trade's exit reason."""
        if order.purpose is not SIGNAL:
            self._exit_purposes[order.id] = order.purpose.value

    part = accepted
    """A part of a resting order (partial fills): its trades' exit reason, the same."""

    def lifecycle(self, event: OrderLifecycle) -> None:
        """A backtest's report has its fills and rejections; what rested is not kept."""

    def settled(
        self, fill: Fill, change: PositionChange | None, limits: StrategyRunConfig | None
    ) -> None:
        self.fills.append(fill)
        if change is None:
            return
        symbol = fill.symbol
        self.trips[symbol].track(change)
        log = self._logs[symbol]
        # Summed in the order the book sums it, written as the one-symbol engine
        # writes it: one symbol's curve is that engine's, to the last bit.
        realized = log.realized = log.realized + change.realized_pnl
        quantity = change.quantity_after
        log.times.append(fill.ts)
        log.cash.append(self.initial_capital + realized - quantity * change.entry_price_after)
        log.quantity.append(quantity)

    def engage_kill_switch(self, halt: Halt) -> None:
        """Engaged by the guardian (the daily loss), it stays engaged to the end."""
        self._pipeline.engage(halt)

    # ------------------------------------------------------------ running

    def run(
        self,
        bars: Mapping[str, Sequence[Bar]],
        should_stop: Callable[[], bool] | None = None,
        progress: Progress | None = None,
    ) -> BacktestResult:
        """Run the strategy over each symbol's ``bars`` (oldest first).

        ``should_stop`` is asked every ``CHUNK_BARS`` bars (BacktestCancelled);
        ``progress`` is told the bars done of all symbols' and the total then.
        Raises BacktestError for bars the strategy cannot run on and for an exception
        of the strategy.
        """
        if self._used:
            raise RuntimeError("a MultiSymbolEngine runs once; build another")
        self._used = True
        started = time.perf_counter()
        timeline = self._merged(bars)
        first = timeline[0]
        seconds = RESOLUTION_SECONDS[first.resolution]
        self._close_offset = seconds * 3 / 4  # where ohlcv_ticks prints the close
        self._clock.set(first.start)
        self._risk = build_risk(self._risk_config, self.book, self._bus, self._clock, self._ids)
        self._pipeline = OrderPipeline(
            self.book,
            self._risk,
            self._broker,
            self._clock,
            self._ids,
            self,
            self._broker_config.bracket_rule,
            partial_fills=self._broker.partial_fills,
        )
        self._pipeline.halt = halt_at_start(self._risk_config, first.start)
        strategy = self._start_strategy()
        for symbol in self.symbols:
            precompute(strategy, self._id, symbol, bars[symbol])
        warmup = strategy.warmup_bars
        for symbol in self.symbols:
            if len(bars[symbol]) <= warmup:
                raise BacktestError(
                    f"{len(bars[symbol])} bars of {symbol} are not enough: the strategy warms "
                    f"up on {warmup} and needs at least one more to trade; use a longer history"
                )
        self._warming = set(self.symbols) if warmup else set()
        with no_cycle_collection():
            self._replay(strategy, timeline, warmup, seconds, should_stop, progress)
        return self._result(bars, timeline, warmup, seconds, time.perf_counter() - started)

    def _merged(self, bars: Mapping[str, Sequence[Bar]]) -> list[Bar]:
        """Every bar, by start, ties in the order of the symbols; BacktestError for bars
        that are not each symbol's, at one resolution, in time order."""
        resolutions: set[str] = set()
        for symbol in self.symbols:
            series = bars.get(symbol)
            if not series:
                raise BacktestError(f"no data: the history has no bars of {symbol}")
            if any(bar.symbol != symbol for bar in series):
                raise BacktestError(f"the bars given for {symbol} are not all of {symbol}")
            resolutions.update(bar.resolution for bar in series)
            for before, after in pairwise(series):
                if after.start <= before.start:
                    raise BacktestError(
                        f"the {symbol} bar at {iso_utc(after.start)} is not after the bar before it"
                    )
        if len(resolutions) > 1:
            found = ", ".join(sorted(resolutions))
            raise BacktestError(f"the symbols' bars must share one resolution; found {found}")
        problem = unknown_resolution(next(iter(resolutions)))
        if problem is not None:
            raise BacktestError(problem)
        rank = self._rank
        every = [bar for symbol in self.symbols for bar in bars[symbol]]
        return sorted(every, key=lambda bar: (bar.start, rank[bar.symbol]))

    def _start_strategy(self) -> Strategy[Any]:
        try:
            return self._strategy_cls(self._params, self)
        except Exception as exc:
            raise BacktestError(
                f"strategy {self._id} could not be created: {type(exc).__name__}: {exc}"
            ) from exc

    def _replay(
        self,
        strategy: Strategy[Any],
        timeline: Sequence[Bar],
        warmup: int,
        seconds: int,
        should_stop: Callable[[], bool] | None,
        progress: Progress | None,
    ) -> None:
        wants_ticks = type(strategy).on_tick is not Strategy.on_tick
        seen = dict.fromkeys(self.symbols, 0)
        day_end = -math.inf
        total, index, next_look = len(timeline), 0, CHUNK_BARS
        while index < total:
            start = timeline[index].start
            stop = index + 1
            while stop < total and timeline[stop].start == start:
                stop += 1
            moment = timeline[index:stop]
            if start >= day_end:
                day_end = float((int(start // DAY_SECONDS) + 1) * DAY_SECONDS)
                if self._pipeline.resting.by_id:
                    self._pipeline.expire_days(start)  # stamped at the new day's first bar
            for bar in moment:
                self._walk(bar, strategy, wants_ticks)
            self._clock.set(start + seconds)
            for bar in moment:
                self._deliver(bar, strategy, seen, warmup)
            index = stop
            if index >= next_look or index == total:
                next_look = index + CHUNK_BARS
                if should_stop is not None and should_stop():
                    raise BacktestCancelled("cancelled")
                if progress is not None:
                    progress(index, total)

    def _walk(self, bar: Bar, strategy: Strategy[Any], wants_ticks: bool) -> None:
        """The bar's four prices through fills, resting orders, marks and the guardian;
        only its close in the book when nothing can happen in the symbol."""
        clock, pipeline = self._clock, self._pipeline
        if not wants_ticks and self._quiet(bar.symbol):
            self.book.mark(bar.symbol, bar.close, bar.start + self._close_offset)
            return
        if not wants_ticks and self._uneventful(bar):
            # No price of the bar reaches a stop or the day's loss limit: the guardian
            # would only have measured at each; its state after the close is this.
            close_ts = bar.start + self._close_offset
            clock.set(close_ts)
            self.book.mark(bar.symbol, bar.close, close_ts)
            self._risk.measure(bar.symbol, close_ts)
            return
        broker = self._broker
        broker.enter_bar(bar)
        if self._placed_terms:
            pipeline.enter_bar(bar.symbol, bar.start, bar.low, bar.high, broker.bar_room)
        ticking = wants_ticks and bar.symbol not in self._warming
        for tick in ohlcv_ticks(bar):
            clock.set(tick.ts)
            pipeline.on_tick(tick)
            if ticking:
                try:
                    strategy.on_tick(tick)
                except Exception as exc:
                    raise self._strategy_failed(exc, bar) from exc

    def _quiet(self, symbol: str) -> bool:
        """Whether the symbol's prices can change nothing but its last price: flat, no
        order waiting for it, none resting. Then the guardian has nothing to measure
        there (no position), no stop to watch, and the account's equity does not move
        with it, so its daily loss is what it was at the last price walked; the day's
        start is taken at the next price or fill it sees, from the same equity."""
        position = self.portfolio.get(symbol)
        if position is not None and position.quantity != 0.0:
            return False
        if self._pipeline.resting.by_symbol.get(symbol):
            return False
        return not any(order.symbol == symbol for order in self._broker.waiting)

    def _uneventful(self, bar: Bar) -> bool:
        """Whether the bar of a held symbol, with nothing waiting or resting, stays clear
        of the position's stop (with a margin) and of the day's loss limit (with
        LOSS_ALARM_FRACTION of slack), the other symbols standing where the guardian
        last measured them (their prices do not move during this bar's walk)."""
        symbol = bar.symbol
        position = self.portfolio.get(symbol)
        if position is None or self._pipeline.resting.by_symbol.get(symbol):
            return False
        if any(order.symbol == symbol for order in self._broker.waiting):
            return False
        quantity, entry = position.quantity, position.entry_price
        worst = bar.low if quantity > 0 else bar.high
        stop = risk_stop_price(quantity, entry, self.config.stop_loss_percentage)
        if stop is not None and (
            worst <= stop * (1 + STOP_ALARM_MARGIN)
            if quantity > 0
            else worst >= stop * (1 - STOP_ALARM_MARGIN)
        ):
            return False
        self._clock.set(bar.start)  # the day the guardian counts from, as at the open
        daily_pnl = self._risk.daily_pnl()
        # The account's P&L with this symbol at its worst price of the bar, against the
        # guardian's now (this symbol at its last mark, as the guardian measured it).
        move = quantity * (worst - entry) - position.unrealized_pnl
        loss = -(daily_pnl + move)
        return loss < LOSS_ALARM_FRACTION * self._risk_config.max_daily_loss

    def _deliver(
        self, bar: Bar, strategy: Strategy[Any], seen: dict[str, int], warmup: int
    ) -> None:
        symbol = bar.symbol
        warming = symbol in self._warming
        try:
            strategy.on_bar(bar)
        except Exception as exc:
            raise self._strategy_failed(exc, bar, "during warm-up" if warming else "") from exc
        if warming:
            seen[symbol] += 1
            if seen[symbol] >= warmup:
                self._warming.discard(symbol)

    def _strategy_failed(self, exc: Exception, bar: Bar, when: str = "") -> BacktestError:
        if isinstance(exc, BacktestError):
            return exc
        during = f" {when}" if when else ""
        return BacktestError(
            f"strategy {self._id} raised {type(exc).__name__}: {exc}{during}, on the "
            f"{bar.symbol} {bar.resolution} bar of {iso_utc(bar.start)}"
        )

    # ------------------------------------------------------------ results

    def _result(
        self,
        bars: Mapping[str, Sequence[Bar]],
        timeline: Sequence[Bar],
        warmup: int,
        seconds: int,
        duration: float,
    ) -> BacktestResult:
        parts = tuple(
            self._symbol_result(symbol, bars[symbol], warmup, seconds, duration)
            for symbol in self.symbols
        )
        curve, first_trading = self._account_curve(parts, warmup)
        rank = self._rank
        trades = sorted(
            (trade for part in parts for trade in part.trades),
            key=lambda trade: (trade.exit_ts, rank[trade.symbol]),
        )
        wins = sum(1 for trade in trades if trade.pnl > 0)
        final_equity = float(curve.equity[-1])
        return BacktestResult(
            total_trades=len(trades),
            win_rate=wins / len(trades) if trades else 0.0,
            total_return=final_equity / self.initial_capital - 1.0,
            initial_capital=self.initial_capital,
            final_equity=final_equity,
            bars=len(timeline),
            warmup_bars=warmup,
            signals=sum(part.signals for part in parts),
            fills=sum(part.fills for part in parts),
            rejected=sum(part.rejected for part in parts),
            open_quantity=sum(abs(part.open_quantity) for part in parts),
            start=timeline[0].start,
            end=timeline[-1].start + seconds,
            duration_seconds=duration,
            curve=curve,
            trades=tuple(trades),
            symbols=self.symbols,
            parts=parts,
            first_trading_bar=first_trading,
            cash_limited=self.cash_limited,
        )

    def _symbol_result(
        self, symbol: str, bars: Sequence[Bar], warmup: int, seconds: int, duration: float
    ) -> BacktestResult:
        curve = self._symbol_curve(symbol, bars)
        trips = self.trips[symbol]
        trades = tuple(trips.trades)
        fills = [fill for fill in self.fills if fill.symbol == symbol]
        filled = sum(1 for fill in fills if fill.status is TradeStatus.FILLED)
        last = bars[-1]
        final_equity = float(curve.equity[-1])
        position = self.portfolio.get(symbol)
        return BacktestResult(
            total_trades=len(trades),
            win_rate=sum(1 for t in trades if t.pnl > 0) / len(trades) if trades else 0.0,
            total_return=final_equity / self.initial_capital - 1.0,
            initial_capital=self.initial_capital,
            final_equity=final_equity,
            bars=len(bars),
            warmup_bars=warmup,
            signals=self._signals[symbol],
            fills=filled,
            rejected=len(fills) - filled,
            open_quantity=self.portfolio.position(symbol),
            start=bars[0].start,
            end=last.start + seconds,
            duration_seconds=duration,
            curve=curve,
            trades=trades,
            open_trade=trips.open_trade(position, last.close, last.start + seconds),
            symbols=(symbol,),
        )

    def _symbol_curve(self, symbol: str, bars: Sequence[Bar]) -> EquityCurve:
        """The capital plus the symbol's P&L at each of its bars' closes."""
        log = self._logs[symbol]
        times = np.array([bar.start for bar in bars], dtype=np.float64)
        closes = np.array([bar.close for bar in bars], dtype=np.float64)
        fill_bars = np.searchsorted(times, log.times, side="right") - 1
        fills_so_far = np.cumsum(np.bincount(fill_bars, minlength=len(times)))
        cash = np.array([self.initial_capital, *log.cash])[fills_so_far]
        quantity = np.array([0.0, *log.quantity])[fills_so_far]
        return EquityCurve(times=times, closes=closes, equity=cash + quantity * closes)

    def _account_curve(
        self, parts: Sequence[BacktestResult], warmup: int
    ) -> tuple[EquityCurve, int]:
        """The account at each moment a bar starts, and the bar buy and hold starts at.

        Each symbol's P&L and close hold from its bar until its next one (before its
        first bar: no P&L, its first close). ``closes`` is the basket: the capital in
        equal parts in each symbol at the first trading bar's closes.
        """
        times = np.unique(np.concatenate([part.curve.times for part in parts]))
        capital = self.initial_capital
        pnl = np.zeros(len(times))
        prices = []
        first_trading = 0
        for part in parts:
            at = np.searchsorted(part.curve.times, times, side="right") - 1
            held = at >= 0
            pnl[held] += part.curve.equity[at[held]] - capital
            prices.append(part.curve.closes[np.maximum(at, 0)])
            last_warmup = part.curve.times[max(warmup - 1, 0)]
            first_trading = max(first_trading, int(np.searchsorted(times, last_warmup)))
        weights = [capital / len(parts) / closes[first_trading] for closes in prices]
        basket: FloatArray = sum(
            (weight * closes for weight, closes in zip(weights, prices, strict=True)),
            np.zeros(len(times)),
        )
        return EquityCurve(times=times, closes=basket, equity=capital + pnl), first_trading


def load_symbol_bars(
    spec: BacktestSpec, should_stop: Callable[[], bool] | None = None
) -> dict[str, list[Bar]]:
    """Each traded symbol's bars from ``spec``'s source; BacktestError says what to fix."""
    resolution = spec.run_config.data_resolution
    loaded = {}
    for symbol in spec.traded_symbols:
        bars = load_bars(spec.source, symbol, resolution, should_stop)
        if not bars:
            raise BacktestError(f"no data: the source produced no bars of {symbol}")
        loaded[symbol] = bars
    return loaded


def build_multi_symbol_engine(
    spec: BacktestSpec, strategy_cls: type[Strategy[Any]], params: Any, resolution: str
) -> MultiSymbolEngine:
    """The engine :func:`run_spec` runs a spec of several symbols with."""
    entry = spec.strategy
    config = spec.run_config.model_copy(
        update={"symbols": spec.traded_symbols, "data_resolution": resolution}
    )
    return MultiSymbolEngine(
        strategy_cls,
        params,
        config,
        strategy_id=entry.id,
        name=entry.name,
        broker=spec.broker,
        risk=spec.risk,
        sizing_fraction=spec.runtime.sizing_fraction,
        initial_capital=spec.initial_capital,
        volume_fraction=spec.volume_fraction,
    )


def run_spec(
    spec: BacktestSpec,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """The backtest of ``spec``: one symbol through the one-symbol engine
    (:func:`~orchestrator.backtest.engine.run_backtest`), several on one account through
    :class:`MultiSymbolEngine`. BacktestError says why it cannot run."""
    if len(spec.traded_symbols) == 1:
        return run_backtest(spec, should_stop, progress)
    strategy_cls, params = load_strategy(spec.strategy)
    bars = load_symbol_bars(spec, should_stop)
    resolution = next(iter(bars.values()))[0].resolution
    engine = build_multi_symbol_engine(spec, strategy_cls, params, resolution)
    return engine.run(bars, should_stop, progress)


__all__ = [
    "MultiSymbolEngine",
    "affordable_quantity",
    "build_multi_symbol_engine",
    "load_symbol_bars",
    "run_spec",
]
