"""Backtest jobs on the orchestrator server: run, cancel and list them.

A job runs a catalog strategy over a history file (CSV or Parquet, inside ``jobs.data_dir``) or
the synthetic feed, with the live risk rules and paper broker, in a worker
process. Its states reach every 8082 client as ``backtest_job`` messages and
the dgbit streams as ``job.*`` events.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from gateways.api import outbound
from gateways.api.history import GetRecentActivity, HistoryCommandType
from gateways.api.inbound import (
    STRATEGY_COMMANDS,
    Command,
    CommandParser,
    InvalidMessage,
    PrintableText,
    StartStrategyConfig,
    StrategyCommand,
    StrategyId,
)
from gateways.api.venues import VENUE_COMMANDS, AcknowledgeMismatch, GetVenueStatus
from gateways.config import DaemonConfig
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.backtest.engine import BacktestSpec, FileSource, SyntheticSource
from orchestrator.backtest.jobs import JobInfo, JobManager
from orchestrator.backtest.report import counts_only
from orchestrator.model.clock import Clock
from orchestrator.model.errors import InvalidStrategyConfig
from orchestrator.model.market import Symbol, missing_market_data
from orchestrator.model.validation import describe_validation_errors
from orchestrator.strategy.registry import StrategyRegistry

JobId = Annotated[str, Field(min_length=1, max_length=64), PrintableText]


class JobCommandType(StrEnum):
    RUN_BACKTEST = "run_backtest"
    CANCEL_BACKTEST = "cancel_backtest"
    GET_BACKTESTS = "get_backtests"
    GET_BACKTEST_REPORT = "get_backtest_report"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FileSourceIn(_Wire):
    """A history file inside ``jobs.data_dir``: CSV, Parquet, a dataset or a recording."""

    kind: Literal["file", "csv"]
    path: str = Field(min_length=1, max_length=1024)


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


class RunBacktest(Command):
    type: Literal[JobCommandType.RUN_BACKTEST]
    strategyId: StrategyId
    source: Annotated[FileSourceIn | SyntheticSourceIn, Field(discriminator="kind")]
    symbol: Symbol | None = None
    config: StartStrategyConfig | None = None


class CancelBacktest(Command):
    type: Literal[JobCommandType.CANCEL_BACKTEST]
    jobId: JobId


class GetBacktests(Command):
    type: Literal[JobCommandType.GET_BACKTESTS]


class GetBacktestReport(Command):
    """One page of a completed job's full report (docs/statistics.md: the pages)."""

    type: Literal[JobCommandType.GET_BACKTEST_REPORT]
    jobId: JobId
    offset: int = Field(0, ge=0, le=10**9, description="First bar of the page's curves.")
    tradeOffset: int = Field(0, ge=0, le=10**9, description="First trade of the page.")


OrchestratorCommand = Annotated[
    StrategyCommand
    | RunBacktest
    | CancelBacktest
    | GetBacktests
    | GetBacktestReport
    | GetRecentActivity
    | GetVenueStatus
    | AcknowledgeMismatch,
    Field(discriminator="type"),
]


def orchestrator_command_parser() -> CommandParser:
    adapter: TypeAdapter[Any] = TypeAdapter(OrchestratorCommand)
    accepted = (
        STRATEGY_COMMANDS
        | frozenset(JobCommandType)
        | frozenset(HistoryCommandType)
        | VENUE_COMMANDS
    )
    return CommandParser(adapter, accepted)


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

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            JobCommandType.RUN_BACKTEST: self.run_backtest,
            JobCommandType.CANCEL_BACKTEST: self.cancel_backtest,
            JobCommandType.GET_BACKTESTS: self.get_backtests,
            JobCommandType.GET_BACKTEST_REPORT: self.get_backtest_report,
        }

    async def run_backtest(self, command: RunBacktest, _: Session) -> Replies:
        spec = self._spec(command)
        if isinstance(spec.source, SyntheticSource):
            # Checked as start_strategy checks it: synthetic bars of a symbol the
            # daemon never trades would test nothing a user can run.
            problem = missing_market_data((spec.traded_symbol,), self._market_symbols)
            if problem is not None:
                raise InvalidStrategyConfig(problem)
        job_id = self._jobs.submit(spec)
        return [self._reply(self._jobs.get(job_id), command)]

    async def cancel_backtest(self, command: CancelBacktest, _: Session) -> Replies:
        return [self._reply(self._jobs.cancel(command.jobId), command)]

    async def get_backtests(self, command: GetBacktests, _: Session) -> Replies:
        # Counts only: a thousand jobs with their reports would not fit in one reply.
        listed = [replace(info, result=counts_only(info.result)) for info in self._jobs.list()]
        data = [outbound.job_data(info) for info in listed]
        return [outbound.encode("backtest_jobs", data, self._clock.now(), command.request_id)]

    async def get_backtest_report(self, command: GetBacktestReport, _: Session) -> Replies:
        page = self._jobs.report(command.jobId).page(command.offset, command.tradeOffset)
        data = outbound.backtest_report(command.jobId, page)
        return [outbound.encode("backtest_report", data, self._clock.now(), command.request_id)]

    def _reply(self, info: JobInfo, command: Command) -> bytes:
        return outbound.encode(
            "backtest_job", outbound.job_data(info), self._clock.now(), command.request_id
        )

    def _spec(self, command: RunBacktest) -> BacktestSpec:
        overrides = command.config.overrides() if command.config is not None else None
        run_config = self._registry.run_config(command.strategyId, overrides)
        try:
            return BacktestSpec(
                strategy=self._registry.entry(command.strategyId),
                source=_source(command.source),
                symbol=command.symbol,
                config=run_config,
                broker=self._config.broker,
                risk=self._config.risk,
                runtime=self._config.runtime,
            )
        except ValidationError as exc:
            problems = "; ".join(describe_validation_errors(exc))
            raise InvalidMessage(f"invalid run_backtest: {problems}") from exc


def _source(source: FileSourceIn | SyntheticSourceIn) -> FileSource | SyntheticSource:
    if isinstance(source, FileSourceIn):
        return FileSource(kind=source.kind, path=Path(source.path))
    given = source.model_dump(exclude={"kind"}, exclude_none=True)
    try:
        return SyntheticSource(**{to_snake(name): value for name, value in given.items()})
    except ValidationError as exc:
        problems = "; ".join(_in_wire_words(problem) for problem in describe_validation_errors(exc))
        raise InvalidMessage(f"invalid run_backtest: {problems}") from exc


def _in_wire_words(problem: str) -> str:
    """A problem of the core's SyntheticSource, where the wire's names put it."""
    where, _, what = problem.partition(": ")
    where = "source" if where == "(top level)" else f"source.{where}"
    for name in SyntheticSource.model_fields:
        where, what = where.replace(name, to_camel(name)), what.replace(name, to_camel(name))
    return f"{where}: {what}"
