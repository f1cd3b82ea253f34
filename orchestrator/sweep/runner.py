"""Where a sweep's trials run: Dask distributed, through an asynchronous client.

:class:`DaskRunner` owns the daemon's Dask client; the code that speaks to Dask is in
:mod:`orchestrator.sweep.cluster`, imported at the first sweep (distributed is too heavy
for every start of the daemon to pay). With no ``scheduler`` configured it
starts an embedded ``LocalCluster`` at the first sweep: ``workers`` worker processes
of one thread each, on loopback, with no dashboard (its nannies live in the daemon's
process; the workers are its children and exit with it). With ``scheduler =
"tcp://host:8786"`` (or ``tls://`` with the ``tls_*`` files) it connects to that
cluster instead. Either way the client is asynchronous: the daemon's event loop
never waits for a trial, every backtest runs in a worker process.

Per sweep a :class:`DaskTrials` loads the bars once, as a task on a worker (so no
history is read or generated on the event loop; a file source on an external
cluster must be readable at the same path by its workers), and every trial is a
task that depends on it. A worker that dies takes its tasks with it; the scheduler
runs them again on another worker (and recomputes the bars if they were lost), so
no trial is lost. Cancelling a sweep cancels its futures: the scheduler forgets the
queued trials, and the results of running ones are dropped.

:class:`InProcessTrials` runs the same functions here, one after the other: the
serial baseline of the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.backtest.engine import BacktestSpec
from orchestrator.model.errors import OrchestratorError
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.trial import (
    SweepBars,
    TrialOutcome,
    WindowRun,
    bar_count,
    run_trial,
    run_window,
    sweep_bars,
)

if TYPE_CHECKING:
    from distributed import Client

    from orchestrator.sweep.cluster import DaskCluster, DaskTrials


class ClusterUnavailable(OrchestratorError):
    """The Dask scheduler cannot be reached or the embedded cluster did not start."""

    code = "cluster_unavailable"


class Trials(Protocol):
    """A sweep's trials, run somewhere."""

    @property
    def capacity(self) -> int:
        """Trials worth keeping in flight."""
        ...

    async def bar_count(self) -> int: ...

    async def trial(
        self, params: Mapping[str, Any], start: int = 0, end: int | None = None
    ) -> TrialOutcome: ...

    async def window(
        self, params: Mapping[str, Any], test_start: int, test_end: int
    ) -> WindowRun | TrialOutcome: ...

    async def close(self) -> None:
        """Cancel what still runs and release the bars."""
        ...


class TrialSource(Protocol):
    """Where sweeps' trials run: the Dask cluster, or this process."""

    async def trials(self, job_id: str, spec: BacktestSpec) -> Trials: ...

    async def close(self) -> None: ...


class DaskRunner:
    """The daemon's Dask client, connected on first use, closed with the daemon."""

    def __init__(self, config: SweepsConfig) -> None:
        self.config = config
        self._dask: DaskCluster | None = None
        self._client: Client | None = None
        self._connecting = asyncio.Lock()

    @property
    def embedded(self) -> bool:
        return self.config.scheduler is None

    async def client(self) -> Client:
        """The connected client; ClusterUnavailable says why not."""
        async with self._connecting:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> Client:
        # Imported here, at the first sweep: distributed would cost every start ~250 ms.
        from orchestrator.sweep import cluster

        self._dask = cluster.DaskCluster(self.config)
        timeout = self.config.connect_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                return await self._dask.connect()
        except TimeoutError as exc:
            await self.close()
            raise ClusterUnavailable(self._unreachable(f"no answer in {timeout:g} s")) from exc
        except OSError as exc:
            await self.close()
            raise ClusterUnavailable(self._unreachable(str(exc))) from exc

    def _unreachable(self, why: str) -> str:
        if self.config.scheduler is None:
            return f"the embedded Dask cluster did not start: {why}"
        return (
            f"the Dask scheduler {self.config.scheduler} cannot be reached: {why} (is it "
            "running? check [sweeps] scheduler)"
        )

    async def threads(self) -> int:
        """Worker threads of the cluster now (at least one)."""
        client = await self.client()
        threads: dict[str, int] = await client.nthreads()
        return max(sum(threads.values()), 1)

    async def trials(self, job_id: str, spec: BacktestSpec) -> DaskTrials:
        """A sweep's trials on the cluster, its bars loading on a worker."""
        from orchestrator.sweep import cluster  # as _connect does (start-up time)

        client = await self.client()
        in_flight = self.config.trials_in_flight or 2 * await self.threads()
        return cluster.DaskTrials(client, job_id, spec, in_flight)

    async def close(self) -> None:
        dask, self._dask, self._client = self._dask, None, None
        if dask is not None:
            await dask.close()


class InProcessRunner:
    """Sweeps run in this process, one trial after the other (tests, the benchmark)."""

    async def trials(self, job_id: str, spec: BacktestSpec) -> InProcessTrials:
        return InProcessTrials(spec)

    async def close(self) -> None:
        return None


class InProcessTrials:
    """The same trials in this process, one at a time (tests and the benchmark's baseline)."""

    def __init__(self, spec: BacktestSpec) -> None:
        self._spec = spec
        self._bars: SweepBars | None = None

    @property
    def capacity(self) -> int:
        return 1

    def _loaded(self) -> SweepBars:
        if self._bars is None:
            self._bars = sweep_bars(self._spec)
        return self._bars

    async def bar_count(self) -> int:
        return bar_count(self._loaded())

    async def trial(
        self, params: Mapping[str, Any], start: int = 0, end: int | None = None
    ) -> TrialOutcome:
        return run_trial(self._spec, params, self._loaded(), start, end)

    async def window(
        self, params: Mapping[str, Any], test_start: int, test_end: int
    ) -> WindowRun | TrialOutcome:
        return run_window(self._spec, params, self._loaded(), test_start, test_end)

    async def close(self) -> None:
        self._bars = None
