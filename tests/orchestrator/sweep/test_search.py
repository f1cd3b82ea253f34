"""Sweeps over an embedded Dask cluster of two workers, against the same sweep run in this
process, one trial after the other: the same table, trial for trial; a worker killed
mid-sweep loses no trial; a cancelled sweep leaves nothing on the cluster; a sweep
started again over its study computes only what is missing."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backtest.engine import BacktestSpec, SyntheticSource, run_backtest
from orchestrator.backtest.multi_symbol import run_spec
from orchestrator.backtest.report import build_report
from orchestrator.bus import EventBus
from orchestrator.model.clock import SystemClock
from orchestrator.model.events import Event, JobStatus, SweepProgress
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.jobs import SweepManager
from orchestrator.sweep.runner import DaskRunner, InProcessRunner, TrialSource
from orchestrator.sweep.search import SweepSpec
from orchestrator.sweep.study import Search, study_storage
from orchestrator.sweep.trial import TrialOutcome, trades_digest, with_params
from orchestrator.sweep.walk_forward import WalkForwardSpec
from tests.orchestrator.sweep.conftest import sma_entry, sma_sweep, table, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

WATCHED = "tests.sweep_strategies:WatchedSma"
DEADLINE = 120.0


async def run_sweep(
    runner: TrialSource, spec: SweepSpec, directory: Path, events: list[Event] | None = None
) -> dict[str, Any]:
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    manager = SweepManager(SweepsConfig(workers=2), directory, bus, SystemClock(), runner)
    job_id = manager.submit(spec)
    task = asyncio.create_task(manager.run())
    try:
        async with asyncio.timeout(DEADLINE):
            info = await manager.wait(job_id)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert info.status is JobStatus.COMPLETED, info.error
    assert info.result is not None
    return dict(info.result)


@pytest.fixture(scope="module")
def serial_result(goog_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("serial")
    return asyncio.run(run_sweep(InProcessRunner(), sma_sweep(goog_csv), directory))


async def test_the_grid_gives_the_same_table_serially_and_through_dask(
    dask_runner: DaskRunner, serial_result: dict[str, Any], goog_csv: Path, tmp_path: Path
) -> None:
    events: list[Event] = []
    result = await run_sweep(_Shared(dask_runner), sma_sweep(goog_csv), tmp_path, events)
    assert result["trials_total"] == 64 == result["trials_complete"]
    assert table(result) == table(serial_result)
    assert result["best"] == serial_result["best"]
    progress = [e for e in events if isinstance(e, SweepProgress)]
    assert progress and progress[-1].done == progress[-1].total == 64
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    heat = result["heatmap"]
    assert (heat["x"], heat["y"]) == ("fast", "slow")
    assert heat["x_values"] == list(range(2, 17, 2)) and heat["y_values"] == list(range(20, 91, 10))
    best = result["best"]
    assert (
        heat["values"][heat["y_values"].index(best["params"]["slow"])][
            heat["x_values"].index(best["params"]["fast"])
        ]
        == best["value"]
    )


async def test_the_best_trial_run_again_as_a_plain_backtest_makes_the_same_trades(
    serial_result: dict[str, Any], goog_csv: Path
) -> None:
    best = serial_result["best"]
    spec = sma_sweep(goog_csv).backtest
    plain = run_backtest(with_params(spec, best["strategy_params"]))
    assert trades_digest(plain) == best["trades_digest"]
    assert plain.total_trades == best["total_trades"]
    assert build_report(plain).statistics.to_wire(snake_case=True) == best["statistics"]


async def test_the_embedded_cluster_listens_on_loopback_and_no_default_port(
    dask_runner: DaskRunner,
) -> None:
    """Its scheduler's HTTP server took Dask's 8787 (the port of the user's own cluster's
    dashboard) when nobody had it; an ephemeral loopback port now."""
    client = await dask_runner.client()
    info = client.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert info["services"]["dashboard"] not in (8787, 0)
    http = client.cluster.scheduler.http_server
    assert http.address == "127.0.0.1"


async def test_a_worker_killed_mid_sweep_loses_no_trial(
    dask_runner: DaskRunner, serial_result: dict[str, Any], goog_csv: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "blocked"
    entry = sma_entry(WATCHED, block_marker=str(marker), block_at_fast=8)
    sweep = asyncio.create_task(
        run_sweep(_Shared(dask_runner), sma_sweep(goog_csv, entry), tmp_path / "sweeps")
    )
    pid = await until(lambda: sweep.done() or _text(marker))
    assert not sweep.done(), "the sweep ended without the blocked trial"
    os.kill(int(pid), signal.SIGKILL)  # a trial of fast=8 is running in that worker
    result = await sweep
    assert table(result) == table(serial_result)  # the same trades: WatchedSma is SMA


async def test_cancelling_a_sweep_cancels_its_trials_on_the_cluster(
    dask_runner: DaskRunner, goog_csv: Path, tmp_path: Path
) -> None:
    entry = sma_entry(WATCHED, pause_seconds=0.2)
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    manager = SweepManager(SweepsConfig(), tmp_path, bus, SystemClock(), _Shared(dask_runner))
    task = asyncio.create_task(manager.run())
    try:
        job_id = manager.submit(sma_sweep(goog_csv, entry))
        await until(lambda: any(isinstance(e, SweepProgress) for e in events))
        manager.cancel(job_id)
        info = await manager.wait(job_id)
        assert info.status is JobStatus.FAILED and info.error == "cancelled by user"
        client = await dask_runner.client()
        async with asyncio.timeout(DEADLINE):
            while await client.run_on_scheduler(_sweep_tasks, job_id):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the scheduler forgets them as the cancels land
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_search_started_again_computes_only_the_missing_trials(
    goog_csv: Path, tmp_path: Path
) -> None:
    spec = sma_sweep(goog_csv)
    space = spec.search_space()
    storage = study_storage(tmp_path / "study.log")
    computed: list[dict[str, Any]] = []
    trials = InProcessRunner()

    async def run(params: Any) -> TrialOutcome:
        computed.append(dict(params))
        ran = await (await trials.trials("x", spec.backtest)).trial(params)
        if len(computed) == 20:
            raise asyncio.CancelledError  # the daemon stops mid-sweep
        return ran

    with pytest.raises(asyncio.CancelledError):
        await Search(spec, space, storage, "sweep").run(run, capacity=1)
    first = [dict(p) for p in computed]
    computed.clear()
    again = Search(spec, space, study_storage(tmp_path / "study.log"), "sweep")
    rows = await again.run(run_counting(computed, trials, spec.backtest), capacity=1)
    assert len(rows) == 64 and again.computed == 64 - 19
    done_before = {tuple(sorted(p.items())) for p in first[:19]}
    assert not done_before & {tuple(sorted(p.items())) for p in computed}
    assert len({tuple(sorted(row.params.items())) for row in rows}) == 64


def run_counting(
    computed: list[dict[str, Any]], runner: InProcessRunner, spec: BacktestSpec
) -> Any:
    async def run(params: Any) -> TrialOutcome:
        computed.append(dict(params))
        return await (await runner.trials("x", spec)).trial(params)

    return run


class _Shared:
    """The module's cluster for one manager: its close leaves the cluster running."""

    def __init__(self, runner: DaskRunner) -> None:
        self._runner = runner

    async def trials(self, job_id: str, spec: BacktestSpec) -> Any:
        return await self._runner.trials(job_id, spec)

    async def close(self) -> None:
        return None


def _sweep_tasks(job_id: str, dask_scheduler: Any = None) -> int:
    return sum(1 for key in dask_scheduler.tasks if job_id in str(key) and "bars" not in str(key))


def _text(path: Path) -> str:
    """The file's text, "" until a worker process wrote it."""
    return path.read_text() if path.exists() else ""


async def test_a_point_enqueued_but_never_asked_before_a_kill_does_not_shift_the_grid(
    goog_csv: Path, tmp_path: Path
) -> None:
    """A kill between the grid's enqueue and its ask leaves a waiting trial in the study;
    the next run's first ask would pop it instead of its own point, and every later ask
    the point before, so the grid's last point was never run (CI run of stop 25)."""
    spec = sma_sweep(goog_csv)
    space = spec.search_space()
    storage = study_storage(tmp_path / "study.log")
    killed = Search(spec, space, storage, "sweep")
    await asyncio.to_thread(killed.resume)
    study = killed._study
    assert study is not None
    study.enqueue_trial(space.grid_points()[5])  # enqueued; the kill came before the ask
    computed: list[dict[str, Any]] = []
    again = Search(spec, space, study_storage(tmp_path / "study.log"), "sweep")
    rows = await again.run(run_counting(computed, InProcessRunner(), spec.backtest), capacity=2)
    points = {tuple(sorted(p.items())) for p in space.grid_points()}
    assert {tuple(sorted(p.items())) for p in computed} == points
    assert len(computed) == 64 == len(rows)
    assert {tuple(sorted(row.params.items())) for row in rows} == points


def two_symbol_sweep(**fields: Any) -> SweepSpec:
    entry = sma_entry(allow_short=True).model_copy(
        update={
            "defaults": StrategyRunConfig(
                symbols=("AAA", "BBB"), data_resolution="1m", max_position_value=10_000
            )
        }
    )
    source = SyntheticSource(duration_seconds=86_400, ticks_per_second=0.2, seed=3)
    backtest = BacktestSpec(strategy=entry, source=source, symbols=("AAA", "BBB"))
    space = {"fast": {"low": 4, "high": 6, "step": 2}, "slow": {"low": 20, "high": 30, "step": 10}}
    return SweepSpec(backtest=backtest, space=space, **fields)


async def test_a_sweep_over_two_symbols_equals_their_backtests_on_one_account_one_by_one(
    tmp_path: Path,
) -> None:
    spec = two_symbol_sweep()
    result = await run_sweep(InProcessRunner(), spec, tmp_path)
    rows = {(row["params"]["fast"], row["params"]["slow"]): row for row in result["trials"]}
    assert sorted(rows) == [(4, 20), (4, 30), (6, 20), (6, 30)]
    for (fast, slow), row in rows.items():
        alone = run_spec(with_params(spec.backtest, {"fast": fast, "slow": slow}))
        assert alone.symbols == ("AAA", "BBB") and alone.total_trades > 0
        statistics = build_report(alone).statistics.to_wire(snake_case=True)
        assert row["trades_digest"] == trades_digest(alone)
        assert row["value"] == statistics["sharpe_ratio"]


async def test_a_walk_forward_over_several_symbols_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="a walk-forward runs over one symbol"):
        two_symbol_sweep(walk_forward=WalkForwardSpec(windows=2))
