"""The strategy runtime: runs strategy instances on market data and turns their
signals into sized orders for the execution service.

It implements the registry's StrategyEngine: the registry decides lifecycle,
the runtime attaches and detaches strategies, isolates a strategy that raises
(it goes to ERROR, the others keep running) and closes positions on stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from pydantic import ValidationError

from orchestrator.bus import EventBus
from orchestrator.marketdata.hub import MarketData
from orchestrator.model.clock import Clock
from orchestrator.model.errors import (
    InvalidStrategyConfig,
    RealTradingUnavailable,
    StrategyUnavailable,
)
from orchestrator.model.events import IndicatorsUpdated, SignalEmitted
from orchestrator.model.ids import IdFactory
from orchestrator.model.market import Bar, Tick, missing_market_data
from orchestrator.model.orders import Order, OrderPurpose, OrderTerms, Side, Signal
from orchestrator.model.validation import describe_validation_errors
from orchestrator.strategy.api import Strategy
from orchestrator.strategy.config import CatalogEntry, RuntimeConfig, StrategyRunConfig
from orchestrator.strategy.lines import IndicatorLines, IndicatorPoint, line_values
from orchestrator.strategy.loader import StrategyLoadError, build_params, load_strategy_class
from orchestrator.strategy.registry import PositionView, position_views
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.pipeline import signal_quantity, with_terms
from orchestrator.trading.portfolio import reducing_part

log = structlog.get_logger("orchestrator.strategy.runtime")

FailureHandler = Callable[[str, str], object]


class RunningStrategy:
    """One live strategy instance and the context it trades through."""

    def __init__(
        self, entry: CatalogEntry, config: StrategyRunConfig, runtime: StrategyRuntime
    ) -> None:
        self.entry = entry
        self.config = config
        self._runtime = runtime
        self.paused = False
        self.warming = True
        self.strategy: Strategy[Any] | None = None
        self.wants_ticks = False
        self.draws_lines = False
        """Whether its class overrides ``Strategy.indicators``: only then is it asked."""

    describes_signals = True
    """Each signal is published and journaled with its confidence and metadata."""

    @property
    def strategy_id(self) -> str:
        return self.entry.id

    @property
    def name(self) -> str:
        return self.entry.name

    def now(self) -> float:
        return self._runtime.clock.now()

    def position(self, symbol: str) -> float:
        """Held quantity including orders in flight, so a strategy never doubles up."""
        return self._runtime.execution.projected_position(self.entry.id, symbol)

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
        return self._route(symbol, action, price, quantity, confidence, metadata, None)

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
        return self._route(symbol, action, price, quantity, confidence, metadata, terms)

    def _route(
        self,
        symbol: str,
        action: Side,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms | None,
    ) -> str | None:
        """A signal of this strategy (with its order's terms, if any) to the runtime."""
        if self.warming:
            return None
        if symbol not in self.config.symbols:
            raise ValueError(
                f"{self.entry.id} trades {', '.join(self.config.symbols)}, not {symbol}"
            )
        return self._runtime.route_signal(
            self, symbol, action, price, quantity, confidence, metadata, terms
        )

    def open_orders(self, symbol: str) -> list[Order]:
        return self._runtime.execution.open_orders(self.entry.id, symbol)

    def cancel(self, order_id: str) -> bool:
        return self._runtime.execution.cancel_order(self.entry.id, order_id)

    def replace(
        self,
        order_id: str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> bool:
        execution = self._runtime.execution
        return execution.replace_order(self.entry.id, order_id, quantity, limit, stop)


class StrategyRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        market: MarketData,
        execution: ExecutionService,
        bus: EventBus,
        clock: Clock,
        ids: IdFactory,
    ) -> None:
        self._config = config
        self.market = market
        self.execution = execution
        self._bus = bus
        self.clock = clock
        self._ids = ids
        self._running: dict[str, RunningStrategy] = {}
        self._by_bar: dict[tuple[str, str], list[RunningStrategy]] = {}
        self._by_tick: dict[str, list[RunningStrategy]] = {}
        self._configs: dict[str, StrategyRunConfig] = {}
        self.on_failure: FailureHandler = lambda strategy_id, reason: None
        self.lines = IndicatorLines(config.indicator_history_bars)
        """The recent points of every running strategy's indicator lines."""
        market.on_bar(self.deliver_bar)
        market.on_tick(self.deliver_tick)

    # ------------------------------------------------------------ StrategyEngine

    def check(self, entry: CatalogEntry, config: StrategyRunConfig) -> None:
        self._load(entry)
        problem = missing_market_data(config.symbols, self.market.symbols)
        if problem is not None:
            raise InvalidStrategyConfig(problem)
        if config.real_trading:
            problem = self.execution.venue_problem(config.venue, config.symbols)
            if problem is not None:
                raise RealTradingUnavailable(f"realTrading is not available: {problem}")

    async def activate(self, entry: CatalogEntry, config: StrategyRunConfig) -> None:
        cls, params = self._load(entry)
        running = RunningStrategy(entry, config, self)
        strategy = cls(params, running)
        running.strategy = strategy
        running.wants_ticks = type(strategy).on_tick is not Strategy.on_tick
        running.draws_lines = type(strategy).indicators is not Strategy.indicators
        self.lines.forget(entry.id)
        self._warm_up(running, strategy)
        self._configs[entry.id] = config
        self.execution.route(entry.id, config.venue if config.real_trading else None)
        self._attach(running)
        log.info("strategy_activated", strategy_id=entry.id, symbols=config.symbols)

    def pause(self, strategy_id: str) -> None:
        self._running[strategy_id].paused = True
        # Paused, a strategy opens nothing: its resting entries go, its exits stay.
        self.execution.cancel_entries(strategy_id, "strategy paused")

    def resume(self, strategy_id: str) -> None:
        self._running[strategy_id].paused = False

    async def deactivate(self, strategy_id: str) -> None:
        running = self._running.get(strategy_id)
        if running is not None:
            self._detach(running)
        self.lines.forget(strategy_id)  # a stopped strategy draws no lines
        self.execution.cancel_strategy(strategy_id, "strategy stopped")
        if self._config.close_positions_on_stop:
            await self._close_positions(strategy_id)

    def positions(self, strategy_id: str) -> Sequence[PositionView]:
        return position_views(self.execution.book, strategy_id)

    # ------------------------------------------------------------ market data

    def deliver_bar(self, bar: Bar) -> None:
        for running in self._by_bar.get((bar.symbol, bar.resolution), ()):
            if self._call(running, "on_bar", bar) and running.draws_lines:
                self._publish_lines(running, bar)

    def deliver_tick(self, tick: Tick) -> None:
        for running in self._by_tick.get(tick.symbol, ()):
            self._call(running, "on_tick", tick)

    # ------------------------------------------------------------ signals

    def route_signal(
        self,
        running: RunningStrategy,
        symbol: str,
        action: Side,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms | None = None,
    ) -> str | None:
        """Size, publish and send a strategy's signal; returns its order's id, None when
        no order was sent."""
        held = running.position(symbol)
        size = signal_quantity(
            quantity,
            action,
            held,
            # A resting order is sized at the price it would fill at, at most.
            price if terms is None else terms.limit_price or terms.stop_price or price,
            running.config.max_position_value,
            self._config.sizing_fraction,
        )
        if size is None:
            return None  # already at or beyond the target on this side: nothing to do
        if running.paused:
            # Paused, a strategy may only get out: a reversal keeps its closing part.
            size = reducing_part(held, action.sign * size)
            if size == 0.0:
                log.info("signal_dropped_paused", strategy_id=running.strategy_id, symbol=symbol)
                return None
        if self.execution.holds_back(
            (running.strategy_id, symbol, action), quantity, running.config
        ):
            log.debug("signal_held_back", strategy_id=running.strategy_id, symbol=symbol)
            return None  # the same order was refused and would be again: trading/refusals
        signal = Signal(
            id=self._ids("sig"),
            strategy_id=running.strategy_id,
            strategy_name=running.name,
            symbol=symbol,
            action=action,
            price=price,
            quantity=size,
            confidence=confidence,
            ts=self.clock.now(),
            metadata=dict(metadata),
        )
        self._bus.publish(SignalEmitted(signal))
        return self._send_order(running, signal, quantity, terms)

    def _send_order(
        self,
        running: RunningStrategy,
        signal: Signal,
        asked: float | None,
        terms: OrderTerms | None,
    ) -> str:
        order = Order(
            id=self.execution.new_order_id(),
            strategy_id=signal.strategy_id,
            symbol=signal.symbol,
            side=signal.action,
            quantity=signal.quantity or 0.0,
            ts=signal.ts,
            purpose=OrderPurpose.SIGNAL,
            signal_id=signal.id,
        )
        if terms is not None:
            order = with_terms(order, terms)
        self.execution.submit_signal(order, running.config, signal.price, asked)
        return order.id

    # ------------------------------------------------------------ internals

    def _load(self, entry: CatalogEntry) -> tuple[type[Strategy[Any]], Any]:
        try:
            cls = load_strategy_class(entry.kind)
            return cls, build_params(cls, entry.params)
        except StrategyLoadError as exc:
            raise StrategyUnavailable(f"strategy {entry.id} cannot be loaded: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(describe_validation_errors(exc))
            raise StrategyUnavailable(
                f"strategy {entry.id} has invalid params: {problems}"
            ) from exc

    def _warm_up(self, running: RunningStrategy, strategy: Strategy[Any]) -> None:
        count = strategy.warmup_bars
        resolution = running.config.data_resolution
        bars = [
            bar
            for symbol in running.config.symbols
            for bar in self.market.warmup_bars(symbol, resolution, count)
        ]
        bars.sort(key=lambda bar: bar.start)
        try:
            for bar in bars:
                strategy.on_bar(bar)
                if running.draws_lines:
                    self._record_lines(running, bar)
        except Exception as exc:
            raise StrategyUnavailable(
                f"strategy {running.strategy_id} raised during warm-up: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            running.warming = False

    def _attach(self, running: RunningStrategy) -> None:
        resolution = running.config.data_resolution
        self._running[running.strategy_id] = running
        for symbol in running.config.symbols:
            self.market.subscribe(symbol, resolution)
            self._by_bar.setdefault((symbol, resolution), []).append(running)
            if running.wants_ticks:
                self._by_tick.setdefault(symbol, []).append(running)

    def _detach(self, running: RunningStrategy) -> None:
        resolution = running.config.data_resolution
        self._running.pop(running.strategy_id, None)
        for symbol in running.config.symbols:
            self.market.unsubscribe(symbol, resolution)
            _remove(self._by_bar, (symbol, resolution), running)
            _remove(self._by_tick, symbol, running)

    def _call(self, running: RunningStrategy, callback: str, value: Bar | Tick) -> bool:
        """Run one callback of the strategy; False when it raised (it is now in ERROR)."""
        try:
            getattr(running.strategy, callback)(value)
        except Exception as exc:
            self._failed(running, callback, exc)
            return False
        return True

    def _failed(self, running: RunningStrategy, callback: str, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.exception("strategy_failed", strategy_id=running.strategy_id, callback=callback)
        self._detach(running)
        self.on_failure(running.strategy_id, reason)

    def _publish_lines(self, running: RunningStrategy, bar: Bar) -> None:
        """Keep and announce the strategy's indicator lines after ``bar``."""
        try:
            point = self._record_lines(running, bar)
        except Exception as exc:
            self._failed(running, "indicators", exc)
            return
        if point is not None:
            event = IndicatorsUpdated(
                running.strategy_id, bar.symbol, bar.resolution, point.start, point.values
            )
            self._bus.publish(event)

    def _record_lines(self, running: RunningStrategy, bar: Bar) -> IndicatorPoint | None:
        """The strategy's lines after ``bar``, kept for get_indicators; None when it has
        none to draw yet."""
        assert running.strategy is not None  # attached strategies are built
        values = line_values(running.strategy.indicators(bar.symbol))
        if not values:
            return None
        point = IndicatorPoint(bar.start, values)
        self.lines.add(running.strategy_id, bar.symbol, bar.resolution, point)
        return point

    async def _close_positions(self, strategy_id: str) -> None:
        portfolio = self.execution.book.get(strategy_id)
        if portfolio is None:
            return
        orders = []
        limits = self._configs[strategy_id]
        for position in portfolio.open_positions():
            side = Side.SELL if position.quantity > 0 else Side.BUY
            order = Order(
                id=self.execution.new_order_id(),
                strategy_id=strategy_id,
                symbol=position.symbol,
                side=side,
                quantity=abs(position.quantity),
                ts=self.clock.now(),
                purpose=OrderPurpose.STRATEGY_STOP,
            )
            orders.append(order)
            self.execution.submit(order, limits)
        if orders:
            await self._await_fills(strategy_id, [order.id for order in orders])

    async def _await_fills(self, strategy_id: str, order_ids: list[str]) -> None:
        try:
            async with asyncio.timeout(self._config.stop_timeout_seconds):
                await self.execution.wait_for(order_ids)
        except TimeoutError:
            log.warning("positions_not_closed_in_time", strategy_id=strategy_id)


def _remove(index: dict[Any, list[RunningStrategy]], key: Any, running: RunningStrategy) -> None:
    members = index.get(key)
    if members and running in members:
        members.remove(running)
        if not members:
            del index[key]
