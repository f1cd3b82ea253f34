"""Fuzz the three servers with hypothesis: at least 10,000 malformed and hostile
frames through real connections. Every frame is answered exactly once or the
connection is closed with a documented code; nothing crashes, the registry is
unchanged and the daemon keeps serving.

The daemon runs on its own event loop in a background thread, and the test
talks to it with websockets' synchronous client, so hypothesis drives plain
functions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gateways.config import DaemonConfig
from orchestrator.model.events import ExecutionStatusChanged
from orchestrator.strategy.config import default_catalog
from tests.support import START, TestDaemon, report, running_daemon, test_config

T = TypeVar("T")

SERVERS = ("orchestrator", "market_data", "risk")
MAX_MESSAGE_BYTES = 65536
EXAMPLES = 700
FRAMES_PER_EXAMPLE = (5, 8)
"""Each generated frame goes to all three servers: at least 700 * 5 * 3 = 10,500."""
MIN_FRAMES = 10_000
DOCUMENTED_CLOSES = {
    1007: "text frame that is not UTF-8",
    1009: "frame over max_message_bytes",
}
CATALOG_IDS = {entry.id for entry in default_catalog()}
EPOCH = int(START * 1000)
"""The test daemon's epoch (its manual clock starts at START)."""


# ---------------------------------------------------------------- the daemon in a thread


class ThreadedDaemon:
    """A test daemon serving from its own event loop in a background thread."""

    def __init__(self, config: DaemonConfig) -> None:
        self._config = config
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.daemon: TestDaemon | None = None
        self.log_entries: list[MutableMapping[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name="fuzzed-daemon", daemon=True)

    def __enter__(self) -> ThreadedDaemon:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError("the daemon did not start") from self._failure
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_daemon(self._config) as daemon:
            await settle(daemon)
            self.daemon = daemon
            self._ready.set()
            await self._stop.wait()

    def call(self, function: Callable[[TestDaemon], T]) -> T:
        """Run ``function`` on the daemon's loop (its state is not thread-safe)."""
        assert self._loop is not None and self.daemon is not None
        daemon = self.daemon

        async def run() -> T:
            return function(daemon)

        coroutine: Coroutine[Any, Any, T] = run()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)

    def url(self, server: str) -> str:
        return self.call(lambda daemon: daemon.url(server))


async def settle(daemon: TestDaemon) -> None:
    """Until the start-up broadcasts have gone out (delivery may be asynchronous), so
    that the fuzzing clients get nothing but answers."""
    execution = daemon.daemon.core.execution
    async with daemon.client() as witness:
        daemon.daemon.bus.publish(
            ExecutionStatusChanged(execution.status, daemon.clock.now(), "settled")
        )
        while (await witness.recv())["data"].get("reason") != "settled":
            pass


# ---------------------------------------------------------------- frames


@dataclass(frozen=True)
class Binary:
    data: bytes


@dataclass(frozen=True)
class BadUtf8:
    data: bytes


Frame = str | Binary | BadUtf8

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 1e308, -0.0, EPOCH])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
HOSTILE_IDS = st.text(max_size=80).filter(lambda s: s not in CATALOG_IDS) | st.sampled_from(
    [
        "",
        " strategy-123",
        "strategy-123 ",
        "STRATEGY-123",
        "strategy-123\x00",
        "strategy-123\n",
        "../strategy-123",
        "strategy\u2010123",  # a Unicode hyphen
        "x" * 65,
        "x" * 10_000,
        "'; DROP TABLE strategies; --",
        "{{7*7}}",
        "%s%s%s%n",
    ]
)
REQUEST_IDS = JSON | st.text(min_size=1, max_size=128) | st.text(min_size=129, max_size=300)
SYMBOLS = (
    st.lists(
        st.sampled_from(["AAPL", "msft", "GOOG", "NOPE", "", "A" * 21, "AAPL\x00"]), max_size=5
    )
    | JSON
)
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "get_active_strategies": {},
    "get_strategies": {},
    "start_strategy": {
        "id": HOSTILE_IDS | JSON,
        "config": st.fixed_dictionaries(
            {},
            optional={
                "symbols": SYMBOLS,
                "dataResolution": st.sampled_from(["1m", "7m", ""]) | JSON,
                "realTrading": JSON,
                "maxPositionValue": JSON,
                "maxOrdersPerMinute": JSON,
                "stopLossPercentage": JSON,
                "leverage": JSON,
            },
        )
        | JSON,
    },
    "stop_strategy": {"id": HOSTILE_IDS | JSON},
    "pause_strategy": {"id": HOSTILE_IDS | JSON},
    "resume": {
        "lastSeq": st.integers(0, 2) | JSON,
        "epoch": st.just(EPOCH) | st.sampled_from([EPOCH - 1, 0]) | JSON,
    },
    "subscribe": {
        "symbols": st.lists(st.sampled_from(["AAPL", "msft", "GOOG"]), min_size=1, max_size=3)
        | SYMBOLS,
        "resolution": st.sampled_from(["1s", "1m", "9y"]) | JSON,
    },
    "unsubscribe": {"symbols": SYMBOLS, "resolution": JSON},
    "get_risk_status": {},
    "halt_trading": {"reason": JSON, "blockAll": JSON},
    "resume_trading": {"reason": JSON},
    "auth": {"token": JSON},
}
STATE_CHANGING = {"halt_trading", "resume_trading"}
"""Valid ones would change what other clients see: an extra field keeps them invalid."""


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    """A command of every type the servers know (and some they don't), each field
    present, missing or of the wrong type, with a hostile requestId."""
    known = draw(st.integers(0, 9)) < 8
    kind = draw(st.sampled_from(sorted(FIELDS)) if known else st.text(max_size=20) | JSON)
    message: dict[str, Any] = {"type": kind}
    fields = FIELDS.get(kind, {}) if isinstance(kind, str) else {}
    for name, values in fields.items():
        if draw(st.integers(0, 4)):  # mostly present
            message[name] = draw(values)
    if draw(st.booleans()):
        message["requestId"] = draw(REQUEST_IDS)
    if (isinstance(kind, str) and kind in STATE_CHANGING) or draw(st.integers(0, 9)) == 0:
        message[draw(st.text(min_size=1, max_size=10))] = draw(JSON)
    return message


def encode(value: Any) -> str:
    """JSON text from the standard library: big integers and NaN pass through."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


@st.composite
def duplicate_keys(draw: st.DrawFn) -> str:
    keys = st.sampled_from(["type", "id", "requestId", "config", "lastSeq", "epoch", "token"])
    pairs = draw(st.lists(st.tuples(keys, JSON | st.sampled_from(sorted(FIELDS))), max_size=6))
    return "{" + ",".join(f"{encode(k)}:{encode(v)}" for k, v in pairs) + "}"


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 20_000))
    inner = "[" * depth + "]" * depth
    if draw(st.booleans()):
        # Nested inside a valid-looking command, within the size limit.
        return '{"type":"start_strategy","id":"nope","config":{"symbols":' + inner + "}}"
    return inner


@st.composite
def oversized(draw: st.DrawFn) -> str:
    size = draw(st.integers(MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES))
    return '{"type":"get_strategies","requestId":"' + "x" * size + '"}'


def weighted(*choices: tuple[int, st.SearchStrategy[Frame]]) -> st.SearchStrategy[Frame]:
    table = [strategy for weight, strategy in choices for _ in range(weight)]

    @st.composite
    def pick(draw: st.DrawFn) -> Frame:
        return draw(table[draw(st.integers(0, len(table) - 1))])

    return pick()


FRAMES = weighted(
    (20, commands().map(encode)),
    (3, duplicate_keys()),
    (3, JSON.map(encode)),
    (3, st.text(max_size=200)),
    (3, st.binary(max_size=200).map(Binary)),
    (2, deep_nesting()),
    # These two close the connection (1007, 1009), which costs a reconnect.
    (1, st.binary(min_size=1, max_size=50).map(lambda b: BadUtf8(b"\xff" + b))),
    (1, oversized()),
)


# ---------------------------------------------------------------- talking to the servers


@dataclass
class Tally:
    frames: int = 0
    examples: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)


class Clients:
    """One synchronous connection per server, reopened when a frame closed it."""

    def __init__(self, daemon: ThreadedDaemon) -> None:
        self._urls = {server: daemon.url(server) for server in SERVERS}
        self._open: dict[str, ClientConnection] = {}
        self._stacks: dict[str, contextlib.ExitStack] = {}
        self._sentinels = iter(range(10**9))

    def get(self, server: str) -> ClientConnection:
        if server not in self._open:
            stack = self._stacks[server] = contextlib.ExitStack()
            ws = stack.enter_context(connect(self._urls[server], max_size=4 * MAX_MESSAGE_BYTES))
            for _ in range(2):
                assert orjson.loads(ws.recv(timeout=5))["snapshot"] is True
            self._open[server] = ws
        return self._open[server]

    def send(self, server: str, frame: Frame, tally: Tally) -> None:
        """Send one frame and read its one answer, or the close it caused."""
        ws = self.get(server)
        tally.frames += 1
        try:
            if isinstance(frame, Binary):
                ws.send(frame.data)
            elif isinstance(frame, BadUtf8):
                ws.send(frame.data, text=True)
            else:
                ws.send(frame)
            self._read_answer(ws, tally)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            assert code in DOCUMENTED_CLOSES, (code, frame if isinstance(frame, str) else "")
            tally.closes[code] += 1
            del self._open[server]
            self._stacks.pop(server).close()

    def _read_answer(self, ws: ClientConnection, tally: Tally) -> None:
        reply = orjson.loads(ws.recv(timeout=5))
        kind = reply["type"]
        if kind == "error":
            code = reply["data"]["code"]
            assert code != "internal_error", reply
            tally.replies[code] += 1
            return
        tally.replies[kind] += 1
        if kind == "resumed":  # followed by what it replays
            for _ in range(reply["data"]["replayed"]):
                assert "seq" in orjson.loads(ws.recv(timeout=5))
        elif kind == "resync_required":  # followed by the snapshot
            for _ in range(2):
                assert orjson.loads(ws.recv(timeout=5))["snapshot"] is True

    def check_in_step(self, server: str) -> None:
        """A fresh query's reply is the next message: no frame got a second answer."""
        ws = self.get(server)
        sentinel = f"sentinel-{next(self._sentinels)}"
        ws.send(orjson.dumps({"type": "get_active_strategies", "requestId": sentinel}).decode())
        reply = orjson.loads(ws.recv(timeout=5))
        assert reply.get("requestId") == sentinel, reply
        assert reply["type"] == "strategy_status_list" and reply["data"] == []

    def close(self) -> None:
        for stack in self._stacks.values():
            stack.close()


@pytest.fixture
def fuzzed() -> Iterator[ThreadedDaemon]:
    config = test_config(
        connections={
            "max_message_bytes": MAX_MESSAGE_BYTES,
            "commands_per_second": 10_000,
            "command_burst": 100_000,
        }
    )
    with structlog.testing.capture_logs() as entries, ThreadedDaemon(config) as daemon:
        daemon.log_entries = entries
        yield daemon


def test_hostile_frames_are_answered_or_closed_with_a_documented_code(
    fuzzed: ThreadedDaemon, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    clients = Clients(fuzzed)
    tally = Tally()
    catalog_before = fuzzed.call(lambda daemon: daemon.daemon.registry.catalog())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(FRAMES, min_size=FRAMES_PER_EXAMPLE[0], max_size=FRAMES_PER_EXAMPLE[1]))
    def exchange(frames: list[Frame]) -> None:
        tally.examples += 1
        for frame in frames:
            for server in SERVERS:
                clients.send(server, frame, tally)
        for server in SERVERS:
            clients.check_in_step(server)

    started = time.perf_counter()
    try:
        exchange()
    finally:
        clients.close()
    duration = time.perf_counter() - started

    catalog_after = fuzzed.call(lambda daemon: daemon.daemon.registry.catalog())
    handler_errors = fuzzed.call(lambda daemon: daemon.daemon.bus.handler_errors)
    crashed = [repr(e) for e in fuzzed.log_entries if e.get("log_level") in ("error", "critical")]
    # websockets logs a handler that raised ("connection handler failed") through logging.
    crashed += [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    report(
        capsys,
        "fuzz",
        frames=tally.frames,
        examples=tally.examples,
        answered=sum(tally.replies.values()),
        closed=sum(tally.closes.values()),
        replies_by_code=dict(tally.replies.most_common()),
        closes_by_code=dict(tally.closes),
        internal_errors=tally.replies["internal_error"],
        error_log_lines=len(crashed),
        handler_errors=handler_errors,
        duration_s=f"{duration:.1f}",
    )
    assert tally.frames >= MIN_FRAMES
    assert sum(tally.replies.values()) + sum(tally.closes.values()) == tally.frames
    assert crashed == [] and handler_errors == 0
    assert catalog_after == catalog_before
    for server in SERVERS:  # still serving, on a fresh connection
        with connect(fuzzed.url(server)) as ws:
            for _ in range(2):
                ws.recv(timeout=5)  # the snapshot
            ws.send('{"type": "get_active_strategies", "requestId": "after"}')
            reply = orjson.loads(ws.recv(timeout=5))
            assert reply["type"] == "strategy_status_list" and reply["requestId"] == "after"
