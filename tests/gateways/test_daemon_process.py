"""The daemon as a process: ``python -m gateways run``, ports, signals, logs.

Ports must be known before the process starts, so each test picks free ones by
binding port-0 sockets and closing them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateways.config import DaemonConfig, ServerConfig
from gateways.daemon import AddressInUse, Daemon, serve_until_signalled
from tests.support import Client, test_config

SERVERS = ("orchestrator", "market_data", "risk")
PATHS = {"orchestrator": "/", "market_data": "/ws", "risk": "/ws"}
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
"""Bounds on a hang, not on speed: two busy shared cores may start Python slowly."""


def free_ports(count: int) -> list[int]:
    """Ports free now, below the kernel's ephemeral range: a daemon killed and started
    again on them must not find one taken by a socket the kernel numbered meanwhile (a
    client's outgoing connection, another test's port 0)."""
    low, _ = _ephemeral_range()
    candidates = random.Random().sample(range(15_000, low), k=min(200, low - 15_000))
    ports: list[int] = []
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports between 15000 and {low}")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


@contextmanager
def held_port() -> Iterator[int]:
    """A port that someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on it (SO_REUSEADDR: a closed connection's TIME_WAIT doesn't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def write_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    text = "".join(f"[servers.{name}]\nport = {port}\n" for name, port in ports.items())
    text += '[logging]\nformat = "json"\n'
    text += f'[journal]\nstate_dir = "{tmp_path / "state"}"\n'
    path = tmp_path / "orchestrator.toml"
    path.write_text(text, encoding="utf-8")
    return path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}


def json_lines(stderr: bytes) -> list[dict[str, Any]]:
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if line.startswith(b"{"):
            lines.append(orjson.loads(line))
    return lines


class Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr = b""

    async def wait_for_log(self, event: str) -> dict[str, Any]:
        """Read stderr until a JSON line with this event (everything read is kept)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while True:
                line = await self.proc.stderr.readline()
                if not line:
                    raise AssertionError(f"process exited before {event}: {self.stderr!r}")
                self.stderr += line
                parsed = json_lines(line)
                if parsed and parsed[0].get("event") == event:
                    return parsed[0]

    async def finish(self, timeout: float = EXIT_TIMEOUT) -> tuple[int, list[dict[str, Any]]]:
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            self.stderr += await self.proc.stderr.read()
            code = await self.proc.wait()
        return code, json_lines(self.stderr)


@asynccontextmanager
async def daemon_process(
    config: Path | None, env: dict[str, str] | None = None
) -> AsyncIterator[Process]:
    args = ["--config", str(config)] if config is not None else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways",
        "run",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**clean_env(), **(env or {})},
    )
    try:
        yield Process(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- port in use


@pytest.mark.parametrize("taken", SERVERS)
async def test_a_taken_port_exits_non_zero_naming_the_port(tmp_path: Path, taken: str) -> None:
    with held_port() as port:
        others = dict(zip([s for s in SERVERS if s != taken], free_ports(2), strict=True))
        config = write_config(tmp_path, {**others, taken: port})
        async with daemon_process(config) as process:
            code, logs = await process.finish()
    assert code != 0
    # It gives up at once: one attempt, no retry (how long that takes is the machine's).
    [line] = [entry for entry in logs if entry.get("event") == "port_in_use"]
    assert line["port"] == port
    assert line["level"] == "error"
    assert not [entry for entry in logs if entry.get("event") == "daemon_ready"]
    assert all(port_is_free(p) for p in others.values())


async def test_a_taken_port_leaves_nothing_listening_in_process() -> None:
    with held_port() as port:
        first, second = free_ports(2)
        config = loopback_config(first, second, port)
        daemon = Daemon(config)
        with pytest.raises(AddressInUse) as caught:
            await daemon.start()
        assert (caught.value.server, caught.value.port) == ("risk", port)
        assert port_is_free(first) and port_is_free(second)


async def test_an_address_that_cannot_be_bound_exits_cleanly_naming_it() -> None:
    first, second, third = free_ports(3)
    valid = loopback_config(first, second, third)
    # 192.0.2.1 (TEST-NET-1) is never an address of this machine. model_copy
    # skips validation, which would (rightly) ask for tokens beyond loopback.
    unbindable = ServerConfig(host="192.0.2.1", port=second, path="/ws")
    config = valid.model_copy(
        update={"servers": valid.servers.model_copy(update={"market_data": unbindable})}
    )
    with structlog.testing.capture_logs() as logs:
        code = await serve_until_signalled(Daemon(config))
    assert code == 2
    [line] = [entry for entry in logs if entry["event"] == "bind_failed"]
    assert (line["server"], line["host"], line["port"]) == ("market_data", "192.0.2.1", second)
    assert line["error"]
    assert not [entry for entry in logs if entry["event"] == "daemon_ready"]
    assert port_is_free(first)


def loopback_config(orchestrator: int, market_data: int, risk: int) -> DaemonConfig:
    return test_config(
        servers={
            "orchestrator": {"port": orchestrator, "path": "/"},
            "market_data": {"port": market_data, "path": "/ws"},
            "risk": {"port": risk, "path": "/ws"},
        }
    )


async def test_servers_bind_loopback_by_default() -> None:
    config = test_config()
    assert all(server.host == "127.0.0.1" for _, server in config.servers)
    daemon = Daemon(config)
    await daemon.start()
    try:
        for server in daemon.servers.values():
            assert server._server is not None
            hosts = {sock.getsockname()[0] for sock in server._server.sockets}
            assert hosts == {"127.0.0.1"}
    finally:
        await daemon.stop()


# ---------------------------------------------------------------- run and signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_closes_clients_with_1001_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with daemon_process(write_config(tmp_path, ports)) as process:
        ready = await process.wait_for_log("daemon_ready")
        assert {name: ready[name] for name in SERVERS} == ports

        clients = []
        async with AsyncExitStack() as stack:
            for name in SERVERS:
                url = f"ws://127.0.0.1:{ports[name]}{PATHS[name]}"
                client = Client(await stack.enter_async_context(connect(url)))
                await client.read_snapshot()
                assert client.snapshot[0]["type"] == "execution_service_status"
                reply = await client.request({"type": "get_strategies"})
                assert reply["type"] == "strategy_list"
                await client.send("{not json")
                assert (await client.recv())["data"]["code"] == "invalid_json"
                clients.append(client)

            process.proc.send_signal(signum)
            for client in clients:
                with pytest.raises(ConnectionClosed) as caught:
                    await client.recv()
                assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001

        code, logs = await process.finish()
    assert code == 0
    assert all(port_is_free(p) for p in ports.values())
    events = [entry["event"] for entry in logs]
    assert events.index("daemon_stopping") < events.index("daemon_stopped")
    assert logs[-1]["event"] == "daemon_stopped" and logs[-1]["exit_code"] == 0


async def test_run_without_a_file_takes_ports_from_the_environment() -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    env = {f"ORCHESTRATOR_SERVERS__{name.upper()}__PORT": str(p) for name, p in ports.items()}
    env["ORCHESTRATOR_LOGGING__FORMAT"] = "json"
    async with daemon_process(None, env) as process:
        ready = await process.wait_for_log("daemon_ready")
        assert {name: ready[name] for name in SERVERS} == ports
        process.proc.send_signal(signal.SIGTERM)
        code, _ = await process.finish()
    assert code == 0
    # With no file the journal goes to the default state directory: the test's own.
    assert (Path(os.environ["XDG_STATE_HOME"]) / "orchestrator" / "journal.sqlite3").exists()


async def test_every_server_answers_on_its_path_and_404s_elsewhere(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with daemon_process(write_config(tmp_path, ports)) as process:
        await process.wait_for_log("daemon_ready")
        for name in SERVERS:
            base = f"ws://127.0.0.1:{ports[name]}"
            async with connect(base + PATHS[name]) as ws:
                client = Client(ws)
                await client.read_snapshot()
                reply = await client.request({"type": "get_active_strategies"})
                assert reply["type"] == "strategy_status_list"
            wrong = "/ws" if PATHS[name] == "/" else "/"
            with pytest.raises(InvalidStatus) as caught:
                async with connect(base + wrong):
                    pass
            assert caught.value.response.status_code == 404
        process.proc.send_signal(signal.SIGTERM)
        code, _ = await process.finish()
    assert code == 0


async def test_one_log_line_per_connection_and_per_command(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with daemon_process(write_config(tmp_path, ports)) as process:
        await process.wait_for_log("daemon_ready")
        async with connect(f"ws://127.0.0.1:{ports['risk']}/ws") as ws:
            client = Client(ws)
            await client.read_snapshot()
            await client.request({"type": "start_strategy", "id": "strategy-123"})
            await client.request({"type": "pause_strategy", "id": "nope"})
        async with connect(f"ws://127.0.0.1:{ports['orchestrator']}/") as ws:
            client = Client(ws)
            await client.read_snapshot()
            await client.request({"type": "get_active_strategies"})
        process.proc.send_signal(signal.SIGTERM)
        code, logs = await process.finish()
    assert code == 0

    listening = [entry for entry in logs if entry["event"] == "server_listening"]
    assert sorted((e["server"], e["port"], e["host"]) for e in listening) == sorted(
        (name, port, "127.0.0.1") for name, port in ports.items()
    )

    opened = [entry for entry in logs if entry["event"] == "connection_opened"]
    closed = [entry for entry in logs if entry["event"] == "connection_closed"]
    commands = [entry for entry in logs if entry["event"] == "command"]
    assert [(e["server"], e["conn_id"]) for e in opened] == [
        (e["server"], e["conn_id"]) for e in closed
    ]
    assert [e["server"] for e in opened] == ["risk", "orchestrator"]
    assert len({e["conn_id"] for e in opened}) == 2
    assert all(e["code"] == 1000 for e in closed)

    risk_conn, orchestrator_conn = (e["conn_id"] for e in opened)
    assert [(e["server"], e["conn_id"], e["type"]) for e in commands] == [
        ("risk", risk_conn, "start_strategy"),
        ("risk", risk_conn, "pause_strategy"),
        ("orchestrator", orchestrator_conn, "get_active_strategies"),
    ]
    assert commands[0]["strategy_id"] == "strategy-123"
    assert commands[0]["outcome"] == "ok"
    assert commands[1]["outcome"] == "unknown_strategy"
    assert all(e["request_id"] for e in commands)
    # Never a line per outbound message: the strategy_started reply and its
    # broadcast, the snapshots and the replies left no lines of their own.
    assert len([e for e in logs if e.get("conn_id")]) == len(opened) + len(closed) + len(commands)


async def test_a_second_run_on_the_same_state_dir_names_the_running_one(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with daemon_process(write_config(tmp_path, ports)) as first:
        await first.wait_for_log("daemon_ready")
        other_ports = dict(zip(SERVERS, free_ports(3), strict=True))
        (tmp_path / "second").mkdir()
        config = write_config(tmp_path / "second", other_ports)
        # The same state directory as the first one, other ports.
        text = config.read_text(encoding="utf-8").replace(
            str(tmp_path / "second" / "state"), str(tmp_path / "state")
        )
        config.write_text(text, encoding="utf-8")
        async with daemon_process(config) as second:
            code, logs = await second.finish()
        first.proc.send_signal(signal.SIGTERM)
        await first.finish()
    assert code == 2
    [line] = [entry for entry in logs if entry.get("event") == "already_running"]
    assert line["pid"] == first.proc.pid
    assert line["state_dir"] == str(tmp_path / "state")
    assert f"another orchestrator (pid {first.proc.pid}) is running" in line["error"]


async def test_a_daemon_killed_mid_backtest_leaves_no_worker_behind(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    long_run = {
        "type": "run_backtest",
        "strategyId": "strategy-123",
        "source": {"kind": "synthetic", "resolution": "1s", "durationSeconds": 5 * 86_400},
    }
    async with daemon_process(write_config(tmp_path, ports)) as process:
        await process.wait_for_log("daemon_ready")
        async with connect(f"ws://127.0.0.1:{ports['orchestrator']}/") as ws:
            client = Client(ws)
            await client.read_snapshot()
            await client.send(long_run)
            async with asyncio.timeout(STARTUP_TIMEOUT):
                while (await client.recv(STARTUP_TIMEOUT))["type"] != "backtest_progress":
                    pass
        # The worker process is computing the job when the daemon dies.
        process.proc.kill()
        assert process.proc.stderr is not None
        # Its stderr ends only once every process holding it has gone, the worker too.
        async with asyncio.timeout(EXIT_TIMEOUT):
            await process.proc.stderr.read()
            await process.proc.wait()
