"""A daemon killed with SIGKILL mid-sweep and started again resumes the sweep under
its job id, and no trial is computed twice: the trials the study had finished are
read back, only the others run (each once), and the table has every point once.

The strategy is the SMA crossover that also appends each run's parameters and pid
to a log and takes 50 ms more per run (``tests.sweep_strategies:WatchedSma``), so
the kill lands with part of the grid done."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import optuna
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.gateways.test_daemon_process import clean_env, free_ports
from tests.orchestrator.sweep.conftest import until, write_goog

TIMEOUT = 240.0
REPO = Path(__file__).resolve().parent.parent
GRID = [(fast, slow) for fast in range(2, 17, 2) for slow in range(20, 91, 10)]


def write_config(tmp_path: Path, log_dir: Path) -> Path:
    ports = free_ports(3)
    text = "".join(
        f"[servers.{name}]\nport = {port}\n"
        for name, port in zip(("orchestrator", "market_data", "risk"), ports, strict=True)
    )
    text += f"""
[logging]
format = "json"
[journal]
state_dir = "{tmp_path / "state"}"
[nng]
enabled = false
[market_data.feed]
kind = "synthetic"
history_seconds = 0.0
[jobs]
data_dir = "{tmp_path}"
[sweeps]
workers = 2
worker_memory_limit = "0"
[[strategies]]
id = "watched"
name = "Watched SMA"
kind = "tests.sweep_strategies:WatchedSma"
params = {{ fast = 5, slow = 20, log_dir = "{log_dir}", pause_seconds = 0.05 }}
defaults = {{ symbols = ["GOOG"], data_resolution = "1d", max_position_value = 10000 }}
"""
    path = tmp_path / "orchestrator.toml"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def daemon(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateways",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            env={**clean_env(), "PYTHONPATH": str(REPO)},
            cwd=str(REPO),
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def connected(url: str) -> ClientConnection:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            ws = await connect(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # the daemon is still starting: nothing to await
            continue
        for _ in range(2):  # the snapshot
            await ws.recv()
        return ws


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(orjson.dumps({**message, "requestId": "r"}).decode())
    while True:
        reply: dict[str, Any] = orjson.loads(await ws.recv())
        if reply.get("requestId") == "r":
            return reply


def logged(log_dir: Path) -> list[tuple[int, int, int]]:
    path = log_dir / "trials.log"
    lines = path.read_text().split() if path.exists() else []
    numbers = [int(value) for value in lines]
    return list(zip(numbers[0::3], numbers[1::3], numbers[2::3], strict=True))


def finished_in_study(study_file: Path, job_id: str) -> set[tuple[int, int]]:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_file))
    )
    study = optuna.load_study(study_name=job_id, storage=storage)
    return {(t.params["fast"], t.params["slow"]) for t in study.trials if "outcome" in t.user_attrs}


async def test_a_sweep_killed_with_its_daemon_resumes_and_computes_no_trial_twice(
    tmp_path: Path,
) -> None:
    write_goog(tmp_path)
    log_dir = tmp_path / "trials"
    log_dir.mkdir()
    config = write_config(tmp_path, log_dir)
    url = f"ws://127.0.0.1:{config.read_text().split('port = ')[1].split()[0]}/"
    command = {
        "type": "run_sweep",
        "strategyId": "watched",
        "source": {"kind": "file", "path": "GOOG.csv"},
        "parameters": {
            "fast": {"low": 2, "high": 16, "step": 2},
            "slow": {"low": 20, "high": 90, "step": 10},
        },
    }
    async with asyncio.timeout(TIMEOUT):
        async with daemon(config, tmp_path / "first.log") as first:
            ws = await connected(url)
            job_id = (await request(ws, command))["data"]["jobId"]
            while True:  # until some trials are done, then kill -9
                message = orjson.loads(await ws.recv())
                if message["type"] == "sweep_progress" and message["data"]["trialsDone"] >= 8:
                    break
            first.send_signal(signal.SIGKILL)
            await first.wait()
        before = logged(log_dir)
        pids = {pid for _, _, pid in before}
        await until(lambda: not any(_alive(pid) for pid in pids))  # workers exit with it
        before = logged(log_dir)
        study_file = tmp_path / "state" / "sweeps" / f"{job_id}.optuna.log"
        done = finished_in_study(study_file, job_id)
        assert 8 <= len(done) < 64
        async with daemon(config, tmp_path / "second.log") as second:
            ws = await connected(url)
            state = (await request(ws, {"type": "get_sweep", "jobId": job_id}))["data"]
            while state["status"] not in ("completed", "failed"):
                message = orjson.loads(await ws.recv())
                if message["type"] == "sweep_job" and message["data"]["jobId"] == job_id:
                    state = message["data"]
            second.send_signal(signal.SIGTERM)
            await second.wait()
    assert state["status"] == "completed", state
    after = [(fast, slow) for fast, slow, _ in logged(log_dir)[len(before) :]]
    assert not done & set(after), "a trial finished before the kill was computed again"
    assert Counter(after).most_common(1)[0][1] == 1, "a trial was computed twice after restart"
    assert done | set(after) == set(GRID)
    result = state["result"]
    assert result["trials_total"] == 64 and result["trials_computed"] == len(after) == 64 - len(
        done
    )
    assert sorted((r["params"]["fast"], r["params"]["slow"]) for r in result["trials"]) == GRID


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
