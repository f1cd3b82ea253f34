"""The Dask side of sweeps: the embedded ``LocalCluster`` or a scheduler's client, and one
sweep's tasks on it.

:class:`DaskCluster` starts the embedded cluster (``workers`` worker processes of one
thread each, on loopback, with no dashboard) or connects to the configured scheduler
(``tcp://``, or ``tls://`` with the ``tls_*`` files), and installs :class:`QuietTrials`
on every worker. :class:`DaskTrials` is one sweep on it: the bars loaded once, as a
task on a worker, and every trial a task that depends on it.

Only :class:`orchestrator.sweep.runner.DaskRunner` imports this module, at the first
sweep: importing distributed costs about 250 ms, which every start and restart of the
daemon would pay for a feature most runs never use.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from distributed import Client, Future, LocalCluster, WorkerPlugin
from distributed.security import Security

from orchestrator.backtest.engine import BacktestSpec
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.trial import (
    TrialOutcome,
    WindowRun,
    bar_count,
    quiet_logs,
    run_trial,
    run_window,
    sweep_bars,
)

log = structlog.get_logger("orchestrator.sweep.cluster")


class QuietTrials(WorkerPlugin):
    """Installed on every worker: only errors from the backtests it runs."""

    name = "orchestrator-quiet-trials"

    def setup(self, worker: Any) -> None:
        quiet_logs()


class DaskCluster:
    """The daemon's Dask client and, when embedded, the ``LocalCluster`` it runs on."""

    def __init__(self, config: SweepsConfig) -> None:
        self.config = config
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None

    async def connect(self) -> Client:
        """Start the embedded cluster or reach the scheduler; the client, its workers
        quieted. OSError when the scheduler refuses; the caller bounds the wait."""
        client = await self._start_client()
        await client.register_plugin(QuietTrials())
        self._client = client
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

    async def close(self) -> None:
        """Close the client, then the embedded cluster (what fails to close is let go)."""
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
