"""WebSocket clients in other processes, for the latency and fan-out benchmarks.

:func:`start_clients` spreads ``count`` connections over a few child processes
(``python -m bench.clients SPEC``, which imports websockets and orjson only,
never the daemon). Each connection stamps every frame that starts with the
spec's ``match`` prefix with ``time.monotonic_ns()`` as soon as its bytes are
read (CLOCK_MONOTONIC: one clock for every process on Linux), and counts it in
a shared memory-mapped file, so the benchmark can follow progress without one
extra byte on the wire. Frames are parsed only after the server has closed the
connections, so parsing never delays a timestamp.

A group may connect to several servers at once (one :class:`ClientSpec` each,
the same number of connections to each), so that a benchmark can alternate
between them without reconnecting. A child writes ``ready`` on its stdout once
all its connections are open (and subscribed), then, after the servers closed
them, one JSON line: per spec, per connection, the ``[key, arrival_ns, size]``
of each frame it matched.
"""

from __future__ import annotations

import asyncio
import functools
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import orjson
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

Compression = Literal["deflate"] | None
Key = int | str
Arrivals = list[tuple[Key, int, int]]
"""(key, arrival in monotonic ns, size in bytes) of each matched frame of one connection."""

CONNECT_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0
SLOT = 8
"""Bytes per connection in the progress file: a little-endian matched-frame count."""
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ClientSpec:
    url: str
    match: str
    """Frames that start with this text are stamped and counted."""
    key: Literal["trade_id", "quote_seq"]
    """What identifies a frame once parsed: a trade's id, or a quote's ``size`` as a sequence."""
    subscribe: str | None = None
    """Sent once after connecting; the client is ready when the ``subscribed`` reply arrives."""
    compression: Compression = None


class ClientGroup:
    """The child processes running the clients, and their progress counters.

    There are ``count`` connections per spec; spec ``i``'s connections are the
    ones counted by ``received(i)`` and reported in ``results()[i]``.
    """

    def __init__(
        self,
        children: list[asyncio.subprocess.Process],
        progress: mmap.mmap,
        count: int,
        specs: int,
    ) -> None:
        self._children = children
        self._progress = progress
        self._view = memoryview(progress).cast("q")
        self.count = count
        self.specs = specs

    async def ready(self) -> None:
        """Wait until every connection is open (and subscribed)."""
        for child in self._children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), CONNECT_TIMEOUT)
            if line != b"ready\n":
                raise RuntimeError(f"a client process failed to connect (said {line!r})")

    def received(self, spec: int = 0) -> list[int]:
        """Matched frames received so far by each connection of ``spec``."""
        return self._view[spec * self.count : (spec + 1) * self.count].tolist()

    async def wait_for(
        self, frames: int, timeout: float, spec: int = 0, poll: float = 0.002
    ) -> None:
        """Wait until every connection of ``spec`` has received ``frames`` matched frames.

        asyncio sleeps at least a millisecond (epoll's resolution) whatever ``poll`` is.
        """
        deadline = time.monotonic() + timeout
        while True:
            least = min(self.received(spec))
            if least >= frames:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"clients received {least} of {frames} frames in {timeout} s")
            await asyncio.sleep(poll)

    async def results(self) -> list[list[Arrivals]]:
        """Per spec, every connection's arrivals, once the servers have closed them all."""
        collected: list[list[Arrivals]] = [[] for _ in range(self.specs)]
        for child in self._children:
            assert child.stdout is not None
            output = await asyncio.wait_for(child.stdout.read(), RUN_TIMEOUT)
            await child.wait()
            if child.returncode != 0:
                raise RuntimeError(f"a client process exited with {child.returncode}")
            for spec, connections in enumerate(orjson.loads(output)):
                collected[spec].extend(
                    [(key, ns, size) for key, ns, size in connection] for connection in connections
                )
        return collected

    async def close(self) -> None:
        for child in self._children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        self._view.release()
        self._progress.close()


def _memory_dir() -> str | None:
    """Where a file lives in memory: /dev/shm on Linux."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


async def start_clients(specs: Sequence[ClientSpec], count: int, processes: int) -> ClientGroup:
    """Start ``processes`` child processes that together open ``count`` connections per spec."""
    size = len(specs) * count * SLOT
    encoded = orjson.dumps([asdict(spec) for spec in specs]).decode()
    with tempfile.TemporaryFile(dir=_memory_dir()) as file:
        file.truncate(size)
        progress = mmap.mmap(file.fileno(), size)
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        children = []
        first = 0
        for share in (s for s in shares if s):
            children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.clients",
                    encoded,
                    str(count),
                    str(first),
                    str(share),
                    str(file.fileno()),
                    cwd=REPO,
                    stdout=asyncio.subprocess.PIPE,
                    pass_fds=(file.fileno(),),
                )
            )
            first += share
    return ClientGroup(children, progress, count, len(specs))


def mean_size(results: Sequence[Arrivals]) -> float:
    """Mean size of the matched frames, in bytes (after decompression)."""
    sizes = [size for arrivals in results for _, _, size in arrivals]
    return sum(sizes) / len(sizes) if sizes else 0.0


def all_arrivals(results: Sequence[Arrivals]) -> dict[Key, list[int]]:
    """Arrival times by frame key, over every connection."""
    by_key: dict[Key, list[int]] = {}
    for arrivals in results:
        for key, ns, _ in arrivals:
            by_key.setdefault(key, []).append(ns)
    return by_key


# --------------------------------------------------------------- in the client process


class _LeanClient(asyncio.Protocol):
    """A WebSocket client: websockets' Sans-I/O ClientProtocol on an asyncio Protocol.

    Lighter than ``websockets.asyncio.client`` (no future per message), so a
    process can hold 25 connections and still stamp each frame when its bytes
    arrive: every frame of one read is stamped with the time of that read.
    """

    def __init__(self, spec: ClientSpec, progress: memoryview, index: int) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if spec.compression == "deflate" else []
        self._protocol = ClientProtocol(parse_uri(spec.url), extensions=extensions)
        self._spec = spec
        self._match = spec.match.encode()
        self._progress = progress
        self._index = index
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.frames: list[tuple[bytes, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._protocol.send_request(self._protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._on_text(bytes(event.data), now)
            elif self._protocol.state is OPEN:  # the handshake response
                self._on_open()
            else:
                self._fail(RuntimeError(f"handshake failed: {self._protocol.handshake_exc}"))
        self._flush()

    def eof_received(self) -> bool:
        self._protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("connection closed before it was ready"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _on_open(self) -> None:
        if self._spec.subscribe is None:
            self.ready.set_result(None)
        else:
            self._protocol.send_text(self._spec.subscribe.encode())

    def _on_text(self, frame: bytes, now: int) -> None:
        if not self.ready.done():
            if frame.startswith(b'{"type":"subscribed"'):
                self.ready.set_result(None)
            return
        if frame.startswith(self._match):
            self.frames.append((frame, now))
            self._progress[self._index] = len(self.frames)

    def _flush(self) -> None:
        assert self._transport is not None
        for data in self._protocol.data_to_send():
            if data:
                self._transport.write(data)
            elif self._transport.can_write_eof():
                self._transport.write_eof()

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)


async def _run_clients(
    specs: list[ClientSpec], count: int, first: int, share: int, progress: memoryview
) -> bytes:
    loop = asyncio.get_running_loop()
    clients: list[list[_LeanClient]] = []
    async with asyncio.timeout(CONNECT_TIMEOUT):
        for number, spec in enumerate(specs):
            uri = parse_uri(spec.url)
            opened = []
            for i in range(share):
                slot = number * count + first + i
                _, client = await loop.create_connection(
                    functools.partial(_LeanClient, spec, progress, slot),
                    uri.host,
                    uri.port,
                )
                opened.append(client)
            clients.append(opened)
        await asyncio.gather(*(client.ready for group in clients for client in group))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with asyncio.timeout(RUN_TIMEOUT):
        await asyncio.gather(*(client.closed for group in clients for client in group))
    return orjson.dumps(
        [
            [[(_key(spec, f), ns, len(f)) for f, ns in client.frames] for client in group]
            for spec, group in zip(specs, clients, strict=True)
        ]
    )


def _key(spec: ClientSpec, frame: bytes) -> Key:
    data = orjson.loads(frame)["data"]
    if spec.key == "trade_id":
        return str(data["id"])
    return int(data["size"])


def _main(argv: list[str]) -> None:
    specs_json, count, first, share, fd = argv
    specs = [ClientSpec(**spec) for spec in orjson.loads(specs_json)]
    shared = mmap.mmap(int(fd), 0)
    progress = memoryview(shared).cast("q")
    output = asyncio.run(_run_clients(specs, int(count), int(first), int(share), progress))
    sys.stdout.buffer.write(output)
    sys.stdout.flush()


if __name__ == "__main__":
    _main(sys.argv[1:])
