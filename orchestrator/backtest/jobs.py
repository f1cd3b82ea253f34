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
:class:`JobQueueFull`), ``max_finished_jobs`` remembered, of which the newest
``max_kept_reports`` with their full report (:mod:`orchestrator.backtest.report`:
every bar's equity, every trade; ``report``); older results keep the engine's
counts only (``counts_only``).

Progress: the engine tells the worker its bars done every ``CHUNK_BARS`` bars; the
worker sends at most one progress every ``PROGRESS_INTERVAL_SECONDS`` (and the last,
all bars done) through its slot's pipe, which the manager reads when it has data
(``loop.add_reader``: no polling) and publishes as :class:`JobProgress`, for a
running job only and never going back.

OHLCV files come only from ``jobs.data_dir``: a client names a path relative to
it, and a path that resolves outside (``..``, a symlink) is refused, so a job
cannot make the daemon read an arbitrary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from orchestrator.backtest.config import JobsConfig
from orchestrator.backtest.engine import (
    BacktestCancelled,
    BacktestError,
    BacktestSpec,
    FileSource,
    FilesSource,
)
from orchestrator.backtest.report import BacktestReport, counts_only
from orchestrator.bus import EventBus
from orchestrator.model.clock import Clock
from orchestrator.model.errors import InvalidTransition, OrchestratorError
from orchestrator.model.events import JobProgress, JobStateChanged, JobStatus

log = structlog.get_logger("orchestrator.backtest.jobs")

BACKTEST = "backtest"
"""The ``job_type`` of backtest jobs (the only kind so far)."""
CANCELLED_BY_USER = "cancelled by user"
"""The error of a job cancelled by ``cancel`` (dgbit has no cancelled status)."""
PROGRESS_INTERVAL_SECONDS = 0.25
"""A worker sends at most one progress per this many seconds, and the last one."""


class JobQueueFull(OrchestratorError):
    code = "job_queue_full"


class UnknownJob(OrchestratorError):
    code = "unknown_job"


class InvalidJob(OrchestratorError):
    """A job the manager refuses to queue (for instance a file outside data_dir)."""

    code = "invalid_job"


class NoReport(OrchestratorError):
    """A known job without a report: not finished, failed, or its report dropped."""

    code = "no_report"


@dataclass(frozen=True, slots=True)
class FinishedBacktest:
    """A completed job's outcome: its result (the wire's) and its full report."""

    result: Mapping[str, Any]
    report: BacktestReport


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

    @classmethod
    def of(cls, job: JobState, job_type: str) -> JobInfo:
        return cls(
            job_id=job.id,
            job_type=job_type,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            result=job.result,
            error=job.error,
        )


class JobState(Protocol):
    """What a job manager keeps of a job (a backtest's or a sweep's) that its info shows."""

    id: str
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
_progress_pipe: Any = None
"""In a worker process only: the sending end of its slot's progress pipe (as above)."""


def _discard_outcome(future: asyncio.Future[Outcome]) -> None:
    if not future.cancelled():
        future.exception()


def _init_worker(flag: Any, progress_pipe: Any = None) -> None:
    global _stop_flag, _progress_pipe
    _stop_flag, _progress_pipe = flag, progress_pipe
    _end_with_the_daemon()
    # The guardian logs every refused order, the broker every rejection: in a
    # backtest that is noise on the daemon's log, not news. Only errors pass.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def _end_with_the_daemon() -> None:
    """Ends this worker process when the daemon's process dies.

    A pool worker never sees its parent die (each end of its call queue is open in the
    worker itself), so a daemon killed with SIGKILL would leave it behind for good, a
    job still computing or idle, holding the daemon's stderr. A thread waits on the
    parent's sentinel and exits the process."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="watch-daemon", daemon=True).start()


def _should_stop() -> bool:
    return _stop_flag is not None and bool(_stop_flag.value)


class ProgressSender:
    """Sends (job id, done, total) down the pipe, at most every PROGRESS_INTERVAL_SECONDS."""

    def __init__(
        self, pipe: Any, job_id: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._pipe = pipe
        self._job_id = job_id
        self._monotonic = monotonic
        self._sent_at = -math.inf

    def __call__(self, done: int, total: int) -> None:
        now = self._monotonic()
        if done < total and now - self._sent_at < PROGRESS_INTERVAL_SECONDS:
            return
        self._sent_at = now
        self._pipe.send((self._job_id, done, total))


def execute_backtest(spec: BacktestSpec, job_id: str = "") -> Outcome:
    """Run ``spec`` in this (worker) process; never raises."""
    # Imported here so that the daemon's import of this module stays light.
    from orchestrator.backtest.multi_symbol import run_spec
    from orchestrator.backtest.report import build_report

    progress = ProgressSender(_progress_pipe, job_id) if _progress_pipe is not None else None
    try:
        report = build_report(run_spec(spec, _should_stop, progress))
    except BacktestCancelled:
        return False, CANCELLED_BY_USER, None
    except BacktestError as exc:
        return False, exc.message, None
    except Exception as exc:
        return False, f"internal error: {type(exc).__name__}: {exc}", traceback.format_exc()
    return True, FinishedBacktest(report.to_wire(), report), None


ProgressHandler = Callable[[str, int, int], None]
"""Told (job id, bars done, bars in all) by a worker."""


LOGGED_RESULT_FIELDS = ("total_trades", "win_rate", "total_return", "bars")
"""A completed job's log line: these of its result (not its curves and trades)."""


def _headline(result: Mapping[str, Any] | None) -> dict[str, Any]:
    given = result or {}
    return {name: given[name] for name in LOGGED_RESULT_FIELDS if name in given}


class _Slot:
    """One worker process (a one-worker pool), the flag that asks its job to stop, and
    the pipe its progress comes back through (one per worker process, so a killed
    worker's pipe goes with it)."""

    def __init__(self, index: int, on_progress: ProgressHandler) -> None:
        self.index = index
        self._context = multiprocessing.get_context("spawn")
        self.stop_flag = self._context.RawValue("b", 0)
        self._executor: ProcessPoolExecutor | None = None
        self._on_progress = on_progress
        self._pipe: tuple[Any, Any] | None = None

    def executor(self) -> ProcessPoolExecutor:
        """The worker pool; on the event loop (it watches the progress pipe there)."""
        if self._executor is None:
            receiver, sender = self._pipe = self._context.Pipe(duplex=False)
            asyncio.get_running_loop().add_reader(receiver.fileno(), self.drain)
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=_init_worker,
                initargs=(self.stop_flag, sender),
            )
        return self._executor

    def drain(self) -> None:
        """Hand on every progress waiting in the pipe (each send is one small write,
        atomic: a killed worker leaves no half message)."""
        if self._pipe is None:
            return
        receiver = self._pipe[0]
        with contextlib.suppress(EOFError, OSError):
            while receiver.poll():
                job_id, done, total = receiver.recv()
                self._on_progress(job_id, done, total)

    def _close_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(RuntimeError):  # no loop any more: nothing to remove
                asyncio.get_running_loop().remove_reader(pipe[0].fileno())
            for end in pipe:
                end.close()

    def kill(self) -> None:
        """Kill the worker process (its job is lost); the next job starts a new one."""
        executor, self._executor = self._executor, None
        self._close_pipe()
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
        self._close_pipe()
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
        "progress",
        "report",
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
        self.report: BacktestReport | None = None
        """Kept for the newest ``max_kept_reports`` completed jobs."""
        self.progress = 0
        """Bars done at the last progress published."""
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.stop_requested = asyncio.Event()
        self.done = asyncio.Event()

    def info(self) -> JobInfo:
        return JobInfo.of(self, BACKTEST)


Runner = Callable[[BacktestSpec, str], Outcome]
"""Runs a job's spec in a worker: (spec, job id) to its outcome."""


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
        self._reports: deque[str] = deque()
        """Jobs holding their report, oldest first."""
        self._slots = [
            _Slot(index, self._on_progress) for index in range(config.max_concurrent_jobs)
        ]

    # ------------------------------------------------------------ commands

    def submit(self, spec: BacktestSpec) -> str:
        """Queue ``spec``; returns the job id. Raises JobQueueFull or InvalidJob."""
        if self._queued >= self.config.max_queued_jobs:
            raise JobQueueFull(
                f"{self._queued} backtest jobs are already waiting (max_queued_jobs "
                f"{self.config.max_queued_jobs}): wait for one to finish or cancel one"
            )
        job = _Job(str(uuid.uuid4()), self.admitted(spec), self._clock.now())
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

    def spec(self, job_id: str) -> BacktestSpec:
        """What the job runs; UnknownJob if there is no such job."""
        return self._job(job_id).spec

    def report(self, job_id: str) -> BacktestReport:
        """The full report of a completed job; UnknownJob, or NoReport saying why not."""
        job = self._job(job_id)
        if job.report is not None:
            return job.report
        if job.status in (JobStatus.PENDING, JobStatus.RUNNING):
            raise NoReport(f"job {job_id} is {job.status}: its report comes when it completes")
        if job.status is JobStatus.FAILED:
            raise NoReport(f"job {job_id} failed ({job.error}): it has no report")
        raise NoReport(
            f"the report of job {job_id} is no longer kept (max_kept_reports "
            f"{self.config.max_kept_reports}, newest first); its result keeps the counts"
        )

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

    def admitted(self, spec: BacktestSpec) -> BacktestSpec:
        """The spec with its files resolved inside data_dir; InvalidJob otherwise (a
        sweep's trials read files under the same rule)."""
        source = spec.source
        resolved: FileSource | FilesSource
        if isinstance(source, FileSource):
            resolved = source.model_copy(update={"path": self._inside_data_dir(source.path)})
        elif isinstance(source, FilesSource):
            paths = {symbol: self._inside_data_dir(p) for symbol, p in source.paths.items()}
            resolved = source.model_copy(update={"paths": paths})
        else:
            return spec
        return spec.model_copy(update={"source": resolved})

    def _inside_data_dir(self, given: Path) -> Path:
        if self.config.data_dir is None:
            raise InvalidJob(
                "backtests over files are off: set data_dir in the [jobs] section of the "
                "config to the directory of your OHLCV files, or use the synthetic source"
            )
        root = self.config.data_dir.resolve()
        path = (root / given).resolve()
        if not path.is_relative_to(root):
            raise InvalidJob(f"{given} is outside the data directory {root}")
        return path

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
        slot.drain()  # the last progress was sent before the outcome: it goes first
        if job.stop_reason is not None:
            self._finish(job, JobStatus.FAILED, error=job.stop_reason)
        elif completed:
            self._keep_report(job, payload.report)
            self._finish(job, JobStatus.COMPLETED, result=payload.result)
        else:
            if trace is not None:
                log.error("job_internal_error", job_id=job.id, traceback=trace)
            self._finish(job, JobStatus.FAILED, error=str(payload))

    async def _outcome(self, job: _Job, slot: _Slot) -> Outcome:
        """The worker's outcome, or the stop reason once the job was stopped."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(slot.executor(), self._runner, job.spec, job.id)
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
            log.info("job_completed", job_id=job.id, **_headline(result))
        else:
            log.info("job_failed", job_id=job.id, error=error)
        self._publish(job)
        job.done.set()
        self._finished.append(job.id)
        while len(self._finished) > self.config.max_finished_jobs:
            self._jobs.pop(self._finished.popleft(), None)

    def _keep_report(self, job: _Job, report: BacktestReport) -> None:
        """Keep ``report`` (before job.completed, so a client told can ask for it) and
        drop the oldest beyond max_kept_reports, their results down to the counts."""
        if self.config.max_kept_reports == 0:
            return
        job.report = report
        self._reports.append(job.id)
        while len(self._reports) > self.config.max_kept_reports:
            dropped = self._jobs.get(self._reports.popleft())
            if dropped is not None:
                dropped.report = None
                dropped.result = counts_only(dropped.result)

    def _on_progress(self, job_id: str, done: int, total: int) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING or done < job.progress:
            return  # a late message of a job that ended, or one overtaken
        job.progress = done
        self._bus.publish(JobProgress(job.id, BACKTEST, done, total, self._clock.now()))

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
