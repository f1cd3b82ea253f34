"""Slow consumers through a real server: a client that never reads is closed with
1013 once it is max_outbound_bytes behind, its memory is released, and ten
clients that read keep getting every message meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from gateways.ws.server import EVERYONE, WebSocketServer
from orchestrator.model.events import ExecutionStatusChanged
from tests.support import RECV_TIMEOUT, TestDaemon, report, running_daemon, test_config

CAP = 64 * 1024
FAST_CLIENTS = 10
REASON_BYTES = 16_000
AFTER_EVICTION = 50
"""Messages published after the slow client is closed, to show nothing slowed down."""
MAX_MESSAGES = 5_000


@dataclass
class FastReader:
    """A client that reads everything and records each big message's seq and index."""

    ws: ClientConnection
    progressed: asyncio.Event
    seqs: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    settled: bool = False

    @property
    def last(self) -> int:
        return self.indices[-1] if self.indices else -1

    async def run(self) -> None:
        async for raw in self.ws:
            message = orjson.loads(raw)
            reason = message["data"].get("reason") if isinstance(message["data"], dict) else None
            if reason == "settled":
                self.settled = True
            elif reason is not None:
                self.seqs.append(message["seq"])
                self.indices.append(int(reason.partition(":")[0]))
            self.progressed.set()


def small_buffer_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer, so the kernel fills quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def server_side(server: WebSocketServer, client: ClientConnection) -> ServerConnection:
    """The server's end of a client's connection (matched by address)."""
    for session in server._sessions.values():
        if session.ws.remote_address == client.local_address:
            return session.ws
    raise AssertionError("no such connection on the server")


def publish_big(daemon: TestDaemon, index: int) -> None:
    """A real ExecutionStatusChanged on the real bus, made large by its reason."""
    execution = daemon.daemon.core.execution
    reason = f"{index}:" + "x" * REASON_BYTES
    daemon.daemon.bus.publish(ExecutionStatusChanged(execution.status, daemon.clock.now(), reason))


async def until(condition: Callable[[], bool], deadline: float = 2.0) -> None:
    """Poll for a state change that has nothing to await (with a deadline)."""
    async with asyncio.timeout(deadline):
        while not condition():  # noqa: ASYNC110 (there is no event to await)
            await asyncio.sleep(0.001)


async def read_until_closed(ws: ClientConnection, first_seq: int) -> int:
    """Read until the server closes; how many of the test's messages came first."""
    received = 0
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(RECV_TIMEOUT):
            while True:
                message = orjson.loads(await ws.recv())
                received += "snapshot" not in message and message["seq"] >= first_seq
    return received


async def wait_for(readers: list[FastReader], progressed: asyncio.Event, index: int) -> None:
    """Until every reader has the message ``index`` (and so the server broadcast it)."""
    while min(reader.last for reader in readers) < index:
        progressed.clear()
        await progressed.wait()


async def settle(daemon: TestDaemon, readers: list[FastReader], progressed: asyncio.Event) -> None:
    """Until every reader has what was published before now (delivery may be asynchronous)."""
    execution = daemon.daemon.core.execution
    event = ExecutionStatusChanged(execution.status, daemon.clock.now(), "settled")
    daemon.daemon.bus.publish(event)
    while not all(reader.settled for reader in readers):
        progressed.clear()
        await progressed.wait()


async def test_a_client_that_never_reads_is_closed_1013_and_the_fast_ones_get_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = test_config(connections={"max_outbound_bytes": CAP, "close_timeout": 1.0})
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        progressed = asyncio.Event()
        readers = [
            FastReader(await connect(daemon.url(), max_queue=None), progressed)
            for _ in range(FAST_CLIENTS)
        ]
        tasks = [asyncio.create_task(r.run(), name=f"fast-{i}") for i, r in enumerate(readers)]
        slow = await connect(daemon.url(), sock=small_buffer_socket(server.port))
        slow.transport.pause_reading()  # never reads again (until it is closed)
        slow_end = server_side(server, slow)
        await settle(daemon, readers, progressed)
        first_seq = server.stream_seq + 1

        started = time.perf_counter()
        max_slow_buffer = frame_bytes = 0
        cap_to_close: float | None = None
        evicted_at_message: int | None = None
        slow_reading: asyncio.Task[int] | None = None
        async with asyncio.timeout(30):
            for index in range(MAX_MESSAGES):
                before = time.perf_counter()
                publish_big(daemon, index)
                await wait_for(readers, progressed, index)
                after = time.perf_counter()
                frame_bytes = max(frame_bytes, len(server._stream._window[-1].frame))
                max_slow_buffer = max(max_slow_buffer, slow_end.transport.get_write_buffer_size())
                if evicted_at_message is None and slow_end.protocol.state is not State.OPEN:
                    # The slow client's buffer only grows while a message is
                    # broadcast: it passed the cap with this one, and the close
                    # began before every fast client had it.
                    cap_to_close = after - before
                    evicted_at_message = index + 1
                    # It starts reading again at once: the close frame is behind
                    # what the server had buffered, and must arrive before the
                    # server gives up on it after close_timeout.
                    slow.transport.resume_reading()
                    slow_reading = asyncio.create_task(read_until_closed(slow, first_seq))
                if (
                    evicted_at_message is not None
                    and index + 1 >= evicted_at_message + AFTER_EVICTION
                ):
                    break
            last_seq = server.stream_seq
        publishing = time.perf_counter() - started

        assert slow_reading is not None, "the slow client was never closed"
        slow_received = await slow_reading
        async with asyncio.timeout(RECV_TIMEOUT):
            await slow_end.wait_closed()

        published = last_seq - first_seq + 1
        fast_received = sum(len(r.seqs) for r in readers)
        complete = sum(
            r.seqs == list(range(first_seq, last_seq + 1)) and r.indices == list(range(published))
            for r in readers
        )
        report(
            capsys,
            "slow consumer",
            fast_clients=FAST_CLIENTS,
            messages=published,
            message_bytes=frame_bytes,
            fast_complete=f"{complete}/{FAST_CLIENTS}",
            fast_received_pct=f"{100 * fast_received / (published * FAST_CLIENTS):.1f}",
            slow_close_code=slow.close_code,
            slow_closed_after_messages=evicted_at_message,
            slow_received_before_close=slow_received,
            cap_bytes=CAP,
            max_slow_buffer_bytes=max_slow_buffer,
            cap_to_close_ms_at_most=f"{1000 * (cap_to_close or 0):.2f}",
            duration_s=f"{publishing:.2f}",
        )
        assert complete == FAST_CLIENTS
        assert slow.close_code == 1013
        assert server.slow_clients_closed == 1
        assert cap_to_close is not None and cap_to_close < 1.0
        # Never more than one message (and the close frame) past the cap.
        assert max_slow_buffer <= CAP + frame_bytes + 256
        # Released: the session, its channel membership and its buffer are gone.
        await until(lambda: server.client_count == FAST_CLIENTS)
        assert slow_end not in server._channels[EVERYONE]
        assert slow_end.transport.get_write_buffer_size() == 0
        for reader in readers:
            await reader.ws.close()
        await asyncio.gather(*tasks)


async def test_a_slow_client_is_dropped_after_the_close_timeout_if_it_never_reads() -> None:
    """It does not answer the close either: the server aborts the connection."""
    config = test_config(connections={"max_outbound_bytes": CAP, "close_timeout": 0.2})
    async with running_daemon(config) as daemon:
        server = daemon.daemon.servers["orchestrator"]
        progressed = asyncio.Event()
        witness = FastReader(await connect(daemon.url(), max_queue=None), progressed)
        reading = asyncio.create_task(witness.run(), name="witness")
        slow = await connect(daemon.url(), sock=small_buffer_socket(server.port))
        slow.transport.pause_reading()
        slow_end = server_side(server, slow)
        async with asyncio.timeout(30):
            index = 0
            while slow_end.protocol.state is State.OPEN:
                publish_big(daemon, index)
                await wait_for([witness], progressed, index)
                index += 1
            closing = time.perf_counter()
            await slow_end.wait_closed()
        dropped_after = time.perf_counter() - closing
        assert 0.15 < dropped_after < 1.0
        await until(lambda: server.client_count == 1)
        assert slow_end.transport.get_write_buffer_size() == 0
        slow.transport.abort()
        await witness.ws.close()
        await reading


async def until_logged(logs: list[dict[str, object]], event: str) -> dict[str, object]:
    """The first captured log line of ``event``, awaited with a deadline."""
    async with asyncio.timeout(RECV_TIMEOUT):
        while True:
            found = next((line for line in logs if line["event"] == event), None)
            if found is not None:
                return found
            await asyncio.sleep(0.01)  # log lines are not awaitable: poll with a deadline


async def test_the_close_log_says_which_code_the_server_sent() -> None:
    config = test_config(connections={"max_outbound_bytes": CAP, "close_timeout": 0.2})
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(config) as daemon:
            server = daemon.daemon.servers["orchestrator"]
            slow = await connect(daemon.url(), sock=small_buffer_socket(server.port))
            slow.transport.pause_reading()
            slow_end = server_side(server, slow)
            async with asyncio.timeout(30):
                index = 0
                while slow_end.protocol.state is State.OPEN:
                    publish_big(daemon, index)
                    index += 1
                    await asyncio.sleep(0)
                closed = await until_logged(logs, "connection_closed")
            slow.transport.abort()
    assert closed["sent_code"] == 1013 and closed["code"] == 1006  # it never answered


async def test_a_client_that_stops_answering_pings_is_closed_and_logged() -> None:
    limits = {"ping_interval": 0.1, "ping_timeout": 0.2, "close_timeout": 0.2}
    config = test_config(connections=limits)
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(config) as daemon:
            dead = await connect(daemon.url(), ping_interval=None)
            dead.transport.pause_reading()  # a peer that vanished without a word
            keepalive = await until_logged(logs, "keepalive_closed")
            closed = await until_logged(logs, "connection_closed")
            dead.transport.abort()
    assert "keepalive ping timeout" in str(keepalive["reason"])
    assert closed["sent_code"] == 1011


async def test_a_replay_that_would_pile_past_the_cap_with_what_is_unread_is_a_resync() -> None:
    config = test_config(connections={"max_outbound_bytes": CAP, "close_timeout": 0.2})
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(config) as daemon:
            server = daemon.daemon.servers["orchestrator"]
            slow = await connect(daemon.url(), sock=small_buffer_socket(server.port))
            slow.transport.pause_reading()  # reads nothing more; it can still send
            slow_end = server_side(server, slow)
            async with asyncio.timeout(30):
                index = 0
                while slow_end.transport.get_write_buffer_size() < CAP // 2:
                    publish_big(daemon, index)
                    index += 1
                    await asyncio.sleep(0)
            # Three messages (48 KB) fit the cap alone, not with what sits unread.
            resume = {
                "type": "resume",
                "lastSeq": server.stream_seq - 3,
                "epoch": daemon.daemon.epoch,
            }
            await slow.send(orjson.dumps(resume).decode())
            resync = await until_logged(logs, "resync_required")
            assert slow_end.protocol.state is State.OPEN  # not pushed past the cap: not closed
            slow.transport.abort()
    assert "not yet read" in str(resync["reason"])
