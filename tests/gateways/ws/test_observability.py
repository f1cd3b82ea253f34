"""/healthz and /metrics over real HTTP on every server's port."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.gateways.nng.nng_support import until
from tests.support import TestDaemon, running_daemon, test_config

SERVERS = ["orchestrator", "market_data", "risk"]


def http_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


async def get(daemon: TestDaemon, server: str, path: str) -> tuple[int, str, bytes]:
    port = daemon.daemon.servers[server].port
    return await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}")


@pytest.mark.parametrize("server", SERVERS)
async def test_healthz_is_200_with_every_component_ok(server: str) -> None:
    async with running_daemon() as daemon:
        status, content_type, body = await get(daemon, server, "/healthz")
        assert status == 200
        assert content_type == "application/json"
        health: dict[str, Any] = orjson.loads(body)
        assert health["status"] == "ok"
        assert health["components"] == {"servers": "ok", "journal": "ok", "market_data": "ok"}


async def test_healthz_is_503_when_the_journal_stops() -> None:
    async with running_daemon() as daemon:
        writer_task = daemon.daemon._writer_task
        assert writer_task is not None
        writer_task.cancel()
        await asyncio.gather(writer_task, return_exceptions=True)
        status, _, body = await get(daemon, "orchestrator", "/healthz")
        assert status == 503
        assert orjson.loads(body)["components"]["journal"] == "failing"


async def test_metrics_count_connections_messages_errors_orders_and_fills() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "nope"})
        await client.request({"type": "start_strategy", "id": "strategy-123"})
        for step in range(12):
            daemon.advance(1.0)
            daemon.tick("AAPL", 100.0 + step)
            daemon.tick("MSFT", 200.0 + step)
        await client.recv_type("strategy_trade")
        status, content_type, body = await get(daemon, "risk", "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    figures = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert figures['orchestrator_connections{server="orchestrator"}'] == 1
    assert figures['orchestrator_messages_in_total{server="orchestrator"}'] == 2
    assert figures['orchestrator_messages_out_total{server="orchestrator"}'] >= 5
    assert figures['orchestrator_errors_total{code="unknown_strategy",server="orchestrator"}'] == 1
    assert figures["orchestrator_orders_total"] >= 1
    assert figures["orchestrator_fills_total"] >= 1
    assert figures["orchestrator_journal_write_seconds_count"] >= 1
    assert "orchestrator_event_loop_lag_seconds" in figures


async def test_metrics_count_the_rows_recorded(tmp_path: Path) -> None:
    recording = {"enabled": True, "directory": str(tmp_path), "flush_rows": 2}
    async with running_daemon(test_config(recording=recording)) as daemon:
        recorder = daemon.daemon.recorder
        assert recorder is not None
        for step in range(5):
            daemon.tick("AAPL", 100.0 + step)
        await until(lambda: recorder.rows_written["ticks"] == 4)  # two files of two
        _, _, body = await get(daemon, "orchestrator", "/metrics")
    figures = dict(
        line.rsplit(" ", 1) for line in body.decode().splitlines() if line.startswith("orch")
    )
    assert float(figures['orchestrator_recording_rows_total{kind="ticks",outcome="written"}']) == 4
    assert float(figures['orchestrator_recording_rows_total{kind="ticks",outcome="dropped"}']) == 0
