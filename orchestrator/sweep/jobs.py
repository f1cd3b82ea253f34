"""Sweep jobs: a queue of sweeps, run one at a time on the Dask cluster, their states and
progress on the bus, their files under the state directory.

A sweep is a job as a backtest is (the dgbit ``job.*`` events, ``job_type``
``"sweep"``)::

    submit ──▶ pending ──▶ running ──▶ completed (result: the table, the best, the heatmap)
                  │            │
                  └── cancel ──┴──▶ failed ("cancelled by user", or why it could not run)

While it runs, a :class:`~orchestrator.model.events.SweepProgress` follows every
finished trial (at most one per ``PROGRESS_INTERVAL_SECONDS``, and the last): trials
done and in all, the best so far, the ETA.

Files, in ``directory`` (``sweeps/`` of the state directory): ``<job>.spec.json``,
written when the sweep is accepted; ``<job>.optuna.log``, its Optuna study (one per
walk-forward window in the same file); ``<job>.result.json`` once it has finished.
At start the manager queues again, under their own job ids, the sweeps that have a
spec and no result: the daemon stopped while they waited or ran, and they resume
where their studies stopped (:mod:`orchestrator.sweep.study`). Finished sweeps
are listed from their result files.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from orchestrator.backtest.jobs import CANCELLED_BY_USER, InvalidJob, JobInfo, JobQueueFull
from orchestrator.backtest.jobs import UnknownJob as UnknownJob
from orchestrator.bus import EventBus
from orchestrator.model.clock import Clock, iso_utc
from orchestrator.model.errors import InvalidTransition, OrchestratorError
from orchestrator.model.events import Event, JobStateChanged, JobStatus, SweepProgress
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.runner import Trials, TrialSource
from orchestrator.sweep.search import SweepSpec, TrialRow, eta_seconds, heatmap
from orchestrator.sweep.space import InvalidSpace, SearchSpace
from orchestrator.sweep.trial import TrialOutcome, WindowRun
from orchestrator.sweep.walk_forward import Window, stitch, windows

if TYPE_CHECKING:
    from orchestrator.sweep.study import Search

log = structlog.get_logger("orchestrator.sweep.jobs")

SWEEP = "sweep"
"""The ``job_type`` of sweep jobs."""
PROGRESS_INTERVAL_SECONDS = 0.25
SERIES_POINTS = 500
"""Most points of the stitched out-of-sample curve in a result."""


class SweepUnavailable(OrchestratorError):
    code = "sweep_failed"


@dataclass
class _Sweep:
    id: str
    spec: SweepSpec
    status: JobStatus
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task[dict[str, Any]] | None = None
    cancelled: bool = False

    def info(self) -> JobInfo:
        return JobInfo.of(self, SWEEP)


class SweepManager:
    """Queues sweeps, runs them one at a time, publishes their states and progress.

    ``submit``, ``cancel``, ``get``, ``list`` and ``exists`` are called on the event
    loop; :meth:`run` is the supervised task (the daemon's task group holds it).
    """

    def __init__(
        self,
        config: SweepsConfig,
        directory: Path,
        bus: EventBus,
        clock: Clock,
        runner: TrialSource,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.directory = directory
        self._bus = bus
        self._clock = clock
        self._runner = runner
        self._monotonic = monotonic
        self._sweeps: dict[str, _Sweep] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._finished: deque[str] = deque()

    # ------------------------------------------------------------ commands

    def submit(self, spec: SweepSpec) -> str:
        """Queue ``spec``; its job id. InvalidJob (the space, the trials) or JobQueueFull."""
        waiting = sum(1 for s in self._sweeps.values() if s.status is JobStatus.PENDING)
        if waiting >= self.config.max_queued_sweeps:
            raise JobQueueFull(
                f"{waiting} sweeps are already waiting (max_queued_sweeps "
                f"{self.config.max_queued_sweeps}): wait for one to finish or cancel one"
            )
        self._check(spec)
        sweep = _Sweep(str(uuid.uuid4()), spec, JobStatus.PENDING, self._clock.now())
        self._write(sweep.id, "spec", spec.model_dump(mode="json"))
        self._sweeps[sweep.id] = sweep
        self._queue.put_nowait(sweep.id)
        log.info(
            "sweep_created",
            job_id=sweep.id,
            strategy_id=spec.backtest.strategy.id,
            method=spec.method,
            trials=self.total_trials(spec, spec.search_space()),
        )
        self._publish(sweep)
        return sweep.id

    def cancel(self, job_id: str) -> JobInfo:
        """A pending sweep fails at once; a running one cancels its trials, then fails."""
        sweep = self._sweep(job_id)
        if sweep.status is JobStatus.PENDING:
            self._finish(sweep, JobStatus.FAILED, error=CANCELLED_BY_USER)
        elif sweep.status is JobStatus.RUNNING:
            sweep.cancelled = True
            if sweep.task is not None:
                sweep.task.cancel()
            log.info("sweep_cancel_requested", job_id=job_id)
        else:
            raise InvalidTransition(f"sweep {job_id} has already {sweep.status}: nothing to cancel")
        return sweep.info()

    def get(self, job_id: str) -> JobInfo:
        return self._sweep(job_id).info()

    def spec(self, job_id: str) -> SweepSpec:
        return self._sweep(job_id).spec

    def exists(self, job_id: str) -> bool:
        return job_id in self._sweeps

    def list(self) -> list[JobInfo]:
        return [sweep.info() for sweep in self._sweeps.values()]

    async def wait(self, job_id: str) -> JobInfo:
        """The sweep once it has completed or failed (tests)."""
        while self._sweep(job_id).status in (JobStatus.PENDING, JobStatus.RUNNING):
            await self._changed(job_id)
        return self._sweep(job_id).info()

    def total_trials(self, spec: SweepSpec, space: SearchSpace) -> int:
        per_search = spec.trials_per_search(space)
        if spec.walk_forward is None:
            return per_search
        return spec.walk_forward.windows * (per_search + 1)

    def _check(self, spec: SweepSpec) -> None:
        try:
            total = self.total_trials(spec, spec.search_space())
        except InvalidSpace as exc:
            raise InvalidJob(f"invalid sweep: {exc.message}") from exc
        if total > self.config.max_trials:
            raise InvalidJob(
                f"the sweep has {total:,} trials; at most {self.config.max_trials:,} "
                "(max_trials in [sweeps]): narrow the ranges, raise the steps or run fewer trials"
            )

    def _sweep(self, job_id: str) -> _Sweep:
        sweep = self._sweeps.get(job_id)
        if sweep is None:
            raise UnknownJob(f"no sweep {job_id}: it was never submitted or has been forgotten")
        return sweep

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Resume the sweeps a restart interrupted, then run queued ones until cancelled;
        on the way out the running sweep's trials are cancelled (its study keeps what
        finished) and the cluster is closed."""
        self._load()
        try:
            while True:
                sweep = self._sweeps.get(await self._queue.get())
                if sweep is not None and sweep.status is JobStatus.PENDING:
                    await self._run(sweep)
        finally:
            await self._runner.close()

    async def _run(self, sweep: _Sweep) -> None:
        sweep.status = JobStatus.RUNNING
        sweep.started_at = self._clock.now()
        log.info("sweep_started", job_id=sweep.id)
        self._publish(sweep)
        sweep.task = asyncio.create_task(self._execute(sweep), name=f"sweep-{sweep.id}")
        try:
            result = await sweep.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the daemon stops: no result file, so the sweep resumes at next start
            self._finish(sweep, JobStatus.FAILED, error=CANCELLED_BY_USER)
            return
        except OrchestratorError as exc:
            self._finish(sweep, JobStatus.FAILED, error=exc.message)
            return
        except Exception as exc:  # a worker's exception a trial did not catch
            log.error("sweep_internal_error", job_id=sweep.id, error=repr(exc), exc_info=exc)
            error = f"internal error: {type(exc).__name__}: {exc}"
            self._finish(sweep, JobStatus.FAILED, error=error)
            return
        self._finish(sweep, JobStatus.COMPLETED, result=result)

    async def _execute(self, sweep: _Sweep) -> dict[str, Any]:
        spec = sweep.spec
        space = spec.search_space()
        progress = _Progress(self, sweep.id, self.total_trials(spec, space), spec)
        trials = await self._runner.trials(sweep.id, spec.backtest)
        try:
            if spec.walk_forward is None:
                return await self._sweep_once(sweep, space, trials, progress)
            return await self._walk_forward(sweep, space, trials, progress)
        finally:
            await trials.close()

    async def _sweep_once(
        self, sweep: _Sweep, space: SearchSpace, trials: Trials, progress: _Progress
    ) -> dict[str, Any]:
        search = self._search(sweep, space, sweep.id, progress)
        rows = await search.run(trials.trial, trials.capacity)
        return sweep_result(sweep.spec, rows, search.best, search.computed)

    async def _walk_forward(
        self, sweep: _Sweep, space: SearchSpace, trials: Trials, progress: _Progress
    ) -> dict[str, Any]:
        spec = sweep.spec
        assert spec.walk_forward is not None
        cut = windows(spec.walk_forward, await trials.bar_count())
        reports, runs, computed = [], [], 0
        for window in cut:
            search = self._search(sweep, space, f"{sweep.id}-window-{window.index}", progress)
            rows = await search.run(_in_sample(trials, window), trials.capacity)
            computed += search.computed
            best = search.best
            run = None
            if best is not None:
                ran = await trials.window(best.params, window.test_start, window.test_end)
                run = ran if isinstance(ran, WindowRun) else None
                if isinstance(ran, TrialOutcome):
                    raise SweepUnavailable(
                        f"the out-of-sample run of window {window.index} failed: {ran.error}"
                    )
                runs.append(ran)
            progress.out_of_sample_done()
            reports.append(window_result(window, rows, best, run, spec))
        return walk_forward_result(spec, reports, runs, computed)

    def _search(
        self, sweep: _Sweep, space: SearchSpace, study_name: str, progress: _Progress
    ) -> Search:
        # Imported here, when a sweep runs: Optuna would cost every start of the daemon.
        from orchestrator.sweep.study import Search, study_storage

        storage = study_storage(self._path(sweep.id, "optuna.log"))
        search = Search(sweep.spec, space, storage, study_name, on_row=progress.row)
        progress.begin(search)
        return search

    # ------------------------------------------------------------ states

    def _finish(
        self,
        sweep: _Sweep,
        status: JobStatus,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        sweep.status, sweep.result, sweep.error = status, result, error
        sweep.finished_at = self._clock.now()
        self._write(sweep.id, "result", _saved(sweep))
        if status is JobStatus.COMPLETED:
            assert result is not None
            log.info(
                "sweep_completed",
                job_id=sweep.id,
                trials=result.get("trials_total"),
                computed=result.get("trials_computed"),
                best=(result.get("best") or {}).get("value"),
            )
        else:
            log.info("sweep_failed", job_id=sweep.id, error=error)
        self._publish(sweep)
        self._forget_old(sweep.id)

    def _forget_old(self, job_id: str) -> None:
        self._finished.append(job_id)
        while len(self._finished) > self.config.max_finished_sweeps:
            self._sweeps.pop(self._finished.popleft(), None)

    def _publish(self, sweep: _Sweep) -> None:
        self._bus.publish(
            JobStateChanged(
                job_id=sweep.id,
                job_type=SWEEP,
                status=sweep.status,
                ts=self._clock.now(),
                result=sweep.result,
                error=sweep.error,
            )
        )

    async def _changed(self, job_id: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def watch(event: Event) -> None:
            if isinstance(event, JobStateChanged) and event.job_id == job_id and not future.done():
                future.set_result(None)

        self._bus.subscribe(watch, (JobStateChanged.topic,))
        try:
            await future
        finally:
            self._bus.unsubscribe(watch)

    # ------------------------------------------------------------ files

    def _path(self, job_id: str, suffix: str) -> Path:
        return self.directory / f"{job_id}.{suffix}"

    def _write(self, job_id: str, kind: str, data: Any) -> None:
        """Written whole or not at all (a crash mid-write leaves the old file or none)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(job_id, f"{kind}.json")
        partial = path.with_suffix(".partial")
        partial.write_bytes(json.dumps(data, allow_nan=False).encode())
        os.replace(partial, path)

    def _load(self) -> None:
        """The sweeps of earlier runs: finished ones listed, the others queued again."""
        if not self.directory.is_dir():
            return
        specs = sorted(self.directory.glob("*.spec.json"), key=lambda p: p.stat().st_mtime)
        for path in specs:
            job_id = path.name.removesuffix(".spec.json")
            if job_id in self._sweeps:  # submitted by this run before it started
                continue
            try:
                spec = SweepSpec.model_validate_json(path.read_bytes())
                saved = self._read_result(job_id)
            except (OSError, ValueError, ValidationError) as exc:
                log.warning("sweep_unreadable", job_id=job_id, error=str(exc))
                continue
            created = path.stat().st_mtime
            if saved is None:
                self._sweeps[job_id] = _Sweep(job_id, spec, JobStatus.PENDING, created)
                self._queue.put_nowait(job_id)
                log.info("sweep_resumed", job_id=job_id)
                self._publish(self._sweeps[job_id])
            else:
                self._sweeps[job_id] = _restored(job_id, spec, saved, created)
                self._forget_old(job_id)

    def _read_result(self, job_id: str) -> dict[str, Any] | None:
        path = self._path(job_id, "result.json")
        if not path.exists():
            return None
        saved: dict[str, Any] = json.loads(path.read_bytes())
        return saved


def _in_sample(trials: Trials, window: Window) -> Callable[[Mapping[str, Any]], Any]:
    def run(params: Mapping[str, Any]) -> Any:
        return trials.trial(params, window.train_start, window.train_end)

    return run


def _saved(sweep: _Sweep) -> dict[str, Any]:
    return {
        "status": str(sweep.status),
        "result": sweep.result,
        "error": sweep.error,
        "started_at": sweep.started_at,
        "finished_at": sweep.finished_at,
    }


def _restored(job_id: str, spec: SweepSpec, saved: Mapping[str, Any], created: float) -> _Sweep:
    return _Sweep(
        job_id,
        spec,
        JobStatus(saved["status"]),
        created,
        started_at=saved.get("started_at"),
        finished_at=saved.get("finished_at"),
        result=saved.get("result"),
        error=saved.get("error"),
    )


class _Progress:
    """Counts a sweep's finished trials across its searches and tells the bus."""

    def __init__(self, manager: SweepManager, job_id: str, total: int, spec: SweepSpec) -> None:
        self._manager = manager
        self._job_id = job_id
        self._total = total
        self._spec = spec
        self._earlier = 0
        """Trials of the searches before the current one (windows) and OOS runs."""
        self._search: Search | None = None
        self._started = manager._monotonic()
        self._computed_before = 0
        self._sent_at = -1e18

    def begin(self, search: Search) -> None:
        if self._search is not None:
            self._earlier += len(self._search.rows)
            self._computed_before += self._search.computed
        self._search = search

    def row(self, row: TrialRow) -> None:
        self._tell()

    def out_of_sample_done(self) -> None:
        self._earlier += 1
        self._tell(force=True)

    def _tell(self, force: bool = False) -> None:
        search = self._search
        assert search is not None
        done = self._earlier + len(search.rows)
        now = self._manager._monotonic()
        if not force and done < self._total and now - self._sent_at < PROGRESS_INTERVAL_SECONDS:
            return
        self._sent_at = now
        computed = self._computed_before + search.computed
        best = search.best
        self._manager._bus.publish(
            SweepProgress(
                job_id=self._job_id,
                done=done,
                total=self._total,
                ts=self._manager._clock.now(),
                best_value=best.value if best is not None else None,
                best_params=best.params if best is not None else None,
                eta_seconds=eta_seconds(self._started, now, computed, self._total - done),
            )
        )


# --------------------------------------------------------------------------- results


def summary(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A sweep's result without its trials tables (what a listing shows)."""
    if result is None:
        return None
    kept = {key: value for key, value in result.items() if key != "trials"}
    if isinstance(result.get("windows"), list):
        kept["windows"] = [
            {key: value for key, value in window.items() if key != "trials"}
            for window in result["windows"]
        ]
    return kept


def sweep_result(
    spec: SweepSpec, rows: Sequence[TrialRow], best: TrialRow | None, computed: int
) -> dict[str, Any]:
    """A sweep's result: counts, the best trial (with every statistic and the params to
    start it with), the heatmap and the full table."""
    return {
        "strategy_id": spec.backtest.strategy.id,
        "symbol": spec.backtest.traded_symbol,
        "method": spec.method,
        "objective": spec.objective.model_dump(mode="json"),
        **_counts(rows),
        "trials_computed": computed,
        "best": _best(spec, best),
        "heatmap": heatmap(rows, spec.heatmap_axes, spec.objective),
        "trials": [row.to_wire() for row in rows],
    }


def _counts(rows: Sequence[TrialRow]) -> dict[str, int]:
    return {
        "trials_total": len(rows),
        "trials_complete": sum(1 for row in rows if row.state == "complete"),
        "trials_failed": sum(1 for row in rows if row.state == "failed"),
        "trials_feasible": sum(1 for row in rows if row.feasible),
    }


def _best(spec: SweepSpec, best: TrialRow | None) -> dict[str, Any] | None:
    if best is None:
        return None
    return {
        **best.to_wire(),
        "statistics": best.outcome.statistics,
        "strategy_params": {**spec.backtest.strategy.params, **best.params},
    }


def window_result(
    window: Window,
    rows: Sequence[TrialRow],
    best: TrialRow | None,
    run: WindowRun | None,
    spec: SweepSpec,
) -> dict[str, Any]:
    return {
        "index": window.index,
        "train_bars": [window.train_start, window.train_end],
        "test_bars": [window.test_start, window.test_end],
        **_counts(rows),
        "best": _best(spec, best),
        "out_of_sample": run.outcome.statistics if run is not None else None,
        "out_of_sample_trades_digest": run.outcome.trades_digest if run is not None else None,
        "test_start": iso_utc(float(run.times[0])) if run is not None else None,
        "test_end": iso_utc(float(run.times[-1])) if run is not None else None,
        "trials": [row.to_wire() for row in rows],
    }


def walk_forward_result(
    spec: SweepSpec, reports: Sequence[dict[str, Any]], runs: Sequence[WindowRun], computed: int
) -> dict[str, Any]:
    """The windows and, when every window found a feasible trial, the stitched curve."""
    assert spec.walk_forward is not None
    stitched = stitch(runs) if runs else None
    series = None
    if stitched is not None:
        step = max(len(stitched.times) // SERIES_POINTS, 1)
        series = {
            "time": [iso_utc(t) for t in stitched.times[::step].tolist()],
            "equity": stitched.equity[::step].tolist(),
        }
    return {
        "strategy_id": spec.backtest.strategy.id,
        "symbol": spec.backtest.traded_symbol,
        "method": spec.method,
        "objective": spec.objective.model_dump(mode="json"),
        "walk_forward": spec.walk_forward.model_dump(mode="json"),
        "trials_total": sum(report["trials_total"] for report in reports),
        "trials_computed": computed,
        "windows": list(reports),
        "windows_run": len(runs),
        "out_of_sample": {
            "statistics": stitched.statistics.to_wire(snake_case=True),
            "series": series,
        }
        if stitched is not None
        else None,
    }
