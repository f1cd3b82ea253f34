"""A sweep on an existing Dask cluster: a real ``dask scheduler`` and ``dask worker``
started as their own processes on loopback (ephemeral ports), the daemon's runner
connected through ``[sweeps] scheduler``: over tcp://, and over tls:// with the
``tls_*`` files (a self-signed certificate from Dask's ``Security.temporary``, its
own CA, written to files as an operator's would be)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from distributed import Client
from distributed.security import Security

from orchestrator.bus import EventBus
from orchestrator.model.clock import SystemClock
from orchestrator.model.events import JobStatus
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.jobs import SweepManager
from orchestrator.sweep.runner import ClusterUnavailable, DaskRunner
from tests.orchestrator.sweep.conftest import sma_sweep, table, until

REPO = Path(__file__).resolve().parents[3]
DASK = Path(sys.executable).with_name("dask")
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scheduler:
    address: str
    tls_files: dict[str, Path]
    """tls_ca_file, tls_cert_file, tls_key_file for SweepsConfig; empty over tcp."""


def write_tls_files(directory: Path) -> dict[str, Path]:
    security = Security.temporary()  # PEM text of one self-signed certificate and key
    files = {
        "tls_ca_file": (directory / "ca.pem", security.tls_ca_file),
        "tls_cert_file": (directory / "cert.pem", security.tls_client_cert),
        "tls_key_file": (directory / "key.pem", security.tls_client_key),
    }
    for path, text in files.values():
        path.write_text(str(text))
    return {name: path for name, (path, _) in files.items()}


def _tls_options(files: dict[str, Path]) -> list[str]:
    if not files:
        return []
    return [
        "--tls-ca-file",
        str(files["tls_ca_file"]),
        "--tls-cert",
        str(files["tls_cert_file"]),
        "--tls-key",
        str(files["tls_key_file"]),
    ]


@pytest_asyncio.fixture(params=["tcp", "tls"])
async def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Scheduler]:
    """A scheduler with one worker, both separate processes, over tcp or tls."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    file = tmp_path / "scheduler.json"
    tls_files = write_tls_files(tmp_path) if request.param == "tls" else {}
    tls = _tls_options(tls_files)
    processes = [
        await asyncio.create_subprocess_exec(
            str(DASK),
            "scheduler",
            "--protocol",
            request.param,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
            *tls,
            env=env,
            stderr=asyncio.subprocess.DEVNULL,
        )
    ]
    try:
        address = await _address(file)
        processes.append(
            await asyncio.create_subprocess_exec(
                str(DASK),
                "worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                *tls,
                env=env,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
        yield Scheduler(address, tls_files)
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()


async def _address(file: Path) -> str:
    found: str = await until(lambda: _scheduler_address(file), START_TIMEOUT)
    return found


def _scheduler_address(file: Path) -> str:
    try:
        return str(json.loads(file.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return ""  # not written yet


async def test_a_sweep_runs_through_an_external_scheduler(
    scheduler: Scheduler, goog_csv: Path, tmp_path: Path
) -> None:
    assert scheduler.address.startswith("tls://" if scheduler.tls_files else "tcp://")
    config = SweepsConfig(
        scheduler=scheduler.address,
        connect_timeout_seconds=START_TIMEOUT,
        **scheduler.tls_files,  # type: ignore[arg-type]
    )
    runner = DaskRunner(config)
    client = await runner.client()
    await client.wait_for_workers(1, timeout=START_TIMEOUT)
    manager = SweepManager(config, tmp_path, EventBus(), SystemClock(), runner)
    task = asyncio.create_task(manager.run())
    small = {"fast": {"low": 4, "high": 12, "step": 4}, "slow": {"choices": [20, 40]}}
    try:
        job_id = manager.submit(sma_sweep(goog_csv, space=small))
        info = await asyncio.wait_for(manager.wait(job_id), START_TIMEOUT)
        assert info.status is JobStatus.COMPLETED, info.error
        result: dict[str, Any] = dict(info.result or {})
        assert result["trials_total"] == 6 == result["trials_computed"]
        workers = await client.run(os.getpid)
        assert len(workers) == 1 and os.getpid() not in workers.values()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.close()
    assert len(table(result)) == 6


async def test_a_scheduler_that_does_not_answer_is_a_clear_error() -> None:
    runner = DaskRunner(SweepsConfig(scheduler="tcp://127.0.0.1:9", connect_timeout_seconds=2))
    before = set(Client._instances)
    gc.disable()  # the clients made here stay in the weak set until looked at
    try:
        with pytest.raises(ClusterUnavailable, match=r"tcp://127.0.0.1:9 cannot be reached"):
            await runner.client()
        made = set(Client._instances) - before
    finally:
        gc.enable()
    # The client that never connected is closed, not left for the garbage collector
    # to close later on an event loop that is gone (a test far away used to see it).
    assert made and all(client.status == "closed" for client in made)
