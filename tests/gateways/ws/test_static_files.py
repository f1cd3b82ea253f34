"""The dashboard's files over real HTTP on the orchestrator port, beside its WebSockets.

Requests are written by hand on a TCP connection, so the paths reach the
server exactly as written (no client normalises ``..`` away).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

from gateways.ws.static_files import FILES, PAGE_POLICY, StaticFiles, content_type, is_upgrade
from tests.support import Client, TestDaemon, running_daemon

TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "backtests.css": "text/css; charset=utf-8",
    "backtests.js": "text/javascript; charset=utf-8",
    "sweeps.css": "text/css; charset=utf-8",
    "sweeps.js": "text/javascript; charset=utf-8",
    "open-orders.js": "text/javascript; charset=utf-8",
    "websocket-service.js": "text/javascript; charset=utf-8",
    "websocket-service.d.ts": "application/typescript; charset=utf-8",
    "vendor/lightweight-charts.standalone.production.js": "text/javascript; charset=utf-8",
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_get(port: int, path: str, *headers: str) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers, "", ""]
        writer.write("\r\n".join(request).encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5.0)  # the server closes after replying
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines)
    return Reply(int(status_line.split(" ")[1]), {k.lower(): v for k, v in fields.items()}, body)


def package_file(name: str) -> bytes:
    return (resources.files("gateways") / "web" / name).read_bytes()


def port(daemon: TestDaemon, server: str = "orchestrator") -> int:
    return daemon.daemon.servers[server].port


async def test_get_slash_without_upgrade_is_the_dashboard() -> None:
    async with running_daemon() as daemon:
        for path in ("/", "/?symbol=MSFT&backoffMaxMs=500"):
            reply = await http_get(port(daemon), path)
            assert reply.status == 200
            assert reply.headers["content-type"] == "text/html; charset=utf-8"
            assert reply.headers["content-security-policy"] == PAGE_POLICY
            assert reply.headers["x-content-type-options"] == "nosniff"
            assert reply.body == package_file("index.html")
            assert b'src="/static/dashboard.js"' in reply.body


@pytest.mark.parametrize("name", FILES)
async def test_each_file_is_served_with_its_type_and_a_validator(name: str) -> None:
    async with running_daemon() as daemon:
        reply = await http_get(port(daemon), f"/static/{name}")
        assert reply.status == 200
        assert reply.headers["content-type"] == TYPES[name]
        assert int(reply.headers["content-length"]) == len(reply.body)
        assert reply.body == package_file(name)
        assert reply.headers["cache-control"] == "no-cache"
        etag = reply.headers["etag"]
        again = await http_get(port(daemon), f"/static/{name}", f"If-None-Match: {etag}")
        assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag)
        stale = await http_get(port(daemon), f"/static/{name}", 'If-None-Match: "old"')
        assert stale.status == 200 and stale.body == reply.body


async def test_config_json_gives_the_bound_ports_paths_and_symbols() -> None:
    async with running_daemon() as daemon:
        reply = await http_get(port(daemon), "/static/config.json")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["cache-control"] == "no-store"
        config = orjson.loads(reply.body)
        assert config["servers"] == {
            name: {"port": server.port, "path": getattr(daemon.daemon.config.servers, name).path}
            for name, server in daemon.daemon.servers.items()
        }
    assert config["symbols"] == ["AAPL", "AMZN", "GOOG", "MSFT", "TSLA"]
    assert config["tls"] is False and config["authRequired"] is False
    # The start dialog checks what start_strategy will: the daemon's own bounds.
    assert config["startConfig"]["numbers"]["stopLossPercentage"] == {
        "minimum": 0,
        "exclusiveMaximum": 1,
        "type": "number",
    }
    assert "1s" in config["startConfig"]["resolutions"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/vendor/",
        "/static/vendor/LICENSE",
        "/static/",
        "/static/../pyproject.toml",
        "/static/../../pyproject.toml",
        "/static/..%2F..%2Fpyproject.toml",
        "/static/%2e%2e/server.py",
        "/static/%2e%2e%2fserver.py",
        "/static//etc/passwd",
        "/static/web/index.html",
        "/static/./index.html",
        "/static/index.html/",
        "/static/INDEX.HTML",
        "/static/../__init__.py",
        "/static/..\\server.py",
    ],
)
async def test_unknown_names_and_traversal_attempts_are_404(path: str) -> None:
    async with running_daemon() as daemon:
        reply = await http_get(port(daemon), path)
        assert reply.status == 404
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert b"the dashboard is at /" in reply.body


@pytest.mark.parametrize("path", ["/index.html", "/dashboard.js", "/web/index.html"])
async def test_other_paths_keep_their_404(path: str) -> None:
    async with running_daemon() as daemon:
        reply = await http_get(port(daemon), path)
        assert reply.status == 404
        assert b"No WebSocket endpoint" in reply.body


@pytest.mark.parametrize("server", ["market_data", "risk"])
async def test_only_the_orchestrator_server_serves_the_dashboard(server: str) -> None:
    async with running_daemon() as daemon:
        for path in ("/", "/static/index.html"):
            reply = await http_get(port(daemon, server), path)
            assert reply.status == 404


async def test_websockets_on_slash_work_as_before() -> None:
    async with running_daemon() as daemon:
        async with daemon.client() as client:
            assert [m["type"] for m in client.snapshot] == [
                "execution_service_status",
                "strategy_status_list",
            ]
            reply = await client.request({"type": "get_strategies"})
            assert reply["type"] == "strategy_list"
        async with connect(daemon.url() + "?lastSeq=0&epoch=1") as ws:
            assert (await Client(ws).recv())["type"] == "resync_required"
        with pytest.raises(InvalidStatus) as caught:
            async with connect(daemon.url(path="/static/index.html")):
                pass
        assert caught.value.response.status_code == 404
        health = await http_get(port(daemon), "/healthz")
        assert health.status == 200


def request(path: str, **headers: str) -> Request:
    return Request(path, Headers(headers))


def test_an_upgrade_is_left_to_websockets_whatever_its_spelling() -> None:
    files = StaticFiles({}, lambda: {})
    for value in ("websocket", "WebSocket", "h2c, websocket"):
        assert is_upgrade(request("/", Upgrade=value))
        assert files.respond(request("/", Upgrade=value)) is None
    assert not is_upgrade(request("/"))
    assert not is_upgrade(request("/", Upgrade="h2c"))
    assert files.respond(request("/api/ws/events")) is None


def test_content_types_by_suffix() -> None:
    assert content_type("a.d.ts") == "application/typescript; charset=utf-8"
    assert content_type("a.js") == "text/javascript; charset=utf-8"
    with pytest.raises(ValueError):
        content_type("a.exe")
