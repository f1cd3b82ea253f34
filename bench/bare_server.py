"""The baseline: a bare websockets server that broadcasts pre-encoded frames.

It does what the daemon's servers do at the socket, and nothing else: accept,
read (and ignore) what clients send, and ``broadcast`` bytes already encoded
to every open connection. Benchmarks drive it with the same frames, sizes and
pacing as the daemon, so the difference between the two is the daemon's work.
"""

from __future__ import annotations

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve

from bench.clients import Compression


class BareServer:
    def __init__(self, compression: Compression = None) -> None:
        self._compression = compression
        self.connections: set[ServerConnection] = set()
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await serve(
            self._serve, "127.0.0.1", 0, compression=self._compression, logger=None
        )

    def broadcast(self, frame: bytes) -> None:
        broadcast(self.connections, frame, text=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self.connections.discard(ws)
