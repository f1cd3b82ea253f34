"""The strategy registry: the one place that owns each strategy's lifecycle.

Transitions (anything else is refused with ``invalid_transition``)::

    STOPPED --start--> ACTIVE        PAUSED --start--> ACTIVE (resume)
    ERROR   --start--> ACTIVE        ACTIVE --pause--> PAUSED
    ACTIVE | PAUSED | ERROR --stop--> STOPPED
    ACTIVE | PAUSED --(strategy raised)--> ERROR

The registry decides; a :class:`StrategyEngine` does the work (market data,
orders, positions). Every change is published on the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from orchestrator.bus import EventBus
from orchestrator.model.clock import Clock
from orchestrator.model.errors import (
    InvalidStrategyConfig,
    InvalidTransition,
    OrchestratorError,
    UnknownStrategy,
)
from orchestrator.model.events import CommandOrigin, StrategyStatus, StrategyStatusChanged
from orchestrator.model.validation import describe_validation_errors
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.strategy.loader import StrategyLoadError, build_params, load_strategy_class
from orchestrator.trading.portfolio import Pnl, PortfolioBook

log = structlog.get_logger("orchestrator.strategy.registry")


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    quantity: float
    entry_price: float
    current_value: float
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0


def position_views(book: PortfolioBook, strategy_id: str) -> tuple[PositionView, ...]:
    """The strategy's open positions in ``book``, as views show them."""
    portfolio = book.get(strategy_id)
    if portfolio is None:
        return ()
    return tuple(
        PositionView(
            symbol=p.symbol,
            quantity=p.quantity,
            entry_price=p.entry_price,
            current_value=p.market_value,
            realized_pnl=p.realized_pnl,
            unrealized_pnl=p.unrealized_pnl,
        )
        for p in portfolio.open_positions()
    )


@dataclass(frozen=True, slots=True)
class StrategyView:
    id: str
    name: str
    status: StrategyStatus
    symbols: tuple[str, ...]
    positions: tuple[PositionView, ...]
    config: StrategyRunConfig
    params: Mapping[str, Any]
    """The strategy's params: those it runs (or last ran) with, else the catalog's."""
    error: str | None = None
    pnl: Pnl | None = None
    """The strategy's P&L as clients are shown it (the committed views set it); None in
    the registry's own views."""


class StrategyEngine(Protocol):
    """What runs strategies; the registry tells it when, it never decides itself."""

    def check(self, entry: CatalogEntry, config: StrategyRunConfig) -> None:
        """Raise an OrchestratorError if this strategy cannot run with this config."""

    async def activate(self, entry: CatalogEntry, config: StrategyRunConfig) -> None: ...

    def pause(self, strategy_id: str) -> None: ...

    def resume(self, strategy_id: str) -> None: ...

    async def deactivate(self, strategy_id: str) -> None: ...

    def positions(self, strategy_id: str) -> Sequence[PositionView]: ...


class SavedStrategy(Protocol):
    """A strategy as the journal last saw it."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> StrategyStatus: ...

    @property
    def config(self) -> StrategyRunConfig | None: ...

    @property
    def error(self) -> str | None: ...


@dataclass(slots=True)
class _Record:
    entry: CatalogEntry
    status: StrategyStatus
    config: StrategyRunConfig
    lock: asyncio.Lock
    error: str | None = None
    next_entry: CatalogEntry | None = None
    """A reloaded catalog entry, taken when the strategy stops."""
    removed: bool = False
    """Gone from the reloaded catalog: dropped when the strategy stops."""


class StrategyRegistry:
    def __init__(
        self,
        catalog: Sequence[CatalogEntry],
        engine: StrategyEngine,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        self._records = {
            entry.id: _Record(entry, StrategyStatus.STOPPED, entry.defaults, asyncio.Lock())
            for entry in catalog
        }
        self._engine = engine
        self._bus = bus
        self._clock = clock

    def catalog(self) -> list[StrategyView]:
        """Every strategy, STOPPED ones included, in catalog order."""
        return [self._view(record) for record in self._records.values()]

    def active(self) -> list[StrategyView]:
        """Every strategy that is not STOPPED."""
        return [
            self._view(record)
            for record in self._records.values()
            if record.status is not StrategyStatus.STOPPED
        ]

    def view(self, strategy_id: str) -> StrategyView:
        return self._view(self._record(strategy_id))

    def entry(self, strategy_id: str) -> CatalogEntry:
        return self._record(strategy_id).entry

    def run_config(
        self, strategy_id: str, overrides: Mapping[str, Any] | None = None
    ) -> StrategyRunConfig:
        """The catalog's defaults with ``overrides`` (wire names), validated as for a start."""
        return self._merge_config(self._record(strategy_id).entry, overrides)

    def status(self, strategy_id: str) -> StrategyStatus:
        return self._record(strategy_id).status

    async def start(
        self,
        strategy_id: str,
        overrides: Mapping[str, Any] | None = None,
        origin: CommandOrigin | None = None,
    ) -> StrategyStatusChanged:
        record = self._record(strategy_id)
        async with record.lock:
            if record.status is StrategyStatus.ACTIVE:
                raise InvalidTransition(f"strategy {strategy_id} is already ACTIVE")
            if record.status is StrategyStatus.PAUSED:
                return self._resume(record, overrides, origin)
            config = self._merge_config(record.entry, overrides)
            entry = _running_entry(record.entry, config)
            self._engine.check(entry, config)
            await self._engine.activate(entry, config)
            record.config = config
            record.error = None
            return self._transition(record, StrategyStatus.ACTIVE, origin)

    async def pause(
        self, strategy_id: str, origin: CommandOrigin | None = None
    ) -> StrategyStatusChanged:
        record = self._record(strategy_id)
        async with record.lock:
            if record.status is not StrategyStatus.ACTIVE:
                raise InvalidTransition(
                    f"strategy {strategy_id} is {record.status}; "
                    "only an ACTIVE strategy can be paused"
                )
            self._engine.pause(strategy_id)
            return self._transition(record, StrategyStatus.PAUSED, origin)

    async def stop(
        self, strategy_id: str, origin: CommandOrigin | None = None
    ) -> StrategyStatusChanged:
        record = self._record(strategy_id)
        async with record.lock:
            if record.status is StrategyStatus.STOPPED:
                raise InvalidTransition(f"strategy {strategy_id} is already STOPPED")
            await self._engine.deactivate(strategy_id)
            event = self._transition(record, StrategyStatus.STOPPED, origin)
            self._after_stop(record)
            return event

    def fail(self, strategy_id: str, reason: str) -> StrategyStatusChanged | None:
        """The engine reports that a strategy raised; it stays ERROR until started again."""
        record = self._record(strategy_id)
        if record.status not in (StrategyStatus.ACTIVE, StrategyStatus.PAUSED):
            return None
        record.error = reason
        return self._transition(record, StrategyStatus.ERROR, None, reason)

    def reload_catalog(self, catalog: Sequence[CatalogEntry]) -> list[str]:
        """Take a new catalog without touching what runs: new strategies appear
        STOPPED, stopped ones take their new entry now, running ones when they
        stop. Returns one line per change, for the log."""
        changes = []
        records = {}
        for entry in catalog:
            record = self._records.get(entry.id)
            if record is None:
                record = _Record(entry, StrategyStatus.STOPPED, entry.defaults, asyncio.Lock())
                changes.append(f"{entry.id}: added")
            elif record.entry != entry:
                changes.append(self._replace_entry(record, entry))
            records[entry.id] = record
        for strategy_id, record in self._records.items():
            if strategy_id not in records:
                changes.append(self._drop_entry(record, records))
        self._records = records
        return changes

    def _replace_entry(self, record: _Record, entry: CatalogEntry) -> str:
        if record.status is StrategyStatus.STOPPED:
            record.entry, record.config = entry, entry.defaults
            return f"{entry.id}: updated"
        record.next_entry = entry
        return f"{entry.id}: updated when it stops (it is {record.status})"

    def _drop_entry(self, record: _Record, records: dict[str, _Record]) -> str:
        if record.status is StrategyStatus.STOPPED:
            return f"{record.entry.id}: removed"
        record.removed = True
        records[record.entry.id] = record
        return f"{record.entry.id}: removed when it stops (it is {record.status})"

    def _after_stop(self, record: _Record) -> None:
        if record.removed:
            self._records.pop(record.entry.id, None)
        elif record.next_entry is not None:
            record.entry, record.config = record.next_entry, record.next_entry.defaults
            record.next_entry = None

    async def restore(self, saved: Sequence[SavedStrategy]) -> None:
        """Bring back what ran before a restart: ACTIVE and PAUSED strategies run
        again with their configs, ERROR ones stay ERROR. A strategy that can no
        longer run (its code or its symbols are gone) is restored as ERROR."""
        for item in saved:
            record = self._records.get(item.id)
            if record is None:
                log.warning("strategy_not_restored", strategy_id=item.id, reason="not in catalog")
                continue
            record.config = item.config or record.entry.defaults
            if item.status is StrategyStatus.ERROR or item.config is None:
                record.status, record.error = StrategyStatus.ERROR, item.error
            else:
                await self._reactivate(record, item.status)
            log.info("strategy_restored", strategy_id=item.id, status=record.status)

    async def _reactivate(self, record: _Record, status: StrategyStatus) -> None:
        entry = _running_entry(record.entry, record.config)
        try:
            self._engine.check(entry, record.config)
            await self._engine.activate(entry, record.config)
        except OrchestratorError as exc:
            record.status = StrategyStatus.ACTIVE  # so that the failure is a transition
            self.fail(record.entry.id, f"not restored: {exc.message}")
            return
        record.status = status
        if status is StrategyStatus.PAUSED:
            self._engine.pause(record.entry.id)

    def _resume(
        self,
        record: _Record,
        overrides: Mapping[str, Any] | None,
        origin: CommandOrigin | None,
    ) -> StrategyStatusChanged:
        if overrides:
            requested = self._merge_config(record.entry, overrides, base=record.config)
            if not _same_run(record.entry, requested, record.config):
                raise InvalidTransition(
                    f"strategy {record.entry.id} is PAUSED with another config; "
                    "stop it first to start it with a new config"
                )
        self._engine.resume(record.entry.id)
        return self._transition(record, StrategyStatus.ACTIVE, origin)

    def _merge_config(
        self,
        entry: CatalogEntry,
        overrides: Mapping[str, Any] | None,
        base: StrategyRunConfig | None = None,
    ) -> StrategyRunConfig:
        merged = (base or entry.defaults).model_dump(by_alias=True)
        given = dict(overrides or {})
        params = given.pop("params", None)
        merged.update(given)
        if params is not None:
            merged["params"] = _checked_params(entry, params)
        try:
            config = StrategyRunConfig.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(describe_validation_errors(exc))
            raise InvalidStrategyConfig(f"invalid config for {entry.id}: {problems}") from exc
        return config

    def _transition(
        self,
        record: _Record,
        status: StrategyStatus,
        origin: CommandOrigin | None,
        reason: str | None = None,
    ) -> StrategyStatusChanged:
        previous, record.status = record.status, status
        event = StrategyStatusChanged(
            strategy_id=record.entry.id,
            name=record.entry.name,
            status=status,
            previous=previous,
            symbols=record.config.symbols,
            ts=self._clock.now(),
            origin=origin,
            reason=reason,
            config=record.config,
        )
        log.info(
            "strategy_status_changed",
            strategy_id=record.entry.id,
            status=status,
            previous=previous,
            reason=reason,
        )
        self._bus.publish(event)
        return event

    def _record(self, strategy_id: str) -> _Record:
        try:
            return self._records[strategy_id]
        except KeyError:
            known = ", ".join(self._records) or "none"
            raise UnknownStrategy(
                f"no strategy with id {strategy_id!r}; known ids: {known}"
            ) from None

    def _view(self, record: _Record) -> StrategyView:
        return StrategyView(
            id=record.entry.id,
            name=record.entry.name,
            status=record.status,
            symbols=record.config.symbols,
            positions=tuple(self._engine.positions(record.entry.id)),
            config=record.config,
            params=record.config.params_over(record.entry.params),
            error=record.error,
        )


def _running_entry(entry: CatalogEntry, config: StrategyRunConfig) -> CatalogEntry:
    """The catalog entry with the params this run uses, for the engine to load."""
    if config.params is None:
        return entry
    return entry.model_copy(update={"params": config.params})


def _checked_params(entry: CatalogEntry, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over the catalog's params, checked by the strategy's params model now
    (invalid_config names the field), not at the first bar. A strategy whose code cannot
    be loaded is left to the engine's check, which says so (strategy_unavailable)."""
    if not isinstance(given, Mapping):
        raise InvalidStrategyConfig(
            f"invalid config for {entry.id}: params: an object of the strategy's "
            f'parameters, e.g. {{"fast": 5}}, was expected, not {type(given).__name__}'
        )
    merged = {**entry.params, **given}
    try:
        build_params(load_strategy_class(entry.kind), merged)
    except StrategyLoadError:
        return merged
    except ValidationError as exc:
        problems = "; ".join(_in_params(p) for p in describe_validation_errors(exc))
        raise InvalidStrategyConfig(f"invalid config for {entry.id}: {problems}") from exc
    return merged


def _in_params(problem: str) -> str:
    """A problem of the strategy's params model, where start_strategy's config puts it."""
    top = "(top level): "
    if problem.startswith(top):
        return f"params: {problem.removeprefix(top)}"
    return f"params.{problem}"


def _same_run(entry: CatalogEntry, a: StrategyRunConfig, b: StrategyRunConfig) -> bool:
    """Whether two configs run the same: the params compared as the strategy gets them
    (none given means the catalog's)."""
    return a.model_copy(update={"params": None}) == b.model_copy(
        update={"params": None}
    ) and a.params_over(entry.params) == b.params_over(entry.params)
