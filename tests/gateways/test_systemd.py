"""Running as a service: the unit file, sd_notify on a real socket, SIGHUP."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from gateways.daemon import Daemon
from orchestrator.model.clock import ManualClock
from tests.gateways.test_daemon_process import SERVERS, daemon_process, free_ports, write_config
from tests.support import START, Client, test_config

UNIT = Path(__file__).parents[2] / "config" / "orchestrator.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's command.
    command = Path(sys.executable).parent / "orchestrator"
    text = UNIT.read_text().replace("/opt/orchestrator/venv/bin/orchestrator", str(command))
    unit = tmp_path / "orchestrator.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_unit_has_notify_watchdog_restart_state_and_hardening() -> None:
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["Type"] == "notify"
    assert int(lines["WatchdogSec"]) > 0
    assert lines["Restart"] == "on-failure"
    assert lines["StateDirectory"] == "orchestrator"
    for hardening in ("NoNewPrivileges", "PrivateTmp", "DynamicUser"):
        assert lines[hardening] == "yes"
    assert lines["ProtectSystem"] == "strict"


async def test_sd_notify_ready_watchdog_status_and_stopping_in_order(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.setblocking(False)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
    loop = asyncio.get_running_loop()
    received: list[str] = []

    async def next_message() -> str:
        data = await asyncio.wait_for(loop.sock_recv(listener, 4096), 30)
        message = data.decode()
        received.append(message)
        return message

    try:
        async with daemon_process(write_config(tmp_path, ports), env=env) as daemon:
            ready = await next_message()
            pings = [await next_message() for _ in range(3)]
            daemon.proc.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in await next_message():
                pass
            code, logs = await daemon.finish()
    finally:
        listener.close()
    assert code == 0
    assert ready.startswith("READY=1\nSTATUS=serving on ")
    # One of each reads as one: "0 clients; 0 strategies running", never "1 clients".
    assert "; 0 clients; 0 strategies running; execution RUNNING" in ready
    assert all("WATCHDOG=1" in ping for ping in pings)
    [ready_log] = [entry for entry in logs if entry["event"] == "daemon_ready"]
    assert ready_log  # READY=1 came only after the servers bound
    assert received[-1].startswith("STOPPING=1")


async def test_sighup_reloads_the_catalog_without_dropping_clients(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    base = config.read_text()
    async with daemon_process(config) as daemon:
        await daemon.wait_for_log("daemon_ready")
        async with connect(f"ws://127.0.0.1:{ports['orchestrator']}/") as ws:
            client = Client(ws)
            await client.read_snapshot()
            await client.request({"type": "start_strategy", "id": "strategy-123"})
            config.write_text(base + EXTRA_STRATEGY)
            daemon.proc.send_signal(signal.SIGHUP)
            await daemon.wait_for_log("catalog_reloaded")
            # The file's catalog replaces the embedded one, but a running strategy
            # that it no longer lists keeps running until it stops.
            listed = await client.request({"type": "get_strategies"})
            assert [entry["id"] for entry in listed["data"]] == ["extra", "strategy-123"]
            active = await client.request({"type": "get_active_strategies"})
            assert [e["id"] for e in active["data"]] == ["strategy-123"]

            config.write_text(base + "[[strategies]]\nid = 'broken'\n")
            daemon.proc.send_signal(signal.SIGHUP)
            await daemon.wait_for_log("reload_refused")
            await client.request({"type": "stop_strategy", "id": "strategy-123"})
            listed = await client.request({"type": "get_strategies"})
            assert [entry["id"] for entry in listed["data"]] == ["extra"]
        daemon.proc.send_signal(signal.SIGTERM)
        code, _ = await daemon.finish()
    assert code == 0


EXTRA_STRATEGY = """
[[strategies]]
id = "extra"
name = "Extra RSI"
kind = "rsi_reversion"
[strategies.defaults]
symbols = ["GOOG"]
"""


async def test_the_systemd_summary_counts_in_words() -> None:
    daemon = Daemon(test_config(), clock=ManualClock(START))
    await daemon.start()
    try:
        await daemon.registry.start("strategy-123")
        assert "; 0 clients; 1 strategy running; " in daemon.summary()
    finally:
        await daemon.stop()
