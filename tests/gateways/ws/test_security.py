"""Strangers through real servers: bearer tokens from the config, the environment
or a rotating file, by header (refused with HTTP 401 before the upgrade) or by
a first auth message (refused with 1008 before any data), tokens kept out of
logs, the Origin allow-list (403) and TLS."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
import trustme
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.typing import Origin

from gateways.config import DaemonConfig
from gateways.ws.auth import RefusalLog
from orchestrator.model.validation import describe_validation_errors
from tests.support import TestDaemon, report, running_daemon, test_config

TOKEN = "tok-alpha-5f1c9e-8b3d27a4e0"
OTHER = "tok-beta-77d02a-c41f9e6b3a82"
WRONG = "tok-guess-000000-1a2b3c4d5e"


def secured(**security: Any) -> DaemonConfig:
    return test_config(security={"tokens": [TOKEN], **security})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def snapshot_of(ws: ClientConnection) -> list[str]:
    """The two snapshot messages every accepted connection gets first."""
    messages = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
    assert all(m.get("snapshot") is True for m in messages)
    return [m["type"] for m in messages]


async def refused_by_message(ws: ClientConnection) -> tuple[int | None, int]:
    """Read until the server closes: its close code and how many messages came first."""
    received = 0
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
                received += 1
    return (caught.value.rcvd.code if caught.value.rcvd is not None else None), received


async def header_status(daemon: TestDaemon, token: str) -> int:
    """101 if a header token is accepted, else the HTTP status of the refusal."""
    try:
        async with connect(daemon.url(), additional_headers=bearer(token)) as ws:
            await snapshot_of(ws)
            return 101
    except InvalidStatus as refusal:
        return refusal.response.status_code


# ---------------------------------------------------------------- header


async def test_a_good_header_token_is_accepted_and_a_bad_one_gets_401_before_the_upgrade() -> None:
    async with running_daemon(secured()) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        async with connect(daemon.url(), additional_headers=bearer(TOKEN)) as ws:
            assert await snapshot_of(ws) == ["execution_service_status", "strategy_status_list"]
        with pytest.raises(InvalidStatus) as caught:
            await connect(daemon.url(), additional_headers=bearer(WRONG))
        assert caught.value.response.status_code == 401
        assert caught.value.response.body == b"Invalid token\n"
        assert server.client_count == 0


@pytest.mark.parametrize("server", ["market_data", "risk"])
async def test_every_server_checks_tokens(server: str) -> None:
    async with running_daemon(secured()) as daemon:
        async with connect(daemon.url(server), additional_headers=bearer(TOKEN)) as ws:
            await snapshot_of(ws)
        with pytest.raises(InvalidStatus) as caught:
            await connect(daemon.url(server), additional_headers=bearer(WRONG))
        assert caught.value.response.status_code == 401
        async with connect(daemon.url(server)) as ws:
            await ws.send('{"type": "get_strategies"}')
            assert await refused_by_message(ws) == (1008, 0)


# ---------------------------------------------------------------- first message


async def test_a_good_auth_message_opens_the_stream() -> None:
    async with running_daemon(secured()) as daemon, connect(daemon.url()) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": TOKEN}).decode())
        await snapshot_of(ws)
        await ws.send('{"type": "get_strategies", "requestId": 1}')
        assert orjson.loads(await ws.recv())["type"] == "strategy_list"


@pytest.mark.parametrize(
    "first",
    [
        pytest.param({"type": "auth", "token": WRONG}, id="bad_token"),
        pytest.param({"type": "auth"}, id="no_token"),
        pytest.param({"type": "auth", "token": 12345}, id="token_not_a_string"),
        pytest.param({"type": "get_strategies", "requestId": 1}, id="command_first"),
        pytest.param({"type": "auth", "token": ""}, id="empty_token"),
        pytest.param("not json", id="not_json"),
        pytest.param(b'{"type": "auth", "token": "' + WRONG.encode() + b'"}', id="binary"),
    ],
)
async def test_a_bad_or_missing_auth_message_closes_1008_before_any_data(first: Any) -> None:
    async with running_daemon(secured()) as daemon, connect(daemon.url()) as ws:
        if isinstance(first, dict):
            first = orjson.dumps(first).decode()
        await ws.send(first)
        assert await refused_by_message(ws) == (1008, 0)
        assert daemon.daemon.servers["orchestrator"].client_count <= 1


async def test_a_client_that_never_authenticates_is_closed_1008_after_the_auth_timeout() -> None:
    async with running_daemon(secured(auth_timeout=0.2)) as daemon, connect(daemon.url()) as ws:
        started = time.perf_counter()
        code, received = await refused_by_message(ws)
        waited = time.perf_counter() - started
        assert (code, received) == (1008, 0)
        assert (ws.close_reason or "").startswith("authentication required")
        assert 0.15 < waited < 2.0


async def test_a_resume_url_does_not_bypass_authentication() -> None:
    async with running_daemon(secured()) as daemon:
        url = f"{daemon.url()}?lastSeq=0&epoch={daemon.daemon.epoch}"
        async with connect(url) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": WRONG}).decode())
            assert await refused_by_message(ws) == (1008, 0)


# ---------------------------------------------------------------- where tokens come from


async def test_tokens_from_the_environment_replace_the_config_and_are_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SECURITY__TOKENS", f'["{OTHER}", "{WRONG}"]')
    config = secured()
    assert [t.get_secret_value() for t in config.security.tokens] == [OTHER, WRONG]
    assert OTHER not in repr(config) and OTHER not in str(config.model_dump())
    async with running_daemon(config) as daemon:
        assert await header_status(daemon, OTHER) == 101
        assert await header_status(daemon, WRONG) == 101
        assert await header_status(daemon, TOKEN) == 401  # the environment won


async def test_a_tokens_file_rotates_without_a_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# one token per line\n{TOKEN}\n")
    config = test_config(security={"tokens_file": tokens})
    async with running_daemon(config) as daemon:
        assert await header_status(daemon, TOKEN) == 101
        assert await header_status(daemon, OTHER) == 401
        tokens.write_text(f"{OTHER}\n{WRONG}-rotated\n")  # a new size: the change is seen
        assert await header_status(daemon, OTHER) == 101
        assert await header_status(daemon, f"{WRONG}-rotated") == 101
        assert await header_status(daemon, TOKEN) == 401
        async with connect(daemon.url()) as ws:  # and by message
            await ws.send(orjson.dumps({"type": "auth", "token": OTHER}).decode())
            await snapshot_of(ws)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "empty or blank"),
        ("   ", "empty or blank"),
        ("x", "1 characters, fewer than 24"),
        ("a" * 40, "1 different characters"),
    ],
)
def test_an_empty_blank_short_or_uniform_token_is_refused_at_load(token: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as caught:
        test_config(security={"tokens": [token]})
    assert "secrets.token_urlsafe(32)" in str(caught.value)  # says how to make one


def test_a_refused_token_is_not_in_the_error() -> None:
    weak = "sw0rdfish-0123456789"  # 20 characters: refused, and must not be shown
    with pytest.raises(ValidationError) as caught:
        test_config(security={"tokens": [weak]})
    assert weak not in str(caught.value)
    assert not [line for line in describe_validation_errors(caught.value) if weak in line]


async def test_a_weak_token_in_the_tokens_file_is_never_accepted(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"short\n{TOKEN}\n")
    async with running_daemon(test_config(security={"tokens_file": tokens})) as daemon:
        assert await header_status(daemon, TOKEN) == 101
        assert await header_status(daemon, "short") == 401


# ---------------------------------------------------------------- beyond loopback


def test_binding_beyond_loopback_without_tokens_is_a_config_error() -> None:
    servers = {
        "orchestrator": {"host": "0.0.0.0", "port": 0, "path": "/"},
        "market_data": {"port": 0, "path": "/ws"},
        "risk": {"port": 0, "path": "/ws"},
    }
    with pytest.raises(ValidationError) as caught:
        test_config(servers=servers)
    message = str(caught.value)
    assert "servers.orchestrator (0.0.0.0) binds beyond loopback" in message
    assert "security.tokens" in message
    assert test_config(servers=servers, security={"tokens": [TOKEN]}).security.has_tokens


async def test_a_server_beyond_loopback_requires_a_token() -> None:
    servers = {
        "orchestrator": {"host": "0.0.0.0", "port": 0, "path": "/"},
        "market_data": {"port": 0, "path": "/ws"},
        "risk": {"port": 0, "path": "/ws"},
    }
    config = test_config(servers=servers, security={"tokens": [TOKEN], "auth_timeout": 0.2})
    async with running_daemon(config) as daemon:
        assert await header_status(daemon, TOKEN) == 101
        assert await header_status(daemon, WRONG) == 401
        async with connect(daemon.url()) as ws:
            assert await refused_by_message(ws) == (1008, 0)


# ---------------------------------------------------------------- logs


async def test_tokens_never_appear_in_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Good and bad tokens, by header, by message and from a file, with every
    logger (structlog and the standard library's, websockets' included) at DEBUG."""
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{OTHER}\n")
    caplog.set_level(logging.DEBUG)
    config = secured(tokens_file=tokens_file, auth_timeout=0.2)
    with structlog.testing.capture_logs() as entries:
        async with running_daemon(config) as daemon:
            for token in (TOKEN, OTHER, WRONG):
                await header_status(daemon, token)
                async with connect(daemon.url()) as ws:
                    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
                    with pytest.raises(ConnectionClosed):
                        async with asyncio.timeout(5):
                            while True:
                                message = orjson.loads(await ws.recv())
                                if message["type"] == "strategy_status_list":
                                    await ws.close()
    structured = "\n".join(repr(entry) for entry in entries)
    # The daemon's records; the test's own websockets client logs what it sends.
    records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    stdlib = "\n".join(f"{r.name}: {r.getMessage()}" for r in records)
    events = {entry["event"] for entry in entries}
    report(
        capsys,
        "tokens in logs",
        structlog_lines=len(entries),
        stdlib_lines=len(records),
        token_occurrences=sum(
            text.count(token) for text in (structured, stdlib) for token in (TOKEN, OTHER, WRONG)
        ),
    )
    assert {"auth_refused", "authenticated", "tokens_file_loaded"} <= events
    for token in (TOKEN, OTHER, WRONG):
        assert token not in structured
        assert token not in stdlib


# ---------------------------------------------------------------- origins


async def test_only_allowed_origins_and_non_browsers_may_connect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = test_config(security={"allowed_origins": ["https://app.example.com"]})
    async with running_daemon(config) as daemon:
        async with connect(daemon.url(), origin=Origin("https://app.example.com")) as ws:
            await snapshot_of(ws)
        async with connect(daemon.url()) as ws:  # no Origin header: not a browser
            await snapshot_of(ws)
        refused = []
        for origin in ("https://evil.example.com", "http://app.example.com", "null"):
            with pytest.raises(InvalidStatus) as caught:
                await connect(daemon.url(), origin=Origin(origin))
            refused.append(caught.value.response.status_code)
        report(capsys, "origins", allowed="https://app.example.com", refused=refused)
        assert refused == [403, 403, 403]
        assert daemon.daemon.servers["orchestrator"].client_count == 0


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_config(ca: trustme.CA, directory: Path, **security: Any) -> DaemonConfig:
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    return test_config(security={"tls_cert": cert, "tls_key": key, **security})


def wss(daemon: TestDaemon, server: str = "orchestrator") -> str:
    return daemon.url(server).replace("ws://127.0.0.1", "wss://localhost", 1)


async def test_tls_serves_wss_to_clients_that_trust_the_certificate(
    ca: trustme.CA, tmp_path: Path
) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with running_daemon(tls_config(ca, tmp_path)) as daemon:
        for server in ("orchestrator", "market_data", "risk"):
            async with connect(wss(daemon, server), ssl=trusting) as ws:
                await snapshot_of(ws)
                await ws.send('{"type": "get_strategies", "requestId": 1}')
                assert orjson.loads(await ws.recv())["type"] == "strategy_list"
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(wss(daemon), ssl=ssl.create_default_context())
        with pytest.raises((InvalidMessage, ConnectionError, EOFError)):
            await connect(daemon.url())  # plain ws:// to a TLS port


async def test_tls_and_tokens_together(ca: trustme.CA, tmp_path: Path) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with running_daemon(tls_config(ca, tmp_path, tokens=[TOKEN])) as daemon:
        async with connect(wss(daemon), ssl=trusting, additional_headers=bearer(TOKEN)) as ws:
            await snapshot_of(ws)
        with pytest.raises(InvalidStatus) as caught:
            await connect(wss(daemon), ssl=trusting, additional_headers=bearer(WRONG))
        assert caught.value.response.status_code == 401


# ---------------------------------------------------------------- what a stranger may see


def lan_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None."""
    for target in ("10.255.255.255", "192.0.2.1", "198.51.100.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((target, 9))  # a UDP connect only picks the route
            except OSError:
                continue
            address = str(probe.getsockname()[0])
            if not address.startswith("127."):
                return address
    return None


def http_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers=bearer(token) if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as refusal:
        return refusal.code


async def test_metrics_need_a_token_or_loopback_and_health_does_not() -> None:
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no network address besides loopback")
    servers = {
        "orchestrator": {"host": "0.0.0.0", "port": 0, "path": "/"},
        "market_data": {"port": 0, "path": "/ws"},
        "risk": {"port": 0, "path": "/ws"},
    }
    async with running_daemon(test_config(servers=servers, security={"tokens": [TOKEN]})) as d:
        port = d.daemon.servers["orchestrator"].port
        stranger = f"http://{lan}:{port}"
        statuses = await asyncio.gather(
            asyncio.to_thread(http_status, f"{stranger}/metrics"),
            asyncio.to_thread(http_status, f"{stranger}/metrics", TOKEN),
            asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/metrics"),
            asyncio.to_thread(http_status, f"{stranger}/healthz"),
        )
    assert statuses == [401, 200, 200, 200]


async def test_a_stranger_learns_which_jobs_exist_only_after_authenticating() -> None:
    unknown = "550e8400-e29b-41d4-a716-446655440000"
    async with running_daemon(secured(auth_timeout=1.0)) as daemon:
        path = f"/api/ws/jobs/{unknown}"
        # Without a token the upgrade is the same for a job that exists and one that
        # does not; a wrong auth message is refused as everywhere.
        async with connect(daemon.url(path=path)) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": WRONG}).decode())
            with pytest.raises(ConnectionClosed) as refused:
                await ws.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
        async with connect(daemon.url(path=path)) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": TOKEN}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
        with pytest.raises(InvalidStatus) as by_header:
            async with connect(daemon.url(path=path), additional_headers=bearer(TOKEN)):
                pass
        assert by_header.value.response.status_code == 404


# ---------------------------------------------------------------- strangers and slots


async def test_strangers_cannot_take_the_slots_of_clients_with_a_token() -> None:
    config = secured(auth_timeout=30.0)
    config = config.model_copy(
        update={"connections": config.connections.model_copy(update={"max_connections": 20})}
    )
    assert config.connections.unauthenticated_limit == 2
    async with (
        running_daemon(config) as daemon,
        connect(daemon.url()) as first,  # two silent strangers
        connect(daemon.url()),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(daemon.url()):
                pass
        assert refused.value.response.status_code == 503
        assert b"waiting to authenticate" in refused.value.response.body
        assert await header_status(daemon, TOKEN) == 101  # a token always gets in
        await first.send(orjson.dumps({"type": "auth", "token": TOKEN}).decode())
        await snapshot_of(first)  # authenticated: it no longer waits
        async with connect(daemon.url()) as third:
            await third.send(orjson.dumps({"type": "auth", "token": TOKEN}).decode())
            await snapshot_of(third)


async def test_one_address_may_hold_only_a_few_unauthenticated_connections() -> None:
    config = secured(auth_timeout=30.0)
    limits = {"max_unauthenticated": 5, "max_unauthenticated_per_address": 1}
    config = config.model_copy(update={"connections": config.connections.model_copy(update=limits)})
    async with running_daemon(config) as daemon, connect(daemon.url()):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(daemon.url()):
                pass
        assert refused.value.response.status_code == 503


def test_unauthenticated_room_must_leave_room_for_tokens() -> None:
    with pytest.raises(ValidationError, match="leave room for clients with a token"):
        test_config(connections={"max_connections": 10, "max_unauthenticated": 10})


def test_refusals_are_logged_a_few_lines_per_interval_with_a_count() -> None:
    now = [0.0]
    with structlog.testing.capture_logs() as logs:
        refusals = RefusalLog(
            structlog.get_logger("test"), interval=10.0, burst=3, now=lambda: now[0]
        )
        for _ in range(100):
            refusals.warning("auth_refused", how="message")
        now[0] = 10.0
        refusals.warning("auth_refused", how="message")
    assert len(logs) == 4
    assert "suppressed" not in logs[0] and logs[3]["suppressed"] == 97
