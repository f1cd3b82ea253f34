"""Sweeps on the orchestrator server: run, cancel, list and fetch them.

A sweep runs a catalog strategy over the same sources as ``run_backtest`` for many
parameter sets (grid, random or TPE; optionally walk-forward), on the Dask cluster.
Its states reach every 8082 client as ``sweep_job`` messages and its progress as
``sweep_progress``; the dgbit streams get ``job.*`` and ``job.progress`` events with
``job_type`` ``"sweep"``.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from gateways.api import outbound
from gateways.api.inbound import Command, InvalidMessage
from gateways.api.jobs import BacktestCommand, JobCommands, JobId, _Wire
from gateways.api.outbound import Payload
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.backtest.engine import BacktestSpec
from orchestrator.backtest.jobs import JobInfo
from orchestrator.model.clock import Clock
from orchestrator.model.validation import describe_validation_errors
from orchestrator.sweep.jobs import SweepManager, summary
from orchestrator.sweep.objective import Objective
from orchestrator.sweep.search import SweepSpec
from orchestrator.sweep.space import ParameterRange
from orchestrator.sweep.walk_forward import WalkForwardSpec

ParameterName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_]\w*$")]
Choice = bool | int | float | Annotated[str, Field(max_length=256)]


class SweepCommandType(StrEnum):
    RUN_SWEEP = "run_sweep"
    CANCEL_SWEEP = "cancel_sweep"
    GET_SWEEPS = "get_sweeps"
    GET_SWEEP = "get_sweep"


class RangeIn(_Wire):
    """One parameter's range: low/high (step, log) or choices (docs/sweeps.md)."""

    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False
    choices: list[Choice] | None = Field(None, max_length=1000)


class ObjectiveIn(_Wire):
    metric: str = Field("sharpe_ratio", max_length=64)
    direction: Literal["maximize", "minimize"] = "maximize"
    minTrades: int = 0
    maxDrawdownPct: float | None = None


class WalkForwardIn(_Wire):
    windows: int = 4
    trainRatio: float = 3.0
    anchored: bool = False


class RunSweep(BacktestCommand):
    """A backtest's fields (strategyId, source, symbol, config) and the search's."""

    type: Literal[SweepCommandType.RUN_SWEEP]
    parameters: dict[ParameterName, RangeIn] = Field(min_length=1, max_length=16)
    objective: ObjectiveIn | None = None
    method: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = None
    seed: int = 0
    heatmap: tuple[ParameterName, ParameterName] | None = None
    walkForward: WalkForwardIn | None = None


class CancelSweep(Command):
    type: Literal[SweepCommandType.CANCEL_SWEEP]
    jobId: JobId


class GetSweeps(Command):
    type: Literal[SweepCommandType.GET_SWEEPS]


class GetSweep(Command):
    type: Literal[SweepCommandType.GET_SWEEP]
    jobId: JobId


class SweepCommands:
    def __init__(self, sweeps: SweepManager, backtests: JobCommands, clock: Clock) -> None:
        self._sweeps = sweeps
        self._backtests = backtests
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            SweepCommandType.RUN_SWEEP: self.run_sweep,
            SweepCommandType.CANCEL_SWEEP: self.cancel_sweep,
            SweepCommandType.GET_SWEEPS: self.get_sweeps,
            SweepCommandType.GET_SWEEP: self.get_sweep,
        }

    async def run_sweep(self, command: RunSweep, _: Session) -> Replies:
        backtest = self._backtests.checked_spec(command)
        job_id = self._sweeps.submit(_sweep_spec(command, backtest))
        return [self._reply(self._sweeps.get(job_id), command)]

    async def cancel_sweep(self, command: CancelSweep, _: Session) -> Replies:
        return [self._reply(self._sweeps.cancel(command.jobId), command)]

    async def get_sweeps(self, command: GetSweeps, _: Session) -> Replies:
        # Without the tables: a hundred sweeps with theirs would not fit in one reply.
        listed = [replace(info, result=summary(info.result)) for info in self._sweeps.list()]
        data = [self._described(info) for info in listed]
        return [outbound.encode("sweep_jobs", data, self._clock.now(), command.request_id)]

    async def get_sweep(self, command: GetSweep, _: Session) -> Replies:
        return [self._reply(self._sweeps.get(command.jobId), command)]

    def _reply(self, info: JobInfo, command: Command) -> bytes:
        return outbound.encode(
            "sweep_job", self._described(info), self._clock.now(), command.request_id
        )

    def _described(self, info: JobInfo) -> Payload:
        """The sweep's message with what it searches, so that a listing reads on its own
        (a failed sweep has no result to say it)."""
        spec = self._sweeps.spec(info.job_id)
        return (
            outbound.job_data(info)
            | outbound.job_request(spec.backtest, info, self._backtests.data_dir)
            | {
                "method": spec.method,
                "parameters": {
                    name: given.model_dump(mode="json", exclude_defaults=True)
                    for name, given in spec.space.items()
                },
                "objective": spec.objective.model_dump(mode="json"),
                "trials": spec.trials,
            }
        )


def _sweep_spec(command: RunSweep, backtest: BacktestSpec) -> SweepSpec:
    try:
        objective = command.objective or ObjectiveIn()
        walk_forward = command.walkForward
        return SweepSpec(
            backtest=backtest,
            space={
                name: ParameterRange(**given.model_dump(exclude_none=True, exclude_defaults=True))
                for name, given in command.parameters.items()
            },
            objective=Objective(
                metric=objective.metric,
                direction=objective.direction,
                min_trades=objective.minTrades,
                max_drawdown_pct=objective.maxDrawdownPct,
            ),
            method=command.method,
            trials=command.trials,
            seed=command.seed,
            heatmap=command.heatmap,
            walk_forward=WalkForwardSpec(
                windows=walk_forward.windows,
                train_ratio=walk_forward.trainRatio,
                anchored=walk_forward.anchored,
            )
            if walk_forward is not None
            else None,
        )
    except ValidationError as exc:
        problems = "; ".join(describe_validation_errors(exc))
        raise InvalidMessage(f"invalid run_sweep: {problems}") from exc
