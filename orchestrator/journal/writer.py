"""The journal's writer stage: commit before tell.

:class:`JournalWriter` sits between the bus and the servers. Events go in with
:meth:`JournalWriter.submit` (a synchronous bus handler, on the event loop); one
long-lived thread, ``journal-writer``, started by :meth:`JournalWriter.run`,
commits them and hands each committed group back to the loop with one
``call_soon_threadsafe``, which delivers its events, in order, to ``deliver``.
So no client is told of anything a crash could lose from the journal, and the
loop never waits for a commit: it only appends to a queue.

Group commit: the thread takes everything waiting in the queue (up to
``max_events``) as soon as its previous commit returns, so records that arrive
during a commit form the next group, written in one transaction; with a
positive ``max_delay`` a group that is not full also waits that long for more
(a flush sends it at once). The rows are encoded in the thread, not on the loop.

Quotes and bars never wait behind a commit: the journal does not write them, and
they derive from nothing it holds, so :meth:`JournalWriter.submit` delivers them
at once, ahead of the trades still committing. Other events the journal ignores
(risk alerts, execution status, job states) keep their place behind the
journaled ones (a rejection is not told before the signal it rejects): they are
delivered at once when nothing is waiting ahead of them, and otherwise held on
the loop and delivered right after the commit of what was submitted before them
(they never go to the thread, which has nothing to write of them).

The redo log (``journal.synchronous = "NORMAL"``, the default;
``orchestrator.journal.redo``). A commit in NORMAL survives a process crash because
it is in the operating system when SQLite returns; a frame copied into the redo
log's shared memory map is there just as surely, for a fraction of the cost and
without the thread hop. So signals, orders, fills and order events
(:func:`told_when_logged`) are encoded on the loop, appended to the redo log and
told then, and SQLite commits them behind the tell. Those of one pass of the event
loop (the signal, order and fill a tick sets off) are encoded together, appended as
one frame at the pass's end (``call_soon``) and handed to the thread as one item,
``commit_lag`` later (``journal.redo_commit_lag_ms``) or as soon as ``max_events``
of them wait: a commit begun in the middle of a tick's burst takes a CPU from the
burst's sends and from the clients reading them, and the frames of one tick's burst
become one transaction. Whatever must wait for its commit hands the frames before
it over at once, and so do a flush and a close.
Status changes and the kill switch still wait for their commit (rare, and what the
daemon restores its strategies from), and so does everything submitted behind one of
them. The log is emptied once SQLite has committed all of it and it has grown past
``REDO_EMPTY_AT`` (past ``REDO_MAX_BYTES`` nothing more is told from it until then),
removed on a clean close, and kept after a failure: the next ``Journal.open`` redoes
it. With FULL (each commit waits for the disk) there is no redo log: an append does
not survive a power loss.

With the journal off (``journal.enabled = false``), :class:`DirectDelivery` takes
this stage's place and delivers every event as it is submitted.

Failure is fatal: a group whose commit fails is not delivered, nor is anything
after it, and ``run`` raises :class:`JournalError`, which stops the daemon. So
does a backlog beyond ``max_pending`` (the disk cannot keep up).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, auto

import structlog

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.redo import RedoLog, encode_frame
from orchestrator.journal.store import (
    RESTART_FILL_PREFIX,
    GroupRows,
    Journal,
    JournalBacklog,
    JournalError,
    Record,
    StrategyConfigured,
    WalCheckpointer,
    journaled,
)
from orchestrator.model.events import (
    BarClosed,
    Event,
    OrderLifecycle,
    OrderSubmitted,
    QuoteUpdated,
    SignalEmitted,
    StrategyStatusChanged,
    TradeExecuted,
)

log = structlog.get_logger("orchestrator.journal.store")


Deliver = Callable[[Sequence[Event], Sequence[int | None]], None]
"""Hands on events and their stream positions (:meth:`Journal.write`; None for an
event the journal does not write), in the same order."""

THREAD_NAME = "journal-writer"
CHECKPOINT_THREAD_NAME = "journal-checkpoint"
CHECKPOINT_SPACING = 1.0
"""Seconds at least between two checkpoints of the log (each after a commit): with
NORMAL, what a power loss can take is the commits since the last one."""
WAL_FRAMES_BEHIND = 10_000
"""Log frames (pages) a checkpoint beside busy commits may leave uncopied before the
writer's thread checkpoints itself, between two commits, which empties the log."""

MARKET_DATA = (QuoteUpdated, BarClosed)
"""Events told at once, ahead of any commit in flight: not journaled, and made
from the feed alone, so telling them early cannot reveal an uncommitted trade."""


TOLD_WHEN_LOGGED = SignalEmitted | OrderSubmitted | TradeExecuted | OrderLifecycle
"""What the redo log may stand for the commit of (see :func:`told_when_logged`)."""

REDO_EMPTY_AT = 64 * 1024
REDO_MAX_BYTES = 8 * 1024 * 1024
"""Past this the writer stops telling from the redo log until SQLite has all of it
(commits that never catch up would grow it without end, and a start redoes all of
it in memory)."""
"""Bytes past which the redo log is emptied once SQLite has committed all of it."""


def told_when_logged(record: Record) -> bool:
    """Whether ``record`` may be told once it is in the redo log: a signal, an order,
    a fill or an order event, whose position is the one it is given now. Not a
    restart fill (``Journal.resolve_unfilled`` wrote it already, at another
    position), a status change or the kill switch."""
    if isinstance(record, TradeExecuted):
        return not record.fill.id.startswith(RESTART_FILL_PREFIX)
    return isinstance(record, TOLD_WHEN_LOGGED)


class _Control(Enum):
    """What the loop puts in the thread's queue besides records."""

    FLUSH = auto()
    """Commit what is waiting now, without the rest of ``max_delay``."""
    STOP = auto()
    """Commit what came before, then end the thread."""


@dataclass(slots=True)
class WriteStats:
    """Commit latency of the groups written so far (groups with nothing to journal
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


@dataclass(frozen=True, slots=True)
class _Committed:
    """A group the thread has committed, for the loop to deliver."""

    size: int
    """Records taken from the queue that the redo log did not hold (StrategyConfigured
    ones included)."""
    events: list[Event]
    positions: list[int | None]
    """Each event's stream position (None: not journaled)."""
    seconds: float
    logged: int = 0
    """Records of the group that the redo log held (told already)."""

    @property
    def written(self) -> int:
        """Records the journal wrote: those and the logged ones."""
        return self.size + self.logged


@dataclass(frozen=True, slots=True)
class _Logged:
    """One pass's records, encoded, in the redo log and told: the thread commits them."""

    rows: GroupRows
    count: int


class JournalWriter:
    """Commits records in groups on its own thread and delivers events after they commit.

    ``deliver`` gets each committed group's events (not the StrategyConfigured
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
        redo: RedoLog | None = None,
        commit_lag: float = 0.0,
    ) -> None:
        if max_events < 1 or max_pending < 1 or max_delay < 0 or commit_lag < 0:
            raise ValueError(
                "max_events and max_pending must be positive, max_delay and commit_lag >= 0"
            )
        self.journal = journal
        self._deliver = deliver
        self._max_events = max_events
        self._max_delay = max_delay
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[Record | _Logged | _Control] = queue.SimpleQueue()
        self._carried: Record | _Logged | None = None
        """Taken from the queue by the thread for the next group (this one was full)."""
        self._redo = redo
        self._pass_tell: list[tuple[Event, bool]] = []
        """What this pass tells at its end, in order, with whether it goes into the redo
        log (those are not appended yet: see _end_pass)."""
        self._pass_logged = 0
        """Of them, those for the redo log."""
        self._pass_ending = False
        """Whether a call of _end_pass is scheduled."""
        self._logged = 0
        """Records appended to the redo log so far (told, or being told)."""
        self._logged_committed = 0
        """Of them, those SQLite has committed (in the order they were appended)."""
        self._held_puts: list[Record | _Logged] | None = None
        """While a pass is told: what is submitted meanwhile, queued after the pass."""
        self._commit_lag = commit_lag
        self._lagging: list[_Logged] = []
        """Told frames not yet handed to the thread (see the module docstring)."""
        self._lagging_records = 0
        self._lag_timer: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._checkpoints: threading.Thread | None = None
        self._checkpoint_due = threading.Event()
        self._checkpoints_ending = threading.Event()
        self._wal_behind = False
        self.checkpoints = 0
        """Checkpoints done beside the commits (see Journal.checkpoint_elsewhere)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._abandon = False
        """Set by the loop on a failure: the thread commits nothing more."""
        self._unwritten = 0
        """Records queued that the journal must write (what is delivered at once is not)."""
        self._submitted = 0
        self._done = 0
        self._in_order: deque[tuple[Event, bool]] = deque()
        """What waits to be delivered, in submission order, with whether it waits for its
        own commit (True) or only for those ahead of it (an event the journal ignores,
        held here on the loop: it never crosses to the thread)."""
        self._waiters: list[tuple[tuple[int, int], asyncio.Future[None]]] = []
        """Flushes waiting, each for (_done, _logged_committed) to reach its target: the
        logged records are counted apart, since unjournaled events told behind them are
        done at their tell, before the logged ones' commits."""
        self._ended = asyncio.Event()
        """Set once the thread has ended or the writer has failed: run() returns."""
        self._running = False
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
            redo=journal.redo_log() if config.synchronous == "NORMAL" else None,
            commit_lag=config.redo_commit_lag_ms / 1000.0,
        )

    @property
    def pending(self) -> int:
        """Records submitted but not yet committed and delivered."""
        return self._submitted - self._done + self._logged_uncommitted + self._pass_logged

    @property
    def _logged_uncommitted(self) -> int:
        return self._logged - self._logged_committed

    # -------------------------------------------------------------- the loop's side

    def submit(self, record: Record) -> None:
        """Queue ``record`` for the thread, or tell it at once (see the module
        docstring); a no-op once the writer has failed or closed."""
        if self.failure is not None or self._closed:
            return
        if journaled(record):
            # Only what must be written counts: quotes and bars never touch the disk,
            # so a fast feed alone cannot make the journal "behind".
            if self._unwritten >= self._max_pending:
                self._fail(
                    JournalBacklog(
                        f"journal at {self.journal.path} is {self._unwritten} events behind: "
                        "the disk cannot keep up"
                    )
                )
                return
            if self._loggable(record):
                self._log(record)
                return
            self._end_pass()  # what waits for its commit comes after what is logged
            if self.failure is not None:
                return
            if isinstance(record, StrategyStatusChanged) and record.config is not None:
                config = StrategyConfigured(
                    record.strategy_id, record.name, record.config, record.ts
                )
                self._enqueue(config)
            self._enqueue(record)
            if not isinstance(record, StrategyConfigured):  # told to nobody: not waited for
                self._in_order.append((record, True))
        # Not journaled, so not a StrategyConfigured: an Event (mypy cannot tell).
        elif self._pass_tell and not isinstance(record, MARKET_DATA):
            self._submitted += 1
            self._pass_tell.append((record, False))  # type: ignore[arg-type]
        elif isinstance(record, MARKET_DATA) or not self._in_order:
            self._deliver_events((record,), (None,))  # type: ignore[arg-type]
        else:
            self._submitted += 1
            self._in_order.append((record, False))  # type: ignore[arg-type]

    def _loggable(self, record: Record) -> bool:
        """Whether ``record`` may be told from the redo log: nothing waits ahead of it
        for a commit, and the log is within its bound (past it, records wait for
        their commits until SQLite has all of the log and it is emptied)."""
        redo = self._redo
        return (
            redo is not None
            and not self._in_order
            and redo.size < REDO_MAX_BYTES
            and told_when_logged(record)
        )

    def _log(self, record: Record) -> None:
        """Keep ``record`` for this pass's frame (appended and told at the pass's end)."""
        loop = asyncio.get_running_loop()
        self._unwritten += 1
        self._pass_logged += 1
        self._pass_tell.append((record, True))  # type: ignore[arg-type]  # an Event
        if not self._pass_ending:
            # The pass's first is told at once (a tick's fill comes before the strategy's
            # reaction to the tick); what follows it in this pass, at the pass's end.
            self._pass_ending = True
            loop.call_soon(self._pass_ended)
            self._end_pass()

    def _pass_ended(self) -> None:
        self._pass_ending = False
        self._end_pass()

    def _end_pass(self) -> None:
        """Encode this pass's records, append them to the redo log in one write, hand
        them to the thread (in groups of at most ``max_events``) and tell them, with
        what waited behind them, in order."""
        tell = self._pass_tell
        if not self._pass_logged or self._redo is None or self.failure is not None:
            return
        records: list[Record] = [event for event, logged in tell if logged]
        step = self._max_events
        try:
            chunks = [
                self.journal.encode(records[i : i + step]) for i in range(0, len(records), step)
            ]
            self._redo.append(*(encode_frame(rows.state()) for rows in chunks))
        except (
            Exception
        ) as exc:  # as a commit that fails: nothing of it is told, and the daemon stops
            self._fail(JournalError(f"redo log {self._redo.path} cannot be written: {exc}"))
            return
        self._pass_tell, self._pass_logged = [], 0
        self._logged += len(records)
        told = (position for rows in chunks for position in rows.positions)
        positions = [next(told) if logged else None for _, logged in tell]
        self._done += len(tell) - len(records)  # the unjournaled ones are done once told
        logged = [_Logged(rows, len(rows.positions)) for rows in chunks]
        if self._held_puts is not None:  # told while telling another pass: queued after it
            self._held_puts += logged
            self._deliver_events([event for event, _ in tell], positions)
            return
        # Told before the thread is woken: its commit would take the GIL from the sends.
        self._held_puts = []
        try:
            self._deliver_events([event for event, _ in tell], positions)
        finally:
            held, self._held_puts = self._held_puts, None
            self._hand_over([*logged, *held])  # what was submitted while telling comes after

    def _hand_over(self, items: list[Record | _Logged]) -> None:
        """Queue ``items`` for the thread behind the frames still lagging; frames alone
        lag themselves, until ``commit_lag`` passes or ``max_events`` records lag."""
        frames = [item for item in items if isinstance(item, _Logged)]
        if self._commit_lag <= 0 or len(frames) < len(items):
            self._end_lag()
            for item in items:
                self._queue.put(item)
            return
        self._lagging += frames
        self._lagging_records += sum(frame.count for frame in frames)
        if self._lagging_records >= self._max_events:
            self._end_lag()
        elif self._lag_timer is None:
            loop = asyncio.get_running_loop()
            self._lag_timer = loop.call_later(self._commit_lag, self._end_lag)

    def _end_lag(self) -> None:
        """Hand the lagging frames to the thread."""
        for frame in self._take_lagging():
            self._queue.put(frame)

    def _take_lagging(self) -> list[_Logged]:
        if self._lag_timer is not None:
            self._lag_timer.cancel()
            self._lag_timer = None
        lagging, self._lagging, self._lagging_records = self._lagging, [], 0
        return lagging

    def _enqueue(self, record: Record) -> None:
        self._unwritten += 1
        self._submitted += 1
        if self._held_puts is not None:
            self._held_puts.append(record)
            return
        if self._lagging:
            self._end_lag()  # the frames told before it are committed before it
        self._queue.put(record)

    async def run(self) -> None:
        """Start the thread and wait for it until :meth:`close`; raises JournalError
        when the journal fails."""
        if self._running:
            raise RuntimeError("JournalWriter.run is already running")
        self._running = True
        try:
            self._start_thread()
            await self._ended.wait()
            if self.failure is not None:
                raise self.failure
        finally:
            self._running = False

    async def flush(self) -> None:
        """Return once everything submitted so far is committed and delivered."""
        if self.failure is not None:
            raise self.failure
        self._end_pass()
        if self.failure is not None:
            raise self.failure
        self._end_lag()
        target = (self._submitted, self._logged)
        if self._reached(target):
            return
        self._start_thread()  # before run() (a start that failed half way): drain anyway
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._queue.put(_Control.FLUSH)  # a group waiting for more records goes now
        await waiter

    async def close(self) -> None:
        """Commit and deliver what is queued, stop and join the thread, close the journal."""
        try:
            if self.failure is None:
                await self.flush()
        finally:
            self._closed = True
            await self._stop_thread()
            if self._redo is not None:
                # After a failure the log may hold what SQLite has not: the next open redoes it.
                self._redo.close(remove=self.failure is None and not self._logged_uncommitted)
            await asyncio.to_thread(self.journal.close)

    def _start_thread(self) -> None:
        if self._thread is not None or self._closed:
            return  # running, or closed (the journal too) before it ever ran
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._write_forever, name=THREAD_NAME, daemon=True)
        self._thread.start()
        checkpointer = self.journal.checkpoint_elsewhere()
        self._checkpoints = threading.Thread(
            target=self._checkpoint_forever,
            args=(checkpointer,),
            name=CHECKPOINT_THREAD_NAME,
            daemon=True,
        )
        self._checkpoints.start()

    async def _stop_thread(self) -> None:
        thread = self._thread
        if thread is None:
            self._ended.set()
            return
        self._queue.put(_Control.STOP)  # close's flush handed the lagging frames over
        await self._ended.wait()  # set by the thread's last callback, after every group's
        await asyncio.to_thread(thread.join)
        checkpoints = self._checkpoints
        if checkpoints is not None:
            self._checkpoints_ending.set()
            self._checkpoint_due.set()
            await asyncio.to_thread(checkpoints.join)

    def _on_committed(self, group: _Committed) -> None:
        if self.failure is not None:
            return  # committed after the failure: never told
        self._unwritten -= group.written
        if group.written:
            self.stats.add(group.written, group.seconds)
        events, positions = self._release(group)
        self._deliver_events(events, positions)
        self._done += group.size + len(events) - len(group.events)
        self._logged_committed += group.logged
        self._empty_redo()
        self._release_waiters()

    def _empty_redo(self) -> None:
        redo = self._redo
        if (
            redo is not None
            and redo.size > REDO_EMPTY_AT
            and not self._logged_uncommitted
            and not self._pass_logged
        ):
            try:
                redo.empty()
            except OSError as exc:  # not fatal: the log only grows, and the next open redoes it
                log.warning("journal_redo_not_emptied", path=str(redo.path), error=str(exc))

    def _release(self, group: _Committed) -> tuple[list[Event], list[int | None]]:
        """``group``'s events in submission order, with the held events that waited
        only for them (the thread commits in that order, so the group's events are
        the next ones waiting in ``_in_order``)."""
        events: list[Event] = []
        positions: list[int | None] = []
        for event, position in zip(group.events, group.positions, strict=True):
            self._release_held(events, positions)
            self._in_order.popleft()  # this very event, which waited for its commit
            events.append(event)
            positions.append(position)
        self._release_held(events, positions)
        return events, positions

    def _release_held(self, events: list[Event], positions: list[int | None]) -> None:
        in_order = self._in_order
        while in_order and not in_order[0][1]:
            events.append(in_order.popleft()[0])
            positions.append(None)

    def _deliver_events(self, events: Sequence[Event], positions: Sequence[int | None]) -> None:
        if not events:
            return
        try:
            self._deliver(events, positions)
        except Exception:
            # The journal has the events; one failing receiver must not stop the others.
            self.deliver_errors += 1
            log.exception("journal_deliver_failed", events=len(events))

    def _reached(self, target: tuple[int, int]) -> bool:
        done, logged = target
        return self._done >= done and self._logged_committed >= logged

    def _release_waiters(self) -> None:
        still = []
        for target, waiter in self._waiters:
            if self._reached(target):
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    def _fail(self, failure: JournalError) -> None:
        if self.failure is None:
            self.failure = failure
            log.error("journal_failed", path=str(self.journal.path), error=failure.message)
        self._abandon = True
        self._take_lagging()  # never committed: the redo log keeps them for the next open
        self._queue.put(_Control.STOP)
        self._unwritten = 0
        self._in_order.clear()  # never told: nothing after a failed commit is
        self._pass_tell, self._pass_logged = [], 0
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(failure)
        self._waiters = []
        self._ended.set()

    # -------------------------------------------------------------- the thread's side

    def _write_forever(self) -> None:
        """The thread: take a group, commit it, hand it to the loop; until STOP."""
        try:
            stop = False
            while not stop and not self._abandon:
                group, stop = self._take_group()
                if group and not self._abandon:
                    committed = self._commit(group)
                    self._post(self._on_committed, committed)
                    if committed.written:
                        self._after_commit()
        except JournalError as exc:
            self._post(self._fail, exc)
        except Exception as exc:
            failure = JournalError(f"journal at {self.journal.path} cannot be written: {exc}")
            self._post(self._fail, failure)
        finally:
            self._post(self._ended.set)

    def _after_commit(self) -> None:
        """Once a commit is on its way to the loop: the log's checkpoint, on its own thread,
        or here when that one fell too far behind the commits (nothing writes meanwhile)."""
        if self._wal_behind:
            self._wal_behind = False
            try:
                self.journal.checkpoint()
            except JournalError as exc:
                log.warning("journal_checkpoint_failed", error=exc.message)
        self._checkpoint_due.set()

    def _checkpoint_forever(self, checkpointer: WalCheckpointer) -> None:
        """The checkpoint thread: after commits, at most every CHECKPOINT_SPACING seconds."""
        try:
            while True:
                self._checkpoint_due.wait()
                if self._checkpoints_ending.is_set():
                    return
                self._checkpoint_due.clear()
                try:
                    self._wal_behind = checkpointer.checkpoint() > WAL_FRAMES_BEHIND
                    self.checkpoints += 1
                except JournalError as exc:
                    # Not fatal: the commits stand, and the next checkpoint copies them.
                    log.warning("journal_checkpoint_failed", error=exc.message)
                self._checkpoints_ending.wait(CHECKPOINT_SPACING)
        finally:
            checkpointer.close()

    def _take_group(self) -> tuple[list[Record | _Logged], bool]:
        """What waits in the queue (blocking for the first), up to ``max_events``
        records; and whether STOP came."""
        group: list[Record | _Logged] = []
        size = 0
        item, self._carried = self._carried or self._queue.get(), None
        deadline = time.monotonic() + self._max_delay if self._max_delay > 0 else None
        while True:
            if item is _Control.STOP:
                return group, True
            if item is _Control.FLUSH:
                deadline = None
            else:
                count = item.count if isinstance(item, _Logged) else 1
                if group and size + count > self._max_events:
                    self._carried = item  # a pass's frame stays whole: it opens the next group
                    return group, False
                group.append(item)
                size += count
                if size >= self._max_events:
                    return group, False
            try:
                item = self._next(deadline)
            except queue.Empty:
                return group, False

    def _next(self, deadline: float | None) -> Record | _Logged | _Control:
        if deadline is None:
            return self._queue.get_nowait()
        return self._queue.get(timeout=max(0.0, deadline - time.monotonic()))

    def _commit(self, group: list[Record | _Logged]) -> _Committed:
        rows = self._encode(group)
        started = time.perf_counter()
        written = iter(self.journal.write_rows(rows))
        seconds = time.perf_counter() - started
        events: list[Event] = []
        positions: list[int | None] = []
        size = logged = 0
        for item in group:
            if isinstance(item, _Logged):
                size += item.count
                logged += item.count
                for _ in range(item.count):
                    next(written)
                continue
            size += 1
            position = next(written)
            if not isinstance(item, StrategyConfigured):
                events.append(item)
                positions.append(position)
        return _Committed(size - logged, events, positions, seconds, logged)

    def _encode(self, group: list[Record | _Logged]) -> GroupRows:
        """One transaction's rows, in queue order: what the loop encoded for the redo
        log as it is, the rest encoded here (at positions after the logged ones')."""
        rows = GroupRows()
        waiting: list[Record] = []
        for item in group:
            if isinstance(item, _Logged):
                if waiting:
                    rows.extend(self.journal.encode(waiting))
                    waiting = []
                rows.extend(item.rows)
            else:
                waiting.append(item)
        if waiting:
            rows.extend(self.journal.encode(waiting))
        return rows

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            loop.call_soon_threadsafe(callback, *args)


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
            self._deliver((record,), (None,))

    async def run(self) -> None:
        """Return once closed (the daemon supervises this like the writer's task)."""
        await self._closed.wait()

    async def flush(self) -> None:
        """Everything submitted is already delivered."""

    async def close(self) -> None:
        self._closed.set()
