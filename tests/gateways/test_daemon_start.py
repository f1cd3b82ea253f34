"""A daemon accepts clients only once the journal's state is restored: a client that
connects during a restart is refused (and retries) rather than shown the empty
state of a daemon that has not read its journal yet."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest
from websockets.asyncio.client import connect

from gateways.daemon import Daemon
from orchestrator.model.clock import ManualClock
from orchestrator.strategy.registry import SavedStrategy
from tests.support import START, running_daemon, test_config


async def test_no_client_is_accepted_before_the_journal_is_restored() -> None:
    config = test_config()
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "strategy-123"})

    restarted = Daemon(config, clock=ManualClock(START))
    restore = restarted.registry.restore
    refused: list[bool] = []

    async def restore_after_trying_to_connect(saved: Sequence[SavedStrategy]) -> None:
        url = f"ws://127.0.0.1:{restarted.servers['orchestrator'].port}/"
        try:
            async with connect(url, open_timeout=2):
                refused.append(False)
        except OSError:
            refused.append(True)
        await restore(saved)

    restarted.registry.restore = restore_after_trying_to_connect  # type: ignore[method-assign]
    await restarted.start()
    try:
        assert refused == [True]
        url = f"ws://127.0.0.1:{restarted.servers['orchestrator'].port}/"
        async with connect(url) as ws:  # accepted now, and shown the restored strategy
            assert "strategy-123" in str(await ws.recv()) + str(await ws.recv())
    finally:
        await restarted.stop()


@pytest.mark.parametrize("server", ["orchestrator", "market_data", "risk"])
async def test_every_server_accepts_once_started(server: str) -> None:
    async with running_daemon() as daemon, daemon.client(server):
        pass


async def test_a_started_daemon_keeps_its_heap_out_of_the_collectors_walks() -> None:
    """What the start built is frozen (a full collection would otherwise walk all of it,
    pausing trades for 0.1 s and more); the stop gives it back to the collector."""
    gc.unfreeze()
    async with running_daemon():
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
