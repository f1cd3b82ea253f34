"""Journal commits per second: what batching buys, what durability costs.

Three measurements, each in a fresh temporary directory (``JOURNAL_BENCH_DIR``
chooses where; the file system is printed, since fsync cost is the whole story):

- ``Journal.write``: for batch sizes 1, 10, 100 and 1000, with ``synchronous``
  FULL and NORMAL, commits and events per second. The events are a real mix:
  each trade is a SignalEmitted, an OrderSubmitted and a TradeExecuted whose
  fill went through a PortfolioBook (so the position snapshot is written too).
  Only the ``write`` calls are timed. The baseline, measured in the same run, is
  bare SQLite doing the same rows into the same schema: the journal's
  migrations (indexes included), the rows of the same events (a signal, an
  order, a fill and its position snapshot) built before the clock starts, one
  transaction per batch with a plain ``executemany`` INSERT per table, the same
  ``synchronous``. (It used to be one five-column row per event into one table
  without indexes: a floor for other rows than the journal's, which made the
  journal look three times slower than its rows cost.)
- ``JournalWriter``: the stage the daemon runs, built from the config as the
  daemon builds it (in NORMAL with its redo log), its thread committing what the
  loop hands over, at most 100 and at most 1,000 events a commit, fed a flood
  of trades from the event loop (groups form by themselves while a commit is in
  flight; compared with bare SQLite at that batch size), then fed one trade at
  a time with the loop otherwise idle: how long a client waits before it is
  told, for the commit (FULL) or the redo log's append (NORMAL) (p50 and p99
  from submit to deliver).
- ``rebuild_book``: fills replayed per second when a daemon restarts.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import Verdict, machine, percentile, table
from gateways.config import LoggingConfig
from gateways.logs import configure_logging
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import (
    FILL_COLUMNS,
    MIGRATIONS,
    ORDER_COLUMNS,
    SIGNAL_COLUMNS,
    Journal,
    Record,
)
from orchestrator.journal.writer import JournalWriter
from orchestrator.model.events import Event, OrderSubmitted, SignalEmitted, TradeExecuted
from orchestrator.model.orders import Fill, Order, Side, Signal, TradeStatus
from orchestrator.trading.portfolio import PortfolioBook

BATCH_SIZES = (1, 10, 100, 1000)
WRITER_BATCHES = (100, 1000)
"""``max_events`` of the JournalWriter runs, each against bare SQLite at that batch size."""
MODES = ("FULL", "NORMAL")
WRITER_TARGET = 0.60
"""Issue #15: the writer's events/s against bare SQLite's at the same batch size."""
TIME_BUDGET = 0.5
"""Seconds of write time per round (at least MIN_COMMITS commits, at most MAX_EVENTS)."""
ROUNDS = 3
"""Rounds per set-up, journal and bare in turn; the best of each is kept."""
TABLE_ROUNDS = 2
TABLE_TIME_BUDGET = 0.3
"""The same for the table of ``Journal.write`` by batch size, which has no target: the
writer's verdicts keep ``ROUNDS`` of ``TIME_BUDGET``."""
MIN_COMMITS = 20
MAX_EVENTS = 100_000
SNAPSHOT_COLUMNS = "fill_id, strategy_id, symbol, quantity, entry_price, realized_pnl, ts"
FLOOD_TRADES = 10_000
IDLE_TRADES = 100
START = 1_700_000_000.0
STRATEGIES = ("sma", "rsi", "bb", "macd")
SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")


def trades(book: PortfolioBook | None = None) -> Iterator[list[Record]]:
    """Endless trades, three events each, every fill applied to a real book."""
    book = book if book is not None else PortfolioBook()
    n = 0
    while True:
        n += 1
        strategy, symbol = STRATEGIES[n % len(STRATEGIES)], SYMBOLS[n % len(SYMBOLS)]
        side = Side.BUY if (n // 20) % 2 == 0 else Side.SELL
        price, ts = 100.0 + (n % 97) * 0.25, START + n * 0.001
        signal = Signal(
            f"sig_{n:09d}", strategy, strategy.upper(), symbol, side, price, 10.0, 0.8, ts, {}
        )
        order = Order(f"order_{n:09d}", strategy, symbol, side, 10.0, ts, signal_id=signal.id)
        fill = Fill(
            f"trade_{n:09d}", order.id, strategy, symbol, side, 10.0, price, 0.1, ts,
            TradeStatus.FILLED,
        )  # fmt: skip
        yield [
            SignalEmitted(signal),
            OrderSubmitted(order),
            TradeExecuted(fill, book.apply_fill(fill)),
        ]


def batches(size: int) -> Iterator[list[Record]]:
    source = trades()
    pending: list[Record] = []
    while True:
        while len(pending) < size:
            pending.extend(next(source))
        yield pending[:size]
        pending = pending[size:]


# ------------------------------------------------------------------ Journal.write


@dataclass(frozen=True, slots=True)
class Rate:
    commits: int
    events: int
    seconds: float

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def millis_per_commit(self) -> float:
        return self.seconds / self.commits * 1000.0


def measure_journal(
    path: Path, size: int, mode: str, source: Iterator[list[Record]], budget: float
) -> Rate:
    with Journal.open(path, mode) as journal:
        events = 0
        spent = 0.0
        for commits, batch in enumerate(source, start=1):
            started = time.perf_counter()
            journal.write(batch)
            spent += time.perf_counter() - started
            events += len(batch)
            if (spent >= budget and commits >= MIN_COMMITS) or events >= MAX_EVENTS:
                return Rate(commits, events, spent)
    raise AssertionError("unreachable")


def best_rates(directory: Path, size: int, mode: str) -> tuple[Rate, Rate]:
    """The best of TABLE_ROUNDS rounds of the journal and of bare SQLite, taken in turn."""
    source = batches(size)
    journal_path = directory / f"journal-{size}-{mode}.sqlite3"
    journal, bare = [], []
    for _ in range(TABLE_ROUNDS):
        journal.append(measure_journal(journal_path, size, mode, source, TABLE_TIME_BUDGET))
        bare.append(measure_bare(directory, size, mode, TABLE_TIME_BUDGET))
    return (
        max(journal, key=lambda r: r.events_per_second),
        max(bare, key=lambda r: r.events_per_second),
    )


@dataclass(slots=True)
class BareRows:
    """A batch as bare SQLite gets it: the journal's rows, built before the clock starts."""

    signals: list[tuple[object, ...]]
    orders: list[tuple[object, ...]]
    fills: list[tuple[object, ...]]
    snapshots: list[tuple[object, ...]]

    @classmethod
    def of(cls, batch: Sequence[Record]) -> BareRows:
        rows = cls([], [], [], [])
        for record in batch:
            if isinstance(record, SignalEmitted):
                s = record.signal
                rows.signals.append(
                    (s.id, s.strategy_id, s.strategy_name, s.symbol, s.action, s.quantity,
                     s.price, s.confidence, "{}", s.ts)
                )  # fmt: skip
            elif isinstance(record, OrderSubmitted):
                o = record.order
                rows.orders.append(
                    (o.id, o.strategy_id, o.symbol, o.side, o.quantity, o.purpose, o.signal_id,
                     o.ts)
                )  # fmt: skip
            elif isinstance(record, TradeExecuted):
                rows.add_trade(record)
        return rows

    def add_trade(self, event: TradeExecuted) -> None:
        f, change = event.fill, event.change
        self.fills.append(
            (f.id, f.order_id, f.strategy_id, f.symbol, f.side, f.quantity, f.price,
             f.commission, f.status, f.reason, f.ts)
        )  # fmt: skip
        if change is not None and change.applied:
            self.snapshots.append(
                (f.id, f.strategy_id, f.symbol, change.quantity_after, change.entry_price_after,
                 change.realized_pnl, f.ts)
            )  # fmt: skip

    @property
    def events(self) -> int:
        return len(self.signals) + len(self.orders) + len(self.fills)


def write_bare(db: sqlite3.Connection, rows: BareRows) -> None:
    """One transaction, one plain INSERT per table: the least SQLite can do for these rows."""
    db.execute("BEGIN IMMEDIATE")
    db.executemany(f"INSERT INTO signals ({SIGNAL_COLUMNS}) VALUES ({marks(10)})", rows.signals)
    db.executemany(f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({marks(8)})", rows.orders)
    db.executemany(f"INSERT INTO fills ({FILL_COLUMNS}) VALUES ({marks(11)})", rows.fills)
    db.executemany(
        f"INSERT INTO position_snapshots ({SNAPSHOT_COLUMNS}) VALUES ({marks(7)})", rows.snapshots
    )
    db.execute("COMMIT")


def marks(count: int) -> str:
    return ", ".join("?" * count)


def fresh(path: Path) -> Path:
    """``path`` with no database there (a round must not replay the previous one's ids)."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return path


def measure_bare(directory: Path, size: int, mode: str, budget: float) -> Rate:
    """The floor: the same rows (pre-built) into the same schema (the journal's
    migrations, indexes included), same batching, same ``synchronous``."""
    db = sqlite3.connect(fresh(directory / f"bare-{size}-{mode}.sqlite3"), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {mode}")
        db.executescript(";".join(MIGRATIONS))
        source = batches(size)
        commits = events = 0
        spent = 0.0
        while True:
            rows = BareRows.of(next(source))
            started = time.perf_counter()
            write_bare(db, rows)
            spent += time.perf_counter() - started
            commits += 1
            events += rows.events
            if (spent >= budget and commits >= MIN_COMMITS) or events >= MAX_EVENTS:
                return Rate(commits, events, spent)
    finally:
        db.close()


# ------------------------------------------------------------------ JournalWriter


@dataclass(frozen=True, slots=True)
class WriterRun:
    events: int
    seconds: float
    batches: int
    mean_commit_ms: float
    max_commit_ms: float
    idle_p50_ms: float
    idle_p99_ms: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


async def measure_writer(directory: Path, mode: str, max_events: int) -> WriterRun:
    told: list[int] = []
    arrived = asyncio.Event()

    def deliver(events: Sequence[Event], _: Sequence[int | None]) -> None:
        told.append(len(events))
        arrived.set()

    journal = Journal.open(fresh(directory / f"writer-{max_events}-{mode}.sqlite3"), mode)
    config = JournalConfig(
        batch_max_events=max_events, max_pending_events=10_000_000, synchronous=mode
    )
    writer = JournalWriter.from_config(journal, deliver, config)  # NORMAL: with its redo log
    task = asyncio.create_task(writer.run(), name="journal-writer")
    source = trades()
    flood = [record for _ in range(FLOOD_TRADES) for record in next(source)]
    started = time.perf_counter()
    for i, record in enumerate(flood):
        writer.submit(record)
        if i % 300 == 299:
            await asyncio.sleep(0)  # the bus publishes in bursts between other work
    await writer.flush()
    seconds = time.perf_counter() - started
    stats = writer.stats
    flood_batches = stats.batches
    mean_ms, max_ms = stats.mean_seconds * 1000.0, stats.max_seconds * 1000.0

    waits = []
    for _ in range(IDLE_TRADES):
        trade = next(source)
        arrived.clear()
        submitted = time.perf_counter()
        for record in trade:
            writer.submit(record)
        await arrived.wait()
        waits.append(time.perf_counter() - submitted)
    await writer.close()
    await task
    waits.sort()
    return WriterRun(
        len(flood),
        seconds,
        flood_batches,
        mean_ms,
        max_ms,
        percentile(waits, 0.5) * 1000.0,
        percentile(waits, 0.99) * 1000.0,
    )


def writer_verdict(mode: str, size: int, run: WriterRun, bare: Rate) -> Verdict:
    share = run.events_per_second / bare.events_per_second
    return Verdict(
        f"journal writer, synchronous {mode}, batches of {size:,}",
        f"{share:.1%} of bare SQLite ({run.events_per_second:,.0f} events/s)",
        f">= {WRITER_TARGET:.0%}",
        share >= WRITER_TARGET,
    )


def best_writer_run(directory: Path, mode: str, max_events: int) -> tuple[WriterRun, Rate]:
    """The best of ROUNDS floods and of ROUNDS bare SQLite rounds, taken in turn, so
    that both meet the same load on a shared machine."""
    runs, bare = [], []
    for _ in range(ROUNDS):
        runs.append(asyncio.run(measure_writer(directory, mode, max_events)))
        bare.append(measure_bare(directory, max_events, mode, TIME_BUDGET))
    return (
        max(runs, key=lambda r: r.events_per_second),
        max(bare, key=lambda r: r.events_per_second),
    )


def measure_rebuild(directory: Path) -> tuple[int, float]:
    with Journal.open(directory / "journal-1000-FULL.sqlite3") as journal:
        fills = journal.counts()["fills"]
        started = time.perf_counter()
        journal.rebuild_book()
        return fills, time.perf_counter() - started


# ------------------------------------------------------------------ report


def file_system(directory: Path) -> str:
    """The mount (and type) holding ``directory``, from /proc/mounts when there is one."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                _, point, fs_type, *_ = line.split()
                if str(directory).startswith(point) and len(point) > len(best):
                    best, kind = point, fs_type
    except OSError:
        return "unknown file system"
    return f"{kind} at {best}"


def main() -> list[Verdict]:
    configure_logging(LoggingConfig(level="warning"))
    base = os.environ.get("JOURNAL_BENCH_DIR")
    with tempfile.TemporaryDirectory(prefix="journal-bench-", dir=base) as name:
        directory = Path(name)
        where = f"{directory} ({file_system(directory)})"
        measure_journal(directory / "warm-up.sqlite3", 10, "NORMAL", batches(10), TABLE_TIME_BUDGET)
        rows = []
        for mode in MODES:
            first: Rate | None = None
            for size in BATCH_SIZES:
                rate, bare = best_rates(directory, size, mode)
                first = first or rate
                rows.append(
                    (
                        mode,
                        size,
                        rate.commits,
                        rate.commits_per_second,
                        rate.events_per_second,
                        rate.millis_per_commit,
                        f"{rate.events_per_second / first.events_per_second:.1f}x",
                        bare.events_per_second,
                        f"{rate.events_per_second / bare.events_per_second:.0%}",
                    )
                )
        print(
            table(
                f"journal: Journal.write, one transaction per batch, events = signal + order "
                f"+ trade, best of {TABLE_ROUNDS} ({machine()}; {where})",
                (
                    "synchronous",
                    "batch",
                    "commits",
                    "commits/s",
                    "events/s",
                    "ms/commit",
                    "vs batch 1",
                    "bare SQLite events/s",
                    "of bare",
                ),
                rows,
            )
        )
        writer_rows = []
        writer_verdicts = []
        for mode in MODES:
            for size in WRITER_BATCHES:
                run, bare = best_writer_run(directory, mode, size)
                writer_verdicts.append(writer_verdict(mode, size, run, bare))
                writer_rows.append(
                    (
                        mode,
                        size,
                        run.events_per_second,
                        bare.events_per_second,
                        f"{run.events_per_second / bare.events_per_second:.0%}",
                        run.batches,
                        run.events / run.batches,
                        run.mean_commit_ms,
                        run.max_commit_ms,
                        run.idle_p50_ms,
                        run.idle_p99_ms,
                    )
                )
        print()
        print(
            table(
                f"journal: JournalWriter (its thread, group commit, no added delay): a flood of "
                f"{FLOOD_TRADES:,} trades ({FLOOD_TRADES * 3:,} events), then {IDLE_TRADES} "
                f"trades one at a time; best of {ROUNDS} floods against the best of {ROUNDS} "
                "bare SQLite rounds at that batch size, taken in turn",
                (
                    "synchronous",
                    "batch max",
                    "events/s",
                    "bare SQLite events/s",
                    "of bare",
                    "commits",
                    "events/commit",
                    "mean ms/commit",
                    "max ms/commit",
                    "idle wait p50 ms",
                    "idle wait p99 ms",
                ),
                writer_rows,
            )
        )
        fills, seconds = measure_rebuild(directory)
    full = {row[1]: row for row in rows if row[0] == "FULL"}
    print(
        f"\njournal: with FULL, batching 100 events per commit gives "
        f"{full[100][4]:,.0f} events/s against {full[1][4]:,.0f} one at a time; "
        f"restart replays {fills / seconds:,.0f} fills/s ({fills:,} in {seconds:.2f} s)"
    )
    figure = f"{full[100][4]:,.0f} events/s by 100, {full[1][4]:,.0f} one at a time"
    for each in writer_verdicts:
        print(each.line())
    return [Verdict("journal commits, synchronous FULL", figure, "none", None), *writer_verdicts]


if __name__ == "__main__":
    main()
