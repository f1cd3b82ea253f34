"""The systemd notify protocol, spoken directly over NOTIFY_SOCKET.

READY=1 once every server is bound and the journal open, STATUS= a one-line
summary, WATCHDOG=1 from the event loop (a blocked loop stops the pings and
systemd restarts the service), STOPPING=1 on shutdown. Without NOTIFY_SOCKET
nothing is sent.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("gateways.systemd")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog = _watchdog_interval(env)
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half of WatchdogSec, as systemd recommends."""
        return self._watchdog

    def notify(self, *fields: str) -> None:
        if self._address is None:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=exc.strerror)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    async def run_watchdog(self, status: Callable[[], str], every: float = 10.0) -> None:
        """Ping from the event loop; refresh STATUS= now and then."""
        interval = self._watchdog
        if interval is None:
            return
        since_status = 0.0
        while True:
            await asyncio.sleep(interval)
            since_status += interval
            fields = ["WATCHDOG=1"]
            if since_status >= every:
                fields.append(f"STATUS={status()}")
                since_status = 0.0
            self.notify(*fields)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    # "@name" is Linux's abstract namespace.
    return "\0" + value[1:] if value.startswith("@") else value


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2 / 1_000_000
    except ValueError:
        return None
