"""The journal's writer stage: commit before tell.

:class:`JournalWriter` sits between the bus and the servers. Events go in with
:meth:`JournalWriter.submit` (a synchronous bus handler); the task
:meth:`JournalWriter.run` commits them in batches in a worker thread and only
then hands them, in order, to ``deliver`` on the event loop. So no client is
told of anything a crash could lose from the journal.

Batching: a batch is everything buffered (up to ``max_events``), taken as soon
as the previous commit returns, so records that arrive during a commit form the
next batch (group commit); with a positive ``max_delay`` a batch that is not
full also waits that long for more. Events the journal ignores (quotes, bars)
travel in the same batches, which keeps their order with the rest, but a batch
of nothing but them is delivered without touching the database.

With the journal off (``journal.enabled = false``), :class:`DirectDelivery` takes
this stage's place and delivers every event as it is submitted.

Failure is fatal: a batch whose commit fails is not delivered, nor is anything
after it, and ``run`` raises :class:`JournalError`, which stops the daemon. So
does a backlog beyond ``max_pending`` (the disk cannot keep up).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import (
    Journal,
    JournalBacklog,
    JournalError,
    Record,
    StrategyConfigured,
    journaled,
)
from orchestrator.model.events import Event, StrategyStatusChanged

log = structlog.get_logger("orchestrator.journal.store")


Deliver = Callable[[Sequence[Event]], None]


@dataclass(slots=True)
class WriteStats:
    """Commit latency of the batches written so far (batches with nothing to journal
    are not counted)."""

    batches: int = 0
    records: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0

    def add(self, records: int, seconds: float) -> None:
        self.batches += 1
        self.records += records
        self.total_seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.batches if self.batches else math.nan


class JournalWriter:
    """Batches records into journal commits and delivers events after they commit.

    ``deliver`` gets each committed batch's events (not the StrategyConfigured
    records) on the event loop, in submission order. A StrategyStatusChanged that
    carries its run config is journaled with a StrategyConfigured record just before it.
    """

    def __init__(
        self,
        journal: Journal,
        deliver: Deliver,
        *,
        max_events: int = 500,
        max_delay: float = 0.0,
        max_pending: int = 100_000,
    ) -> None:
        if max_events < 1 or max_pending < 1 or max_delay < 0:
            raise ValueError("max_events and max_pending must be positive, max_delay >= 0")
        self.journal = journal
        self._deliver = deliver
        self._max_events = max_events
        self._max_delay = max_delay
        self._max_pending = max_pending
        self._buffer: deque[Record] = deque()
        self._unwritten = 0
        """Records in the buffer that the journal must write (quotes and bars need not)."""
        self._submitted = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._running = False
        self._closing = False
        self._closed = False
        self.failure: JournalError | None = None
        self.stats = WriteStats()
        self.deliver_errors = 0

    @classmethod
    def from_config(
        cls,
        journal: Journal,
        deliver: Deliver,
        config: JournalConfig,
    ) -> JournalWriter:
        return cls(
            journal,
            deliver,
            max_events=config.batch_max_events,
            max_delay=config.batch_max_delay_ms / 1000.0,
            max_pending=config.max_pending_events,
        )

    @property
    def pending(self) -> int:
        """Records submitted but not yet committed and delivered."""
        return self._submitted - self._done

    def submit(self, record: Record) -> None:
        """Queue ``record``; a no-op once the writer has failed or closed."""
        if self.failure is not None or self._closed:
            return
        # Only what must be written counts: quotes and bars pass through without
        # touching the disk, so a fast feed alone cannot make the journal "behind".
        if journaled(record) and self._unwritten >= self._max_pending:
            self._fail(
                JournalBacklog(
                    f"journal at {self.journal.path} is {self._unwritten} events behind: "
                    "the disk cannot keep up"
                )
            )
            return
        if isinstance(record, StrategyStatusChanged) and record.config is not None:
            self._append(
                StrategyConfigured(record.strategy_id, record.name, record.config, record.ts)
            )
        self._append(record)

    def _append(self, record: Record) -> None:
        self._unwritten += journaled(record)
        self._buffer.append(record)
        self._submitted += 1
        self._wake.set()

    async def run(self) -> None:
        """Write until :meth:`close`; raises JournalError when the journal fails."""
        if self._running:
            raise RuntimeError("JournalWriter.run is already running")
        self._running = True
        self._stopped.clear()
        try:
            while True:
                if self.failure is not None:
                    raise self.failure
                if not self._buffer:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._gather()
                await self._drain_one()
        finally:
            self._running = False
            self._stopped.set()

    async def flush(self) -> None:
        """Return once everything submitted so far is committed and delivered."""
        if self.failure is not None:
            raise self.failure
        target = self._submitted
        if not self._running:
            while self._done < target:
                await self._drain_one()
            return
        if self._done >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wake.set()  # a batch waiting for more records goes now
        await waiter

    async def close(self) -> None:
        """Commit and deliver what is buffered, stop ``run``, close the journal."""
        try:
            if self.failure is None:
                await self.flush()
        finally:
            self._closing = True
            self._wake.set()
            if self._running:
                await self._stopped.wait()  # run() drains what came meanwhile, then returns
            elif self.failure is None and self._buffer:
                await self.flush()
            self._closed = True
            await asyncio.to_thread(self.journal.close)

    async def _gather(self) -> None:
        """With a positive ``max_delay``, wait for a full batch or the deadline."""
        if self._max_delay <= 0:
            return
        deadline = asyncio.get_running_loop().time() + self._max_delay
        while len(self._buffer) < self._max_events and not (self._closing or self._waiters):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.failure is not None:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _drain_one(self) -> None:
        async with self._drain_lock:
            if self.failure is not None:
                raise self.failure
            count = min(len(self._buffer), self._max_events)
            batch = [self._buffer.popleft() for _ in range(count)]
            self._unwritten -= sum(journaled(record) for record in batch)
            try:
                await self._write(batch)
                self._deliver_batch([r for r in batch if not isinstance(r, StrategyConfigured)])
            finally:
                # Counted even when cancelled mid-write (then committed or not, but
                # never delivered), so that flush() cannot wait for it forever.
                self._done += count
                self._release_waiters()

    async def _write(self, batch: list[Record]) -> None:
        records = [r for r in batch if journaled(r)]
        if not records:
            return
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.journal.write, records)
        except JournalError as exc:
            self._fail(exc)
            raise
        except Exception as exc:
            failure = JournalError(f"journal at {self.journal.path} cannot be written: {exc}")
            self._fail(failure)
            raise failure from exc
        self.stats.add(len(records), time.perf_counter() - started)

    def _deliver_batch(self, events: list[Event]) -> None:
        if not events:
            return
        try:
            self._deliver(events)
        except Exception:
            # The journal has the events; one failing receiver must not stop the others.
            self.deliver_errors += 1
            log.exception("journal_deliver_failed", events=len(events))

    def _release_waiters(self) -> None:
        still = []
        for target, waiter in self._waiters:
            if target <= self._done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    def _fail(self, failure: JournalError) -> None:
        if self.failure is None:
            self.failure = failure
            log.error("journal_failed", path=str(self.journal.path), error=failure.message)
        self._buffer.clear()
        self._unwritten = 0
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(failure)
        self._waiters = []
        self._wake.set()


class DirectDelivery:
    """The stage when the journal is off (``journal.enabled = false``).

    The same interface as :class:`JournalWriter` for the daemon, but each event is
    handed to ``deliver`` as it is submitted and nothing is written: clients hear
    of trades that no restart will know.
    """

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._closed = asyncio.Event()
        self.failure: JournalError | None = None
        self.stats = WriteStats()

    @property
    def pending(self) -> int:
        return 0

    def submit(self, record: Record) -> None:
        if not self._closed.is_set() and not isinstance(record, StrategyConfigured):
            self._deliver((record,))

    async def run(self) -> None:
        """Return once closed (the daemon supervises this like the writer's task)."""
        await self._closed.wait()

    async def flush(self) -> None:
        """Everything submitted is already delivered."""

    async def close(self) -> None:
        self._closed.set()
