"""Helpers of the NNG tests: a subscriber in another process, and polling with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[3]
SUBSCRIBER = Path(__file__).resolve().parent / "nng_subscriber.py"
DEADLINE = 10.0


async def until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state moves in other threads and processes
            await asyncio.sleep(0.005)


class SubscriberProcess:
    """tests/gateways/nng/nng_subscriber.py running in another process; its lines, decoded."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read(), name="nng-subscriber-reader")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            message = orjson.loads(line)
            if "seq" in message:
                self.events.append(message)

    async def wait_for(self, count: int, timeout: float = DEADLINE) -> list[dict[str, Any]]:
        await until(lambda: len(self.events) >= count, timeout)
        return self.events

    def of_topic(self, prefix: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["topic"].startswith(prefix)]

    @property
    def missed(self) -> int:
        return sum(e["missed"] for e in self.events)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def subscriber_process(address: str, *topics: str) -> AsyncIterator[SubscriberProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUBSCRIBER),
        address,
        *topics,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
    assert orjson.loads(ready) == {"ready": True}
    subscriber = SubscriberProcess(proc)
    try:
        yield subscriber
    finally:
        await subscriber.close()
