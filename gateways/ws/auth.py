"""Bearer tokens: from the config, the environment or a file that can rotate.

Tokens are compared in constant time against every accepted token, and never
logged.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateways.config import SecurityConfig, weak_token_problem

log = structlog.get_logger("gateways.ws.auth")


class TokenChecker:
    def __init__(self, config: SecurityConfig, required: bool) -> None:
        self.required = required
        self._static = [token.get_secret_value().encode() for token in config.tokens]
        self._file = config.tokens_file
        self._file_stamp: tuple[float, int] | None = None
        self._file_tokens: list[bytes] = []

    def accepts(self, presented: str) -> bool:
        candidate = presented.encode()
        matched = False
        for token in [*self._static, *self._tokens_from_file()]:
            # No early exit: the time taken does not depend on which token matched.
            matched |= hmac.compare_digest(candidate, token)
        return matched

    def _tokens_from_file(self) -> list[bytes]:
        if self._file is None:
            return []
        try:
            stat = self._file.stat()
        except OSError as exc:
            log.error("tokens_file_unreadable", path=str(self._file), error=exc.strerror)
            return []
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._file_stamp:
            self._file_tokens = _read_tokens(self._file)
            self._file_stamp = stamp
            log.info("tokens_file_loaded", path=str(self._file), count=len(self._file_tokens))
        return self._file_tokens


class RefusalLog:
    """Refusals of strangers, logged at most ``burst`` lines per ``interval`` seconds:
    an attack of a thousand connections must not write a thousand lines. Each line
    after a quiet spell says how many were left out (``suppressed``)."""

    def __init__(
        self,
        log: Any,
        interval: float = 10.0,
        burst: int = 5,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._burst = burst
        self._now = now
        self._window_start = -interval
        self._lines = 0
        self.suppressed = 0

    def warning(self, event: str, **fields: Any) -> None:
        now = self._now()
        if now - self._window_start >= self._interval:
            self._window_start, self._lines = now, 0
        if self._lines >= self._burst:
            self.suppressed += 1
            return
        self._lines += 1
        if self.suppressed:
            fields["suppressed"], self.suppressed = self.suppressed, 0
        self._log.warning(event, **fields)


def _read_tokens(path: Path) -> list[bytes]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        log.error("tokens_file_unreadable", path=str(path), error=exc.strerror)
        return []
    tokens = []
    for number, line in enumerate(lines, start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        problem = weak_token_problem(token)
        if problem is not None:
            # Skipped, never accepted: a weak token is no better than none.
            log.error("tokens_file_weak_token", path=str(path), line=number, problem=problem)
            continue
        tokens.append(token.encode())
    return tokens


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it is."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
