"""Where a sweep's trials run: Dask distributed, through an asynchronous client.

:class:`DaskRunner` owns the daemon's Dask client. With no ``scheduler`` configured it
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
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from distributed import Client, Future, LocalCluster, WorkerPlugin
from distributed.security import Security

from orchestrator.backtest.engine import BacktestSpec
from orchestrator.model.errors import OrchestratorError
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.trial import (
    SweepBars,
    TrialOutcome,
    WindowRun,
    bar_count,
    quiet_logs,
    run_trial,
    run_window,
    sweep_bars,
)

log = structlog.get_logger("orchestrator.sweep.runner")


class ClusterUnavailable(OrchestratorError):
    """The Dask scheduler cannot be reached or the embedded cluster did not start."""

    code = "cluster_unavailable"


class QuietTrials(WorkerPlugin):
    """Installed on every worker: only errors from the backtests it runs."""

    name = "orchestrator-quiet-trials"

    def setup(self, worker: Any) -> None:
        quiet_logs()


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
        self._cluster: LocalCluster | None = None
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
        timeout = self.config.connect_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                client = await self._start_client()
                await client.register_plugin(QuietTrials())
        except TimeoutError as exc:
            await self.close()
            raise ClusterUnavailable(self._unreachable(f"no answer in {timeout:g} s")) from exc
        except OSError as exc:
            await self.close()
            raise ClusterUnavailable(self._unreachable(str(exc))) from exc
        return client

    async def _start_client(self) -> Client:
        if self.config.scheduler is None:
            log.info("sweep_cluster_starting", workers=self.config.workers)
            self._cluster = await LocalCluster(
                n_workers=self.config.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                # No dashboard, but the scheduler's HTTP server (health, metrics) still
                # listens: on Dask's default 8787 unless told, a port the user's own
                # cluster may want. An ephemeral loopback port instead.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                memory_limit=self.config.worker_memory_limit,
                silence_logs=logging.ERROR,
                asynchronous=True,
            )
            client = await _started(Client(self._cluster, asynchronous=True))
            log.info("sweep_cluster_started", scheduler=self._cluster.scheduler_address)
            return client
        remote = await _started(
            Client(
                self.config.scheduler,
                asynchronous=True,
                security=self._security(),
                timeout=self.config.connect_timeout_seconds,
            )
        )
        log.info("sweep_scheduler_connected", scheduler=self.config.scheduler)
        return remote

    def _security(self) -> Security | None:
        config = self.config
        if not config.tls:
            return None
        return Security(
            tls_ca_file=str(config.tls_ca_file),
            tls_client_cert=str(config.tls_cert_file),
            tls_client_key=str(config.tls_key_file),
            require_encryption=True,
        )

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
        client = await self.client()
        in_flight = self.config.trials_in_flight or 2 * await self.threads()
        return DaskTrials(client, job_id, spec, in_flight)

    async def close(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            with contextlib.suppress(Exception):
                closing: Any = client.close()  # asynchronous: a coroutine
                await closing
        if cluster is not None:
            with contextlib.suppress(Exception):
                stopping: Any = cluster.close()
                await stopping
            log.info("sweep_cluster_closed")


async def _started(client: Client) -> Client:
    """``client`` once connected; closed if it never gets there (a timeout, a refusal),
    so no half-started client is left for the garbage collector to close on a loop
    that is gone."""
    try:
        await client
    except BaseException:
        with contextlib.suppress(Exception):
            closing: Any = client.close()  # asynchronous: a coroutine
            await closing
        raise
    return client


class DaskTrials:
    """One sweep's tasks on the cluster; keys name the sweep, so its tasks are its own."""

    def __init__(self, client: Client, job_id: str, spec: BacktestSpec, capacity: int) -> None:
        self._client = client
        self._job_id = job_id
        self._spec = spec
        self._capacity = capacity
        self._numbers = itertools.count()
        self._futures: set[Future[Any]] = set()
        self._bars: Future[Any] = client.submit(sweep_bars, spec, key=f"sweep-bars-{job_id}")
        self._futures.add(self._bars)

    @property
    def capacity(self) -> int:
        return self._capacity

    async def bar_count(self) -> int:
        count: int = await self._run(bar_count, self._bars, kind="count")
        return count

    async def trial(
        self, params: Mapping[str, Any], start: int = 0, end: int | None = None
    ) -> TrialOutcome:
        outcome: TrialOutcome = await self._run(
            run_trial, self._spec, dict(params), self._bars, start, end, kind="trial"
        )
        return outcome

    async def window(
        self, params: Mapping[str, Any], test_start: int, test_end: int
    ) -> WindowRun | TrialOutcome:
        run: WindowRun | TrialOutcome = await self._run(
            run_window, self._spec, dict(params), self._bars, test_start, test_end, kind="window"
        )
        return run

    async def _run(self, function: Callable[..., Any], *args: Any, kind: str) -> Any:
        key = f"sweep-{kind}-{self._job_id}-{next(self._numbers)}"
        future = self._client.submit(function, *args, key=key, pure=False)
        self._futures.add(future)
        try:
            return await future
        except asyncio.CancelledError:
            await self._client.cancel([future], force=True)
            raise
        finally:
            self._futures.discard(future)

    async def close(self) -> None:
        futures, self._futures = list(self._futures), set()
        if futures:
            with contextlib.suppress(Exception):
                await self._client.cancel(futures, force=True)


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
