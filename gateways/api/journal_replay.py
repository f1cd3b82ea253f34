"""A resume after a restart: the committed messages a client missed, read back from
the journal by their stream positions.

Every journaled event has a position in the journal (``Journal.write``), which its
message carries as ``position`` and which outlives the daemon run, unlike ``seq``
and ``epoch``. A client that comes back after a restart with the ``epoch`` of an
earlier run of this journal and the last ``position`` it saw is sent the committed
messages after that position, built by the functions that built them live
(:func:`outbound.stream_message`), then what the server's window holds after them.
What the journal does not write (quotes, bars, risk alerts, execution status, job
progress) is not replayed: the snapshot that follows the replay gives the state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from gateways.api import outbound
from gateways.ws.stream import Replayed, Resync
from orchestrator.journal.store import Journal
from orchestrator.model.events import Topic


class JournalReplay:
    """Reads on a thread (the journal's lock is shared with its writer's commits),
    never on the event loop, once ``settled`` has returned: a client may have been
    told of what SQLite commits behind the tell (the redo log), up to ``upto``."""

    def __init__(self, journal: Journal, settled: Callable[[], Awaitable[None]]) -> None:
        self._journal = journal
        self._settled = settled

    async def replay(
        self, epoch: int, after: int, upto: int, topics: Collection[Topic], limit: int
    ) -> list[Replayed] | Resync:
        """The messages of ``topics`` with a position in (``after``, ``upto``], or why
        they cannot be replayed (another journal's epoch, a position before the
        journal kept any, or more than ``limit`` of them: older than the retention)."""
        await self._settled()
        return await asyncio.to_thread(self._read, epoch, after, upto, topics, limit)

    def _read(
        self, epoch: int, after: int, upto: int, topics: Collection[Topic], limit: int
    ) -> list[Replayed] | Resync:
        runs = self._journal.runs()
        if epoch not in runs:
            return Resync(f"epoch {epoch} is not a run of this daemon's journal")
        first = min(runs.values())
        if after < first - 1:
            return Resync(f"position {after} is older than the journal's positions (from {first})")
        if after > upto:
            return Resync(f"position {after} is ahead of this stream (at {upto})")
        records = self._journal.stream(after, upto, topics, limit + 1)
        if len(records) > limit:
            return Resync(
                f"more than {limit} committed messages (streams.replay_window) follow "
                f"position {after}"
            )
        return [
            Replayed(position, *outbound.stream_message(record)) for position, record in records
        ]
