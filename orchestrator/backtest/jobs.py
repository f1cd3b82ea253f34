"""Backtest jobs: a bounded queue, worker processes, and job events on the bus.

A job is one :class:`~orchestrator.backtest.engine.BacktestSpec` with a uuid4 id. Each
change of its state is published as a :class:`JobStateChanged` (the dgbit
``job.*`` events)::

    submit ──▶ pending (job.created) ──▶ running (job.started) ──▶ completed (job.completed, result)
                   │                          │
                   └── cancel ──▶ failed      └──▶ failed (job.failed, error)

dgbit knows four statuses, so a cancelled job is ``failed`` with the error
``"cancelled by user"``, and one that overran ``max_job_seconds`` is failed
saying so. Errors are sentences a person can act on (no data, a bad file and
line, the strategy's exception and the bar it raised on).

Backtests are CPU-bound, so they never run on the event loop: each of the
``max_concurrent_jobs`` slots has its own worker process (a one-worker
:class:`~concurrent.futures.ProcessPoolExecutor`, spawned, kept between jobs),
awaited through ``loop.run_in_executor``. To cancel a running job the manager
raises the slot's shared stop flag, which the engine reads between chunks of
bars; a job that has not stopped ``cancel_grace_seconds`` later (a strategy
stuck in ``on_bar``) has its worker process killed, and the slot starts a fresh
one for the next job. Limits: ``max_queued_jobs`` waiting (beyond, submit raises
:class:`JobQueueFull`), ``max_finished_jobs`` remembered.

OHLCV files come only from ``jobs.data_dir``: a client names a path relative to
it, and a path that resolves outside (``..``, a symlink) is refused, so a job
cannot make the daemon read an arbitrary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.backtest.config import JobsConfig
from orchestrator.backtest.engine import BacktestCancelled, BacktestError, BacktestSpec, FileSource
from orchestrator.bus import EventBus
from orchestrator.model.clock import Clock
from orchestrator.model.errors import InvalidTransition, OrchestratorError
from orchestrator.model.events import JobStateChanged, JobStatus

log = structlog.get_logger("orchestrator.backtest.jobs")

BACKTEST = "backtest"
"""The ``job_type`` of backtest jobs (the only kind so far)."""
CANCELLED_BY_USER = "cancelled by user"
"""The error of a job cancelled by ``cancel`` (dgbit has no cancelled status)."""


class JobQueueFull(OrchestratorError):
    code = "job_queue_full"


class UnknownJob(OrchestratorError):
    code = "unknown_job"


class InvalidJob(OrchestratorError):
    """A job the manager refuses to queue (for instance a file outside data_dir)."""

    code = "invalid_job"


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as ``get`` and ``list`` show it."""

    job_id: str
    job_type: str
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: Mapping[str, Any] | None
    error: str | None


# --------------------------------------------------------------------------- worker side

Outcome = tuple[bool, Any, str | None]
"""What a worker sends back: (completed?, result payload or error, traceback of a bug)."""

_stop_flag: Any = None
"""In a worker process only: its slot's shared stop flag, set by ``_init_worker``.

A module global because a pool worker receives shared memory only through its
initializer; the daemon's process never sets it."""


def _discard_outcome(future: asyncio.Future[Outcome]) -> None:
    if not future.cancelled():
        future.exception()


def _init_worker(flag: Any) -> None:
    global _stop_flag
    _stop_flag = flag
    # The guardian logs every refused order, the broker every rejection: in a
    # backtest that is noise on the daemon's log, not news. Only errors pass.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def _should_stop() -> bool:
    return _stop_flag is not None and bool(_stop_flag.value)


def execute_backtest(spec: BacktestSpec) -> Outcome:
    """Run ``spec`` in this (worker) process; never raises."""
    # Imported here so that the daemon's import of this module stays light.
    from orchestrator.backtest.engine import run_backtest

    try:
        result = run_backtest(spec, _should_stop)
    except BacktestCancelled:
        return False, CANCELLED_BY_USER, None
    except BacktestError as exc:
        return False, exc.message, None
    except Exception as exc:
        return False, f"internal error: {type(exc).__name__}: {exc}", traceback.format_exc()
    return True, result.to_payload(), None


class _Slot:
    """One worker process (a one-worker pool) and the flag that asks its job to stop."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._context = multiprocessing.get_context("spawn")
        self.stop_flag = self._context.RawValue("b", 0)
        self._executor: ProcessPoolExecutor | None = None

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=_init_worker,
                initargs=(self.stop_flag,),
            )
        return self._executor

    def kill(self) -> None:
        """Kill the worker process (its job is lost); the next job starts a new one."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        kill_workers = getattr(executor, "kill_workers", None)  # Python 3.14+
        if kill_workers is not None:
            kill_workers()
        else:
            for process in list(getattr(executor, "_processes", {}).values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- manager


class _Job:
    __slots__ = (
        "created_at",
        "done",
        "error",
        "finished_at",
        "id",
        "result",
        "spec",
        "started_at",
        "status",
        "stop_reason",
        "stop_requested",
    )

    def __init__(self, job_id: str, spec: BacktestSpec, now: float) -> None:
        self.id = job_id
        self.spec = spec
        self.status = JobStatus.PENDING
        self.created_at = now
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.result: Mapping[str, Any] | None = None
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.stop_requested = asyncio.Event()
        self.done = asyncio.Event()

    def info(self) -> JobInfo:
        return JobInfo(
            job_id=self.id,
            job_type=BACKTEST,
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            result=self.result,
            error=self.error,
        )


Runner = Callable[[BacktestSpec], Outcome]


class JobManager:
    """Queues backtest jobs, runs them in worker processes, publishes their states.

    ``submit``, ``cancel``, ``get``, ``list`` and ``exists`` are called on the
    event loop; :meth:`run` is the supervised task that runs the jobs (the
    daemon puts it in its task group). Jobs submitted before ``run`` starts
    wait in the queue.
    """

    def __init__(
        self,
        config: JobsConfig,
        bus: EventBus,
        clock: Clock,
        runner: Runner = execute_backtest,
    ) -> None:
        self.config = config
        self._bus = bus
        self._clock = clock
        self._runner = runner
        self._jobs: dict[str, _Job] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued = 0
        self._finished: deque[str] = deque()
        self._slots = [_Slot(index) for index in range(config.max_concurrent_jobs)]

    # ------------------------------------------------------------ commands

    def submit(self, spec: BacktestSpec) -> str:
        """Queue ``spec``; returns the job id. Raises JobQueueFull or InvalidJob."""
        if self._queued >= self.config.max_queued_jobs:
            raise JobQueueFull(
                f"{self._queued} backtest jobs are already waiting (max_queued_jobs "
                f"{self.config.max_queued_jobs}): wait for one to finish or cancel one"
            )
        job = _Job(str(uuid.uuid4()), self._admit(spec), self._clock.now())
        self._jobs[job.id] = job
        self._queued += 1
        self._queue.put_nowait(job.id)
        log.info(
            "job_created",
            job_id=job.id,
            strategy_id=spec.strategy.id,
            source=spec.source.kind,
            queued=self._queued,
        )
        self._publish(job)
        return job.id

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a pending or running job: it fails with "cancelled by user".

        A pending job fails at once; a running one is asked to stop and fails
        when it has (at the latest ``cancel_grace_seconds`` later). Raises
        UnknownJob, or InvalidTransition for a job that has already finished.
        """
        job = self._job(job_id)
        if job.status is JobStatus.PENDING:
            self._queued -= 1
            self._finish(job, JobStatus.FAILED, error=CANCELLED_BY_USER)
        elif job.status is JobStatus.RUNNING:
            if job.stop_reason is None:
                job.stop_reason = CANCELLED_BY_USER
                log.info("job_cancel_requested", job_id=job.id)
            job.stop_requested.set()
        else:
            raise InvalidTransition(f"job {job_id} has already {job.status}: nothing to cancel")
        return job.info()

    def get(self, job_id: str) -> JobInfo:
        """Raises UnknownJob for an id never submitted or already forgotten."""
        return self._job(job_id).info()

    def exists(self, job_id: str) -> bool:
        return job_id in self._jobs

    def list(self) -> list[JobInfo]:
        """Every job remembered, oldest first."""
        return [job.info() for job in self._jobs.values()]

    async def wait(self, job_id: str) -> JobInfo:
        """The job once it has completed or failed."""
        job = self._job(job_id)
        await job.done.wait()
        return job.info()

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id}: it was never submitted or has been forgotten")
        return job

    def _admit(self, spec: BacktestSpec) -> BacktestSpec:
        """The spec with its file resolved inside data_dir; InvalidJob otherwise."""
        source = spec.source
        if not isinstance(source, FileSource):
            return spec
        if self.config.data_dir is None:
            raise InvalidJob(
                "backtests over files are off: set data_dir in the [jobs] section of the "
                "config to the directory of your OHLCV files, or use the synthetic source"
            )
        root = self.config.data_dir.resolve()
        path = (root / source.path).resolve()
        if not path.is_relative_to(root):
            raise InvalidJob(f"{source.path} is outside the data directory {root}")
        return spec.model_copy(update={"source": source.model_copy(update={"path": path})})

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Run queued jobs, ``max_concurrent_jobs`` at a time, until cancelled.

        On the way out every job still running or waiting fails (its worker is
        killed) and the worker processes stop.
        """
        try:
            async with asyncio.TaskGroup() as group:
                for slot in self._slots:
                    group.create_task(self._work(slot), name=f"backtest-worker-{slot.index}")
        finally:
            for job in list(self._jobs.values()):
                if job.status is JobStatus.PENDING:
                    self._queued -= 1
                    self._finish(job, JobStatus.FAILED, error="the daemon stopped before it ran")
            for slot in self._slots:
                slot.close()

    async def _work(self, slot: _Slot) -> None:
        while True:
            job = self._jobs.get(await self._queue.get())
            if job is not None and job.status is JobStatus.PENDING:
                await self._run(job, slot)

    async def _run(self, job: _Job, slot: _Slot) -> None:
        self._queued -= 1
        job.status = JobStatus.RUNNING
        job.started_at = self._clock.now()
        log.info("job_started", job_id=job.id, worker=slot.index)
        self._publish(job)
        slot.stop_flag.value = 0
        try:
            outcome = await self._outcome(job, slot)
        except asyncio.CancelledError:
            slot.kill()
            self._finish(job, JobStatus.FAILED, error="the daemon stopped while it ran")
            raise
        except Exception as exc:  # the worker died (BrokenProcessPool) or could not start
            slot.kill()
            outcome = (False, f"the backtest worker process failed: {exc!r}", None)
        completed, payload, trace = outcome
        if job.stop_reason is not None:
            self._finish(job, JobStatus.FAILED, error=job.stop_reason)
        elif completed:
            self._finish(job, JobStatus.COMPLETED, result=payload)
        else:
            if trace is not None:
                log.error("job_internal_error", job_id=job.id, traceback=trace)
            self._finish(job, JobStatus.FAILED, error=str(payload))

    async def _outcome(self, job: _Job, slot: _Slot) -> Outcome:
        """The worker's outcome, or the stop reason once the job was stopped."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(slot.executor(), self._runner, job.spec)
        try:
            return await self._await_or_stop(job, slot, future)
        except asyncio.CancelledError:
            # The daemon is stopping: the caller kills the worker, whose future
            # then fails (BrokenProcessPool) with nobody left to wait for it.
            future.add_done_callback(_discard_outcome)
            raise

    async def _await_or_stop(
        self, job: _Job, slot: _Slot, future: asyncio.Future[Outcome]
    ) -> Outcome:
        stop = asyncio.ensure_future(job.stop_requested.wait())
        try:
            await asyncio.wait(
                (future, stop),
                timeout=self.config.max_job_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stop.cancel()
        if future.done():
            return future.result()
        if job.stop_reason is None:
            job.stop_reason = (
                f"stopped after max_job_seconds ({self.config.max_job_seconds:g} s): use "
                "fewer bars or a simpler strategy, or raise the limit in the [jobs] config"
            )
        slot.stop_flag.value = 1
        await asyncio.wait((future,), timeout=self.config.cancel_grace_seconds)
        if future.done():
            with contextlib.suppress(Exception):
                future.result()
        else:
            log.warning("job_worker_killed", job_id=job.id, reason=job.stop_reason)
            future.add_done_callback(_discard_outcome)
            slot.kill()
        return False, job.stop_reason, None

    def _finish(
        self,
        job: _Job,
        status: JobStatus,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        job.status = status
        job.result = result
        job.error = error
        job.finished_at = self._clock.now()
        if status is JobStatus.COMPLETED:
            log.info("job_completed", job_id=job.id, result=result)
        else:
            log.info("job_failed", job_id=job.id, error=error)
        self._publish(job)
        job.done.set()
        self._finished.append(job.id)
        while len(self._finished) > self.config.max_finished_jobs:
            self._jobs.pop(self._finished.popleft(), None)

    def _publish(self, job: _Job) -> None:
        self._bus.publish(
            JobStateChanged(
                job_id=job.id,
                job_type=BACKTEST,
                status=job.status,
                ts=self._clock.now(),
                result=job.result,
                error=job.error,
            )
        )
