"""Backtest jobs through real worker processes: the event sequence, failures,
cancellation (queued, running, stuck), the bounded queue, and a live event loop
that keeps running while a backtest computes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from orchestrator.backtest.config import JobsConfig
from orchestrator.backtest.engine import BacktestSpec, CsvSource, SyntheticSource
from orchestrator.backtest.jobs import (
    CANCELLED_BY_USER,
    PROGRESS_INTERVAL_SECONDS,
    InvalidJob,
    JobManager,
    JobQueueFull,
    NoReport,
    ProgressSender,
    UnknownJob,
)
from orchestrator.backtest.report import REPORT_KEYS
from orchestrator.bus import EventBus
from orchestrator.model.clock import SystemClock
from orchestrator.model.errors import InvalidTransition
from orchestrator.model.events import Event, JobStateChanged, JobStatus, Topic
from orchestrator.model.market import Bar
from orchestrator.strategy.api import Strategy, StrategyParams
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig

DAY = 86_400.0
DEADLINE = 60.0
"""Seconds a test waits for a job; the first job of a manager spawns its worker."""


class SleepParams(StrategyParams):
    seconds: float = Field(0.0, ge=0, description="Sleep this long in every on_bar.")


class Sleeper(Strategy[SleepParams]):
    """Burns wall time per bar: long jobs without long data."""

    params_model = SleepParams

    def on_bar(self, bar: Bar) -> None:
        time.sleep(self.params.seconds)


def entry(kind: str = "sma_crossover", params: dict[str, Any] | None = None) -> CatalogEntry:
    return CatalogEntry(
        id="bt",
        name="Backtest",
        kind=kind,
        params={"fast": 3, "slow": 8} if params is None else params,
        defaults=StrategyRunConfig(symbols=("TEST",), data_resolution="1m"),
    )


def synthetic(days: float = 0.5, **params: Any) -> BacktestSpec:
    kind = "sma_crossover" if not params else f"{__name__}:Sleeper"
    return BacktestSpec(
        strategy=entry(kind, params or None),
        source=SyntheticSource(duration_seconds=days * DAY, ticks_per_second=0.1),
    )


def slow(seconds_per_bar: float, days: float = 1.0) -> BacktestSpec:
    return synthetic(days, seconds=seconds_per_bar)


class Jobs:
    """A JobManager with its run() task, and every job event it published."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.events: list[JobStateChanged] = []
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def record(self, event: Event) -> None:
        assert isinstance(event, JobStateChanged)
        self.events.append(event)
        self._changed.set()

    def of(self, job_id: str) -> list[tuple[str, JobStatus]]:
        return [(e.event_type, e.status) for e in self.events if e.job_id == job_id]

    async def finished(self, job_id: str) -> JobStateChanged:
        async with asyncio.timeout(DEADLINE):
            await self.manager.wait(job_id)
        return [e for e in self.events if e.job_id == job_id][-1]

    async def running(self, job_id: str) -> None:
        async with asyncio.timeout(DEADLINE):
            while self.manager.get(job_id).status is JobStatus.PENDING:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def jobs(start: bool = True, **config: Any) -> AsyncIterator[Jobs]:
    bus = EventBus()
    harness = Jobs(JobManager(JobsConfig(**config), bus, SystemClock()))
    bus.subscribe(harness.record, [Topic.JOB])
    if start:
        harness.task = asyncio.create_task(harness.manager.run(), name="jobs")
    try:
        yield harness
    finally:
        if harness.task is not None:
            harness.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await harness.task


# ---------------------------------------------------------------- the happy path


async def test_created_started_completed_with_the_result() -> None:
    async with jobs() as harness:
        job_id = harness.manager.submit(synthetic())
        assert harness.of(job_id) == [("job.created", JobStatus.PENDING)]
        last = await harness.finished(job_id)
    assert harness.of(job_id) == [
        ("job.created", JobStatus.PENDING),
        ("job.started", JobStatus.RUNNING),
        ("job.completed", JobStatus.COMPLETED),
    ]
    assert last.error is None and last.result is not None
    assert {"total_trades", "win_rate", "total_return"} <= set(last.result)
    assert last.result["bars"] == 720
    info = harness.manager.get(job_id)
    assert (info.status, info.job_type) == (JobStatus.COMPLETED, "backtest")
    assert info.result == last.result
    assert [job.job_id for job in harness.manager.list()] == [job_id]
    assert info.created_at <= (info.started_at or 0) <= (info.finished_at or 0)


async def test_job_ids_are_uuid4_strings() -> None:
    async with jobs(start=False) as harness:
        job_id = harness.manager.submit(synthetic())
    assert len(job_id) == 36 and job_id[14] == "4"
    assert harness.manager.exists(job_id)


# ---------------------------------------------------------------- failures


def write_csv(path: Path, rows: int) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + (i % 5)
        lines.append(f"{1_704_067_200 + 60 * i},{price},{price + 1},{price - 1},{price},5")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_failures_carry_a_reason_a_person_can_act_on(tmp_path: Path) -> None:
    write_csv(tmp_path / "good.csv", 100)
    bad = write_csv(tmp_path / "bad.csv", 100)
    lines = bad.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].split(",")[0] + ",x,103,101,102,5"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_text("timestamp,open,high,low,close,volume\n", "utf-8")
    write_csv(tmp_path / "short.csv", 5)
    specs = {
        "bad file": BacktestSpec(
            strategy=entry(), source=CsvSource(path=Path("bad.csv")), symbol="TEST"
        ),
        "no rows": BacktestSpec(
            strategy=entry(), source=CsvSource(path=Path("empty.csv")), symbol="TEST"
        ),
        "too few bars": BacktestSpec(
            strategy=entry(), source=CsvSource(path=Path("short.csv")), symbol="TEST"
        ),
        "bad params": BacktestSpec(
            strategy=entry("sma_crossover", {"fast": 3, "slow": 8, "nope": 1}),
            source=CsvSource(path=Path("good.csv")),
            symbol="TEST",
        ),
        "unknown strategy": BacktestSpec(
            strategy=entry("no.such.module:Strategy"),
            source=CsvSource(path=Path("good.csv")),
            symbol="TEST",
        ),
    }
    async with jobs(data_dir=tmp_path) as harness:
        ids = {name: harness.manager.submit(spec) for name, spec in specs.items()}
        errors = {name: (await harness.finished(job_id)).error for name, job_id in ids.items()}
        for job_id in ids.values():
            assert [kind for kind, _ in harness.of(job_id)] == [
                "job.created",
                "job.started",
                "job.failed",
            ]
    bad_file, no_rows = tmp_path / "bad.csv", tmp_path / "empty.csv"
    assert errors["bad file"] == f"bad data file: {bad_file}:4: open 'x' is not a number"
    assert errors["no rows"] == f"bad data file: {no_rows}: no data rows after the header"
    assert errors["too few bars"] is not None
    assert errors["too few bars"].startswith("5 bars of TEST are not enough")
    assert errors["bad params"] is not None
    assert "invalid params: nope: Extra inputs are not permitted" in errors["bad params"]
    assert errors["unknown strategy"] is not None
    assert "strategy module 'no.such.module' not found" in errors["unknown strategy"]


async def test_an_exception_in_the_strategy_names_the_bar(tmp_path: Path) -> None:
    write_csv(tmp_path / "data.csv", 50)
    spec = BacktestSpec(
        strategy=entry("tests.orchestrator.backtest.test_engine:FailOnBar", {"on_bar": 10}),
        source=CsvSource(path=Path("data.csv")),
        symbol="TEST",
    )
    async with jobs(data_dir=tmp_path) as harness:
        failed = await harness.finished(harness.manager.submit(spec))
    assert failed.status is JobStatus.FAILED
    assert failed.error == (
        "strategy bt raised ZeroDivisionError: division by zero in my strategy, "
        "on the TEST 1m bar of 2024-01-01T00:09:00.000Z"
    )


async def test_files_must_be_inside_data_dir(tmp_path: Path) -> None:
    inside = tmp_path / "data"
    inside.mkdir()
    write_csv(tmp_path / "secret.csv", 50)
    outside = BacktestSpec(
        strategy=entry(), source=CsvSource(path=Path("../secret.csv")), symbol="TEST"
    )
    absolute = BacktestSpec(
        strategy=entry(), source=CsvSource(path=tmp_path / "secret.csv"), symbol="TEST"
    )
    async with jobs(start=False, data_dir=inside) as harness:
        for spec in (outside, absolute):
            with pytest.raises(InvalidJob, match="is outside the data directory"):
                harness.manager.submit(spec)
    async with jobs(start=False) as harness:
        with pytest.raises(InvalidJob, match=r"set data_dir in the \[jobs\] section"):
            harness.manager.submit(absolute)
    assert harness.events == []


# ---------------------------------------------------------------- cancel and limits


async def test_cancel_a_queued_job() -> None:
    async with jobs(start=False) as harness:
        job_id = harness.manager.submit(synthetic())
        info = harness.manager.cancel(job_id)
    assert (info.status, info.error) == (JobStatus.FAILED, CANCELLED_BY_USER)
    assert harness.of(job_id) == [
        ("job.created", JobStatus.PENDING),
        ("job.failed", JobStatus.FAILED),
    ]
    with pytest.raises(InvalidTransition, match="has already failed"):
        harness.manager.cancel(job_id)


async def test_a_cancelled_queued_job_never_runs() -> None:
    async with jobs(max_queued_jobs=2) as harness:
        blocker = harness.manager.submit(slow(0.0005))
        queued = harness.manager.submit(synthetic())
        harness.manager.cancel(queued)
        after = harness.manager.submit(synthetic())
        await harness.finished(after)
        assert (await harness.finished(blocker)).status is JobStatus.COMPLETED
    assert [kind for kind, _ in harness.of(queued)] == ["job.created", "job.failed"]


async def test_cancel_a_running_job_stops_it_between_chunks() -> None:
    # 28 800 bars at 1 ms: half a minute of work, which looks at the stop flag every
    # 1024 bars (about 1 s); a long grace shows the worker stopped by itself.
    async with jobs(cancel_grace_seconds=30.0) as harness:
        job_id = harness.manager.submit(slow(0.001, days=20))
        await harness.running(job_id)
        started = time.monotonic()
        harness.manager.cancel(job_id)
        failed = await harness.finished(job_id)
        stopped_in = time.monotonic() - started
        # The same worker process runs the next job: it was not killed.
        after = harness.manager.submit(synthetic())
        assert (await harness.finished(after)).status is JobStatus.COMPLETED
    assert (failed.status, failed.error) == (JobStatus.FAILED, CANCELLED_BY_USER)
    assert stopped_in < 30.0
    assert harness.of(job_id)[-1] == ("job.failed", JobStatus.FAILED)


async def test_a_stuck_job_is_killed_after_the_grace_and_the_next_job_runs() -> None:
    async with jobs(cancel_grace_seconds=0.5) as harness:
        stuck = harness.manager.submit(slow(3600.0))
        await harness.running(stuck)
        await asyncio.sleep(0.5)  # let it enter on_bar's sleep
        harness.manager.cancel(stuck)
        failed = await harness.finished(stuck)
        after = harness.manager.submit(synthetic())
        completed = await harness.finished(after)
    assert (failed.status, failed.error) == (JobStatus.FAILED, CANCELLED_BY_USER)
    assert completed.status is JobStatus.COMPLETED


async def test_a_job_over_max_job_seconds_fails_saying_so() -> None:
    async with jobs(max_job_seconds=1.0, cancel_grace_seconds=0.5) as harness:
        failed = await harness.finished(harness.manager.submit(slow(3600.0)))
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("stopped after max_job_seconds (1 s)")


async def test_the_queue_is_bounded() -> None:
    async with jobs(start=False, max_queued_jobs=2) as harness:
        first = harness.manager.submit(synthetic())
        harness.manager.submit(synthetic())
        with pytest.raises(JobQueueFull, match=r"2 backtest jobs are already waiting"):
            harness.manager.submit(synthetic())
        harness.manager.cancel(first)
        harness.manager.submit(synthetic())
    assert len(harness.manager.list()) == 3


async def test_finished_jobs_are_forgotten_oldest_first() -> None:
    async with jobs(start=False, max_finished_jobs=2) as harness:
        ids = [harness.manager.submit(synthetic()) for _ in range(3)]
        for job_id in ids:
            harness.manager.cancel(job_id)
    with pytest.raises(UnknownJob, match="never submitted or has been forgotten"):
        harness.manager.get(ids[0])
    assert [job.job_id for job in harness.manager.list()] == ids[1:]


async def test_only_the_newest_reports_are_kept_and_older_results_keep_their_counts() -> None:
    async with jobs(max_kept_reports=1) as harness:
        first, second = harness.manager.submit(synthetic()), harness.manager.submit(synthetic())
        await harness.finished(first)
        kept = harness.manager.report(first)
        await harness.finished(second)
        with pytest.raises(NoReport, match=r"no longer kept \(max_kept_reports 1"):
            harness.manager.report(first)
        assert harness.manager.report(second).points == kept.points
    old, new = (harness.manager.get(job_id).result for job_id in (first, second))
    assert old is not None and new is not None
    assert {"statistics", "series", "trades", "open_trade"} <= set(new)
    same_run = {"duration_seconds"}  # the run's wall time differs from job to job
    kept_keys = set(new) - set(REPORT_KEYS)
    assert set(old) == kept_keys
    assert all(old[key] == new[key] for key in kept_keys - same_run)
    assert old["total_trades"] == new["total_trades"] > 0


async def test_a_job_has_no_report_until_it_completes() -> None:
    async with jobs(start=False) as harness:
        job_id = harness.manager.submit(synthetic())
        with pytest.raises(NoReport, match="is pending: its report comes when it completes"):
            harness.manager.report(job_id)
        harness.manager.cancel(job_id)
        with pytest.raises(NoReport, match=r"failed \(cancelled by user\): it has no report"):
            harness.manager.report(job_id)


async def test_stopping_the_manager_fails_running_and_queued_jobs() -> None:
    async with jobs() as harness:
        running = harness.manager.submit(slow(3600.0))
        queued = harness.manager.submit(synthetic())
        await harness.running(running)
        task, harness.task = harness.task, None
        assert task is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert harness.manager.get(running).error == "the daemon stopped while it ran"
    assert harness.manager.get(queued).error == "the daemon stopped before it ran"
    assert harness.of(queued)[-1] == ("job.failed", JobStatus.FAILED)


# ---------------------------------------------------------------- the live loop


async def test_the_event_loop_keeps_ticking_while_a_backtest_computes() -> None:
    """A CPU-bound backtest of a few seconds; a 10 ms heartbeat on the loop meanwhile."""
    gaps: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with jobs() as harness:
        job_id = harness.manager.submit(synthetic(days=20))  # 28 800 bars, seconds of CPU
        await harness.running(job_id)
        stop = asyncio.Event()
        beat = asyncio.create_task(heartbeat(stop), name="heartbeat")
        started = time.monotonic()
        done = await harness.finished(job_id)
        busy = time.monotonic() - started
        stop.set()
        await beat
    assert done.status is JobStatus.COMPLETED
    assert busy > 0.5, "the backtest was too short to show anything"
    # Against the backtest's own time, not a fixed bound: a loop the backtest held
    # beats once, with one gap as long as the job; a loaded machine only spaces the
    # beats out (a 0.4 s gap in a 4 s job once on CI, with 2 cores for 3 processes).
    assert len(gaps) >= busy / 0.1, f"{len(gaps)} beats in {busy:.2f} s"
    assert max(gaps) < busy / 4, f"the loop stalled for {max(gaps):.3f} s of the {busy:.2f} s"


class Pipe:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []

    def send(self, message: tuple[str, int, int]) -> None:
        self.sent.append(message)


def test_a_worker_sends_at_most_one_progress_per_interval_and_always_the_last() -> None:
    pipe, now = Pipe(), [100.0]
    send = ProgressSender(pipe, "job-1", lambda: now[0])
    for done in range(1024, 100_000, 1024):
        send(done, 100_000)
        now[0] += PROGRESS_INTERVAL_SECONDS / 10
    send(100_000, 100_000)
    assert pipe.sent[0] == ("job-1", 1024, 100_000) and pipe.sent[-1] == ("job-1", 100_000, 100_000)
    elapsed = 97 * PROGRESS_INTERVAL_SECONDS / 10
    assert 5 < len(pipe.sent) <= elapsed / PROGRESS_INTERVAL_SECONDS + 2
    assert [done for _, done, _ in pipe.sent] == sorted(done for _, done, _ in pipe.sent)
