"""The journal's redo log: trades told before SQLite has committed them.

With ``journal.synchronous = "NORMAL"`` a commit survives a crash of the daemon,
not a power loss: it is in the operating system's cache when SQLite returns. An
append to a plain file gives the same guarantee for a fraction of a commit's
cost (one ``write`` of bytes already encoded, on the event loop, no thread hop),
so the writer appends signals, orders, fills and order events here, tells the
clients at once, and lets SQLite commit them behind the tell
(``orchestrator.journal.writer``). At the next start :meth:`Journal.open
<orchestrator.journal.store.Journal.open>` writes into SQLite whatever the log
holds that SQLite does not (every row is keyed by its id, so what was committed
already is skipped) and removes the file.

A frame: its payload's length and CRC-32 (two little-endian unsigned 32-bit
integers), then the payload, a pickle of the rows one pass of the event loop
told (``GroupRows.state`` in ``orchestrator.journal.store``). A crash during an
append leaves a torn last frame, which was never told: :func:`read_redo` drops it. The
file is the daemon's own, beside the journal, under the journal's lock, so its
pickles are trusted; even so they may name only the journal's own classes.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger("orchestrator.journal.store")

HEADER: Final = struct.Struct("<II")
"""A frame's payload length and CRC-32."""

REDO_SUFFIX: Final = "-redo"
"""The log's file name is the journal's with this appended (as SQLite's ``-wal``)."""

_TRUSTED: Final = frozenset(
    {
        ("builtins", "frozenset"),
        ("builtins", "set"),
        ("builtins", "complex"),
        # A strategy's numpy floats (np.float64 is a float, and SQLite takes it as one).
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)
"""What a frame may name besides the journal's own classes (``orchestrator.*``)."""


def redo_path(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + REDO_SUFFIX)


class RedoLog:
    """An open redo log, appended to by the event loop only."""

    def __init__(self, path: Path, descriptor: int, size: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self.size = size
        """Bytes in the file."""

    @classmethod
    def open(cls, path: Path) -> RedoLog:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return cls(path, descriptor, os.fstat(descriptor).st_size)

    def append(self, *payloads: bytes) -> None:
        """Write a frame of each payload, in one ``write``; raises OSError when the
        disk refuses them."""
        frames = b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        written = os.write(self._descriptor, frames)
        if written != len(frames):  # a full disk: the tail is torn, and dropped when read
            raise OSError(f"redo log {self.path}: wrote {written} of {len(frames)} bytes")
        self.size += written

    def empty(self) -> None:
        """Drop every frame: SQLite has committed them all."""
        os.ftruncate(self._descriptor, 0)
        self.size = 0

    def close(self, *, remove: bool) -> None:
        """Close the file; ``remove`` it once SQLite has committed everything in it."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1
        if remove:
            self.path.unlink(missing_ok=True)


class _JournalUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        # A dotted name would reach through a module's attributes (os.system, say).
        ours = module.startswith("orchestrator.") and "." not in name
        if ours or (module, name) in _TRUSTED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"redo log names {module}.{name}, not a journal class")


def encode_frame(rows: object) -> bytes:
    return pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)


def read_redo(path: Path) -> list[object]:
    """The payloads of the log's whole frames, unpickled, in order (none if there is
    no log); a torn or corrupt tail ends the list, and is logged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    frames: list[object] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        payload = data[offset + HEADER.size : offset + HEADER.size + length]
        # No frame is empty: zeros are blocks a power loss left unwritten.
        if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
            break
        frames.append(_JournalUnpickler(io.BytesIO(payload)).load())
        offset += HEADER.size + length
    if offset < len(data):
        log.warning("journal_redo_torn_tail", path=str(path), dropped_bytes=len(data) - offset)
    return frames
