"""Sweeps: trials per second in this process, on an embedded Dask cluster of 1 worker and
of 2 workers, on the same grid; and the time the embedded cluster takes to start.

Strategy: the built-in ``sma_crossover`` (fast 2..16 step 2 x slow 20..90 step 10:
the 8 x 8 grid of the tests, maximising the Sharpe ratio), through the
:class:`orchestrator.sweep.jobs.SweepManager` the daemon runs (Optuna study in a
journal file, ask and tell on the event loop's side, trials on the workers). Data:

- ``GOOG``: backtesting.py's bundled daily bars (2,148 bars), a trial of a few ms,
  where Dask's per-task cost and the study's file shows;
- ``synthetic``: the seeded synthetic feed aggregated to 1-minute bars over 20 days
  (28,800 bars), a trial of about a tenth of a second, where the workers' work
  dominates.

Timed (``perf_counter``): submit to completed, the cluster already started (its start
is timed on its own: ``LocalCluster`` with the config's settings, until the client is
connected and every worker registered). The serial baseline is the same manager
with :class:`orchestrator.sweep.runner.InProcessRunner`. Logs below errors are off
in this process as in the workers (the guardian's refusals are not the figure).
The speed-up is the 2-worker rate over the 1-worker rate, against the ideal 2x; on
a machine with 2 cores that other processes share, it is bounded by what they leave.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Verdict, machine, table
from orchestrator.backtest.engine import BacktestSpec, FileSource, SyntheticSource
from orchestrator.bus import EventBus
from orchestrator.model.clock import SystemClock
from orchestrator.model.events import JobStatus
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.jobs import SweepManager
from orchestrator.sweep.runner import DaskRunner, InProcessRunner, TrialSource
from orchestrator.sweep.search import SweepSpec
from orchestrator.sweep.trial import quiet_logs

GRID = {"fast": {"low": 2, "high": 16, "step": 2}, "slow": {"low": 20, "high": 90, "step": 10}}
SPEED_UP_TARGET = 1.5
"""Of the ideal 2x, on the heavier trials: what two workers must at least give."""


def goog_spec(directory: Path) -> SweepSpec:
    from backtesting.test import GOOG

    frame = GOOG.copy()
    frame.index.name = "timestamp"
    frame.columns = [column.lower() for column in frame.columns]
    frame.to_csv(directory / "GOOG.csv")
    return _spec(FileSource(path=directory / "GOOG.csv"), "GOOG", "1d")


def synthetic_spec() -> SweepSpec:
    source = SyntheticSource(resolution="1m", duration_seconds=20 * 86_400, ticks_per_second=0.1)
    return _spec(source, "AAPL", "1m")


def _spec(source: Any, symbol: str, resolution: str) -> SweepSpec:
    entry = CatalogEntry(
        id="sma",
        name="SMA crossover",
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        defaults=StrategyRunConfig(
            symbols=(symbol,), data_resolution=resolution, max_position_value=10_000
        ),
    )
    backtest = BacktestSpec(strategy=entry, source=source, symbol=symbol)
    return SweepSpec.model_validate({"backtest": backtest, "space": GRID})


async def timed_sweep(runner: TrialSource, spec: SweepSpec, directory: Path) -> float:
    manager = SweepManager(SweepsConfig(), directory, EventBus(), SystemClock(), runner)
    task = asyncio.create_task(manager.run())
    try:
        started = time.perf_counter()
        info = await manager.wait(manager.submit(spec))
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert info.status is JobStatus.COMPLETED, info.error
    return elapsed


class _Kept:
    """A started runner that a manager's close leaves running."""

    def __init__(self, runner: DaskRunner) -> None:
        self._runner = runner

    async def trials(self, job_id: str, spec: BacktestSpec) -> Any:
        return await self._runner.trials(job_id, spec)

    async def close(self) -> None:
        return None


async def measure(directory: Path) -> tuple[list[list[object]], dict[str, float]]:
    specs = {"GOOG": goog_spec(directory), "synthetic": synthetic_spec()}
    trials = 64
    rates: dict[tuple[str, str], float] = {}
    for name, spec in specs.items():
        seconds = await timed_sweep(InProcessRunner(), spec, directory / f"serial-{name}")
        rates[(name, "serial")] = trials / seconds
    starts = {}
    for workers in (1, 2):
        runner = DaskRunner(SweepsConfig(workers=workers, worker_memory_limit="0"))
        started = time.perf_counter()
        client = await runner.client()
        await client.wait_for_workers(workers)
        starts[workers] = time.perf_counter() - started
        try:
            for name, spec in specs.items():
                path = directory / f"dask{workers}-{name}"
                rates[(name, f"{workers}")] = trials / await timed_sweep(_Kept(runner), spec, path)
        finally:
            await runner.close()
    rows: list[list[object]] = [
        [name, rates[(name, "serial")], rates[(name, "1")], rates[(name, "2")],
         rates[(name, "2")] / rates[(name, "1")]]
        for name in specs
    ]  # fmt: skip
    return rows, {"start_1": starts[1], "start_2": starts[2]}


def main() -> list[Verdict]:
    quiet_logs()  # as in the workers: the guardian's refusals are not the figure
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        rows, starts = asyncio.run(measure(Path(tmp)))
    headers = ("data", "serial trials/s", "1 worker", "2 workers", "speed-up 2/1")
    print(table(f"sweep: 8x8 sma_crossover grid, 64 trials ({machine()})", headers, rows))
    print(
        f"embedded cluster start: {starts['start_1']:.2f} s with 1 worker, "
        f"{starts['start_2']:.2f} s with 2"
    )
    verdicts = []
    for name, _, _, _, speed_up in rows:
        assert isinstance(speed_up, float)
        heavy = name == "synthetic"
        verdicts.append(
            Verdict(
                f"sweep speed-up, 2 workers over 1, {name}",
                f"{speed_up:.2f}x (ideal 2x)",
                f">= {SPEED_UP_TARGET}x" if heavy else "none",
                speed_up >= SPEED_UP_TARGET if heavy else None,
            )
        )
    verdicts.append(
        Verdict("embedded cluster start, 2 workers", f"{starts['start_2']:.2f} s", "none", None)
    )
    for verdict in verdicts:
        print(verdict.line())
    return verdicts


if __name__ == "__main__":
    main()
