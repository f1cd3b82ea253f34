"""What the socket benchmarks share: a daemon on ephemeral ports, its background
tasks without the feed (the benchmark injects the ticks), and waiting helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gateways.config import DaemonConfig
from gateways.daemon import Daemon


def daemon_config(state_dir: str, **overrides: Any) -> DaemonConfig:
    """The daemon as it runs in production, on ephemeral ports and in ``state_dir``.

    Servers on port 0; the journal and the NNG publisher's ipc socket in
    ``state_dir`` (both on, as by default); no feed history.
    """
    data: dict[str, Any] = {
        "servers": {
            "orchestrator": {"port": 0, "path": "/"},
            "market_data": {"port": 0, "path": "/ws"},
            "risk": {"port": 0, "path": "/ws"},
        },
        "market_data": {"feed": {"kind": "synthetic", "history_seconds": 0}},
        "journal": {"state_dir": state_dir},
        "nng": {"runtime_dir": state_dir},
    }
    data.update(overrides)
    return DaemonConfig(**data)


def start_background(daemon: Daemon) -> list[asyncio.Task[None]]:
    """The daemon's background components except the feed: ticks come from the benchmark."""
    tasks = []
    for name, coroutine in daemon.background_tasks().items():
        if name == "market-data-feed":
            coroutine.close()
            continue
        tasks.append(asyncio.create_task(coroutine, name=name))
    return tasks


async def stop_background(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


async def paced(count: int, per_second: float, step: Callable[[int], None]) -> None:
    """Call ``step(i)`` for i in range(count), ``per_second`` times a second."""
    interval = 1.0 / per_second
    due = time.monotonic()
    for i in range(count):
        step(i)
        due += interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
