"""Backtest jobs on the orchestrator server: run, cancel and list them.

A job runs a catalog strategy over a history file (CSV or Parquet, inside ``jobs.data_dir``) or
the synthetic feed, with the live risk rules and paper broker, in a worker
process. Its states reach every 8082 client as ``backtest_job`` messages and
the dgbit streams as ``job.*`` events.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from gateways.api import outbound
from gateways.api.backtest_options import backtest_options
from gateways.api.inbound import (
    Command,
    InvalidMessage,
    ParamName,
    ParamValue,
    PrintableText,
    StartStrategyConfig,
    StrategyId,
)
from gateways.api.outbound import Payload
from gateways.config import DaemonConfig
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.backtest.engine import BacktestSpec, FileSource, FilesSource, SyntheticSource
from orchestrator.backtest.jobs import JobInfo, JobManager
from orchestrator.backtest.report import counts_only
from orchestrator.model.clock import Clock
from orchestrator.model.errors import InvalidStrategyConfig
from orchestrator.model.market import Symbol, missing_market_data
from orchestrator.model.validation import describe_validation_errors
from orchestrator.strategy.config import CatalogEntry
from orchestrator.strategy.loader import build_params, load_strategy_class
from orchestrator.strategy.registry import StrategyRegistry

JobId = Annotated[str, Field(min_length=1, max_length=64), PrintableText]


class JobCommandType(StrEnum):
    RUN_BACKTEST = "run_backtest"
    CANCEL_BACKTEST = "cancel_backtest"
    GET_BACKTESTS = "get_backtests"
    GET_BACKTEST_REPORT = "get_backtest_report"
    GET_BACKTEST = "get_backtest"
    GET_BACKTEST_OPTIONS = "get_backtest_options"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FileSourceIn(_Wire):
    """A history file inside ``jobs.data_dir``: CSV, Parquet, a dataset or a recording."""

    kind: Literal["file", "csv"]
    path: str = Field(min_length=1, max_length=1024)


class FilesSourceIn(_Wire):
    """One history file (or dataset, or recording) per symbol, inside ``jobs.data_dir``:
    a backtest of these symbols on one account."""

    kind: Literal["files"]
    paths: dict[Symbol, Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        min_length=1, max_length=50
    )


class SyntheticSourceIn(_Wire):
    """The wire's names for :class:`SyntheticSource`; an omitted field (None) takes the
    core model's default, so the wire, the CLI and the core run the same history."""

    kind: Literal["synthetic"]
    resolution: str | None = None
    durationSeconds: float | None = None
    initialPrice: float | None = None
    drift: float | None = None
    volatility: float | None = None
    ticksPerSecond: float | None = None
    seed: int | None = None


class BacktestCommand(Command):
    """What a backtest runs: the fields run_backtest and run_sweep share."""

    strategyId: StrategyId
    source: Annotated[FileSourceIn | FilesSourceIn | SyntheticSourceIn, Field(discriminator="kind")]
    symbol: Symbol | None = None
    symbols: list[Symbol] | None = Field(None, min_length=1, max_length=50)
    """Several symbols on one account (docs/backtests.md)."""
    initialCapital: float | None = None
    partialFills: bool = False
    """Each bar fills at most maxVolumeFraction of its volume of an order (docs/orders.md)."""
    maxVolumeFraction: float | None = None
    config: StartStrategyConfig | None = None
    params: Annotated[dict[ParamName, ParamValue], Field(max_length=64)] | None = None
    """The strategy's params for this run, over the catalog's (checked by its model)."""


class RunBacktest(BacktestCommand):
    type: Literal[JobCommandType.RUN_BACKTEST]


class CancelBacktest(Command):
    type: Literal[JobCommandType.CANCEL_BACKTEST]
    jobId: JobId


class GetBacktests(Command):
    type: Literal[JobCommandType.GET_BACKTESTS]


class GetBacktest(Command):
    """One job with its whole result (as kept), as its completion told it."""

    type: Literal[JobCommandType.GET_BACKTEST]
    jobId: JobId


class GetBacktestOptions(Command):
    type: Literal[JobCommandType.GET_BACKTEST_OPTIONS]


class GetBacktestReport(Command):
    """One page of a completed job's full report (docs/statistics.md: the pages)."""

    type: Literal[JobCommandType.GET_BACKTEST_REPORT]
    jobId: JobId
    offset: int = Field(0, ge=0, le=10**9, description="First bar of the page's curves.")
    tradeOffset: int = Field(0, ge=0, le=10**9, description="First trade of the page.")


class JobCommands:
    def __init__(
        self,
        jobs: JobManager,
        registry: StrategyRegistry,
        config: DaemonConfig,
        clock: Clock,
        market_symbols: Collection[str],
    ) -> None:
        self._jobs = jobs
        self._registry = registry
        self._config = config
        self._clock = clock
        self._market_symbols = market_symbols

    @property
    def data_dir(self) -> Path | None:
        """Where file sources are named from (``[jobs] data_dir``)."""
        return self._config.jobs.data_dir

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            JobCommandType.RUN_BACKTEST: self.run_backtest,
            JobCommandType.CANCEL_BACKTEST: self.cancel_backtest,
            JobCommandType.GET_BACKTESTS: self.get_backtests,
            JobCommandType.GET_BACKTEST_REPORT: self.get_backtest_report,
            JobCommandType.GET_BACKTEST: self.get_backtest,
            JobCommandType.GET_BACKTEST_OPTIONS: self.get_backtest_options,
        }

    async def run_backtest(self, command: RunBacktest, _: Session) -> Replies:
        job_id = self._jobs.submit(self.checked_spec(command))
        return [self._reply(self._jobs.get(job_id), command)]

    def checked_spec(self, command: BacktestCommand) -> BacktestSpec:
        """The spec of a backtest (or a sweep's trials), with its file inside data_dir."""
        spec = self._jobs.admitted(self._spec(command))
        if isinstance(spec.source, SyntheticSource):
            # Checked as start_strategy checks it: synthetic bars of a symbol the
            # daemon never trades would test nothing a user can run.
            problem = missing_market_data(spec.traded_symbols, self._market_symbols)
            if problem is not None:
                raise InvalidStrategyConfig(problem)
        return spec

    async def cancel_backtest(self, command: CancelBacktest, _: Session) -> Replies:
        return [self._reply(self._jobs.cancel(command.jobId), command)]

    async def get_backtests(self, command: GetBacktests, _: Session) -> Replies:
        # Counts only: a thousand jobs with their reports would not fit in one reply.
        listed = [replace(info, result=counts_only(info.result)) for info in self._jobs.list()]
        data = [self._described(info) for info in listed]
        return [outbound.encode("backtest_jobs", data, self._clock.now(), command.request_id)]

    async def get_backtest(self, command: GetBacktest, _: Session) -> Replies:
        return [self._reply(self._jobs.get(command.jobId), command)]

    async def get_backtest_options(self, command: GetBacktestOptions, _: Session) -> Replies:
        entries = [self._registry.entry(view.id) for view in self._registry.catalog()]
        data = backtest_options(entries, self._market_symbols, self._config.jobs.data_dir)
        return [outbound.encode("backtest_options", data, self._clock.now(), command.request_id)]

    async def get_backtest_report(self, command: GetBacktestReport, _: Session) -> Replies:
        page = self._jobs.report(command.jobId).page(command.offset, command.tradeOffset)
        data = outbound.backtest_report(command.jobId, page)
        return [outbound.encode("backtest_report", data, self._clock.now(), command.request_id)]

    def _reply(self, info: JobInfo, command: Command) -> bytes:
        return outbound.encode(
            "backtest_job", self._described(info), self._clock.now(), command.request_id
        )

    def _described(self, info: JobInfo) -> Payload:
        """The job's message with what it runs, so that a listing reads on its own."""
        spec = self._jobs.spec(info.job_id)
        return outbound.job_data(info) | outbound.job_request(
            spec, info, self._config.jobs.data_dir
        )

    def _spec(self, command: BacktestCommand) -> BacktestSpec:
        overrides = command.config.overrides() if command.config is not None else None
        run_config = self._registry.run_config(command.strategyId, overrides)
        entry = _with_params(self._registry.entry(command.strategyId), command.params)
        try:
            return BacktestSpec(
                strategy=entry,
                source=_source(command.source),
                symbol=command.symbol,
                symbols=tuple(command.symbols) if command.symbols is not None else None,
                initial_capital=command.initialCapital,
                partial_fills=command.partialFills,
                **_volume_fraction(command.maxVolumeFraction),
                config=run_config,
                broker=self._config.broker,
                risk=self._config.risk,
                runtime=self._config.runtime,
            )
        except ValidationError as exc:
            problems = "; ".join(
                _in_wire_words(p, BacktestSpec, "") for p in describe_validation_errors(exc)
            )
            raise InvalidMessage(f"invalid {command.type}: {problems}") from exc


def _volume_fraction(fraction: float | None) -> dict[str, float]:
    """The spec's max_volume_fraction when the command gave one (else its default)."""
    return {} if fraction is None else {"max_volume_fraction": fraction}


def _with_params(entry: CatalogEntry, params: Mapping[str, Any] | None) -> CatalogEntry:
    """The catalog entry with ``params`` over its own, checked by the strategy's params
    model now (invalid_config), not in the worker when the job runs."""
    if not params:
        return entry
    merged = {**entry.params, **params}
    try:
        build_params(load_strategy_class(entry.kind), merged)
    except ValidationError as exc:
        problems = "; ".join(_in_params(p) for p in describe_validation_errors(exc))
        raise InvalidStrategyConfig(f"invalid params for {entry.id}: {problems}") from exc
    return entry.model_copy(update={"params": merged})


def _source(
    source: FileSourceIn | FilesSourceIn | SyntheticSourceIn,
) -> FileSource | FilesSource | SyntheticSource:
    if isinstance(source, FileSourceIn):
        return FileSource(kind=source.kind, path=Path(source.path))
    if isinstance(source, FilesSourceIn):
        return FilesSource(paths={symbol: Path(path) for symbol, path in source.paths.items()})
    given = source.model_dump(exclude={"kind"}, exclude_none=True)
    try:
        return SyntheticSource(**{to_snake(name): value for name, value in given.items()})
    except ValidationError as exc:
        problems = "; ".join(
            _in_wire_words(problem, SyntheticSource, "source")
            for problem in describe_validation_errors(exc)
        )
        raise InvalidMessage(f"invalid run_backtest: {problems}") from exc


def _in_params(problem: str) -> str:
    """A problem of the strategy's params model, where the command puts it."""
    top = "(top level): "
    return (
        f"params: {problem.removeprefix(top)}" if problem.startswith(top) else f"params.{problem}"
    )


def _in_wire_words(problem: str, model: type[BaseModel], inside: str) -> str:
    """A problem of a core model (``inside`` a field of the command, or at its top),
    where the wire's names put it."""
    where, _, what = problem.partition(": ")
    if where == "(top level)":
        where = inside or where
    elif inside:
        where = f"{inside}.{where}"
    for name in model.model_fields:
        where, what = where.replace(name, to_camel(name)), what.replace(name, to_camel(name))
    return f"{where}: {what}"
