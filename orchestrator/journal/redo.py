"""The journal's redo log: trades told before SQLite has committed them.

With ``journal.synchronous = "NORMAL"`` a commit survives a crash of the daemon,
not a power loss: it is in the operating system's cache when SQLite returns. A
frame copied into a shared memory map of a file is in the same cache the moment
the copy ends (the kernel writes it back whether or not the process lives), for
a fraction of a commit's cost and of a ``write``'s (a copy of bytes already
encoded, on the event loop: no system call, no thread hop). So the writer
appends signals, orders, fills and order events here, tells the clients at
once, and lets SQLite commit them behind the tell
(``orchestrator.journal.writer``). At the next start :meth:`Journal.open
<orchestrator.journal.store.Journal.open>` writes into SQLite whatever the log
holds that SQLite does not (every row is keyed by its id, so what was committed
already is skipped) and removes the file.

A frame: its payload's length and CRC-32 (two little-endian unsigned 32-bit
integers), then the payload, a pickle of the rows one pass of the event loop
told (``GroupRows.state`` in ``orchestrator.journal.store``). The file is
allocated ahead (``posix_fallocate``: a full disk refuses the allocation, never
a copy into the map) and what follows the last frame is zeros; no frame is
empty, so the first zero length ends the log. A crash during an append leaves a
torn last frame, which was never told: :func:`read_redo` drops it. The file is
the daemon's own, beside the journal, under the journal's lock, so its pickles
are trusted; even so they may name only the journal's own classes.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import struct
import zlib
from collections.abc import Iterator
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

INITIAL_CAPACITY: Final = 1024 * 1024
"""Bytes allocated when the log is opened; it doubles when a pass needs more (the
writer empties it past 64 KiB, once SQLite has all of it)."""


def redo_path(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + REDO_SUFFIX)


class RedoLog:
    """An open redo log, appended to by the event loop only."""

    def __init__(self, path: Path, descriptor: int, size: int, capacity: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self.size = size
        """Bytes of frames in the file (what follows them is zeros)."""
        self._map = mmap.mmap(descriptor, capacity)

    @classmethod
    def open(cls, path: Path, capacity: int = INITIAL_CAPACITY) -> RedoLog:
        """Open (or create) the log at ``path``, its frames kept, allocated to at
        least ``capacity`` bytes; raises OSError when the disk refuses."""
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            length = os.fstat(descriptor).st_size
            size = _frames_end(os.pread(descriptor, length, 0), path)
            capacity = max(capacity, length)
            _allocate(descriptor, capacity)
            redo = cls(path, descriptor, size, capacity)
        except BaseException:
            os.close(descriptor)
            raise
        redo._map[size:length] = bytes(length - size)  # a torn tail: the next frames' place
        return redo

    def append(self, *payloads: bytes) -> None:
        """Copy a frame of each payload into the log; raises OSError when the disk
        refuses to make room for them."""
        frames = b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        end = self.size + len(frames)
        if end > len(self._map):
            self._grow(end)
        self._map[self.size : end] = frames
        self.size = end

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * len(self._map))
        _allocate(self._descriptor, capacity)
        self._map.close()
        self._map = mmap.mmap(self._descriptor, capacity)

    def empty(self) -> None:
        """Drop every frame: SQLite has committed them all."""
        self._map[: self.size] = bytes(self.size)
        self.size = 0

    def close(self, *, remove: bool) -> None:
        """Close the file; ``remove`` it once SQLite has committed everything in it."""
        if self._descriptor >= 0:
            self._map.close()
            os.close(self._descriptor)
            self._descriptor = -1
        if remove:
            self.path.unlink(missing_ok=True)


def _allocate(descriptor: int, size: int) -> None:
    """Make the file ``size`` bytes long, its blocks allocated: past the disk's end
    this raises OSError, where a copy into the map of an unallocated block would
    kill the process (SIGBUS). (Without posix_fallocate, macOS, the file is only
    extended.)"""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(descriptor, 0, size)
    elif os.fstat(descriptor).st_size < size:
        os.ftruncate(descriptor, size)


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
    for start, end in _frame_spans(data, path):
        frames.append(_JournalUnpickler(io.BytesIO(data[start:end])).load())
    return frames


def _frames_end(data: bytes, path: Path) -> int:
    """Where the whole frames of ``data`` end (a torn tail is logged)."""
    return max((end for _, end in _frame_spans(data, path)), default=0)


def _frame_spans(data: bytes, path: Path) -> Iterator[tuple[int, int]]:
    """Each whole frame's payload span; then, if anything but zeros follows the last
    (the space allocated ahead), logs it as a torn tail."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        payload = data[start : start + length]
        if length == 0 or len(payload) < length or zlib.crc32(payload) != crc:
            break
        yield start, start + length
        offset = start + length
    torn = len(data[offset:].rstrip(b"\0"))
    if torn:
        log.warning("journal_redo_torn_tail", path=str(path), dropped_bytes=torn)
