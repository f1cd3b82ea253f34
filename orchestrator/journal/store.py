"""The journal: an embedded SQLite database of everything a client can be told.

What it records, one table each: strategies (current status and run config),
their lifecycle (every status change, append-only), signals, orders accepted by
risk, fills (trades, rejections included) in commit order, and a position
snapshot after every fill that changed a position (quantity, average cost and
cumulative realized P&L, in the fill's transaction; rejections write none),
and every engagement and release of the kill switch made while the daemon runs
(schema 3; ``risk.halted_at_start`` engages it at every start, unjournaled), and
each run's stream epoch (schema 4), and the lifecycle of resting orders (schema 5:
limit, stop and stop-limit orders and a bracket's exits, one row per event;
:meth:`Journal.resting_orders` lists those still resting, which the daemon puts
back in the order pipeline after a restart), and what of its order each fill left
open (schema 7, ``fills.remaining``: partial fills; docs/orders.md#partial-fills).
Quotes and bars are not recorded. Restoring does not need the snapshots (the
fills are the truth); they make "where do we stand" one indexed query for tools.

Commit before tell: ``orchestrator.journal.writer.JournalWriter`` is the stage
between the bus and the servers; it commits events here in batches and only then
hands them to the servers. With ``synchronous = "NORMAL"`` (the default) a daemon
crash cannot lose a commit, a power loss can; with FULL not even a power loss
can (docs/journal.md). In NORMAL the writer tells signals, orders and fills once
they are in the redo log (``orchestrator.journal.redo``), and :meth:`Journal.open`
writes in whatever the log holds that SQLite does not, before anything else.

Idempotence. Every row keyed by an event id is written with ``INSERT OR
IGNORE``, so a batch written twice changes nothing. An id that comes back with
different content is not a replay but a reused id: that raises
:class:`JournalConflict` instead of silently dropping a trade. Id factories must
therefore resume after a restart: :meth:`Journal.id_watermarks` says where.

Restoring after a restart. :meth:`Journal.restorable_strategies` lists every
strategy that was ACTIVE or PAUSED, with its run config, and every strategy in
ERROR (not running, but listed with its error, as before the restart).
:meth:`Journal.rebuild_book` replays every fill, in commit order, into a
:class:`PortfolioBook`: positions, average cost and realized P&L come out
exactly as they were, because they are a function of the fills.

Orders that were accepted but have no fill (the deterministic rule). The paper
broker keeps waiting orders in memory, so after a restart nothing will ever
fill them, and an order whose fill was not committed was never reported to
anyone. :meth:`Journal.resolve_unfilled` therefore records a REJECTED fill
(``restart-<order id>``, reason given by the caller, e.g. "daemon restarted
before the order filled") for each such order, in the order they were journaled,
in one transaction. An order is thus never filled after a restart, so never twice, and
a second start finds nothing left to resolve.

Live venues (schema 4). An order sent to a live venue is also recorded in
``venue_orders``: its outcome is the venue's, so ``resolve_unfilled`` leaves it
to reconciliation (``gateways/venues/reconcile.py``), which asks the venue and
journals what it did. ``venue_fills`` keeps each venue fill's own order id and
fee as charged; ``venue_baselines`` what each account held besides the daemon's
positions.

Schema. ``PRAGMA user_version`` is the schema version, ``PRAGMA
application_id`` marks the file as ours. Opening runs each missing migration in
its own transaction. A journal from a newer daemon, a file that is not SQLite,
a SQLite file that is not a journal, or one that fails ``PRAGMA quick_check``
is refused with :class:`JournalError` naming the file; it is checked through a
read-only connection first and never modified (SQLite may leave empty ``-wal``
and ``-shm`` files beside it). An advisory lock (``<file>.lock``) keeps a second
daemon out; readers (:meth:`Journal.open_readonly`) need no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, TextIO

import orjson
import structlog
from pydantic import ValidationError

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.redo import RedoLog, read_redo, redo_path
from orchestrator.model.directories import APPLICATION, systemd_directory, xdg_directory
from orchestrator.model.errors import OrchestratorError
from orchestrator.model.events import (
    Event,
    HaltSource,
    KillSwitchChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderLifecycle,
    OrderPartiallyFilled,
    OrderReplaced,
    OrderSubmitted,
    OrderTriggered,
    SignalEmitted,
    StrategyStatus,
    StrategyStatusChanged,
    Topic,
    TradeExecuted,
)
from orchestrator.model.orders import (
    Bracket,
    Fill,
    Order,
    OrderPurpose,
    OrderType,
    Side,
    Signal,
    TimeInForce,
    TradeStatus,
    Trailing,
)
from orchestrator.risk.guardian import Halt
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.portfolio import PortfolioBook

log = structlog.get_logger("orchestrator.journal.store")

APPLICATION_ID: Final = 0x4F524348
"""``PRAGMA application_id`` of a journal ("ORCH")."""

SQLITE_MAGIC: Final = b"SQLite format 3\x00"

RESTART_FILL_PREFIX: Final = "restart-"
"""Id prefix of the REJECTED fills that :meth:`Journal.resolve_unfilled` records."""


class JournalError(OrchestratorError):
    """The journal cannot be opened, read or written."""

    code = "journal_error"


class JournalNotFound(JournalError):
    code = "journal_not_found"


class JournalLocked(JournalError):
    """Another daemon runs on this journal (its ``pid`` when the lock file names one)."""

    code = "journal_locked"

    def __init__(self, path: Path, lock_path: Path, pid: int | None) -> None:
        who = f"another orchestrator (pid {pid})" if pid is not None else "another orchestrator"
        super().__init__(
            f"{who} is running on the state directory {path.parent} (it holds {lock_path}); "
            "stop it first, or give this daemon its own journal.state_dir"
        )
        self.path = path
        self.pid = pid


class JournalConflict(JournalError):
    """An id already in the journal came back with different content."""

    code = "journal_conflict"


class JournalBacklog(JournalError):
    """More events wait for the journal than the configured bound."""

    code = "journal_backlog"


# ------------------------------------------------------------------ schema

_V1: Final = """
CREATE TABLE strategies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    config_json TEXT,
    error       TEXT,
    updated_at  REAL NOT NULL
);
CREATE TABLE lifecycle (
    seq         INTEGER PRIMARY KEY,
    strategy_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    previous    TEXT NOT NULL,
    reason      TEXT,
    ts          REAL NOT NULL,
    UNIQUE (strategy_id, ts, previous, status)
);
CREATE TABLE signals (
    id            TEXT PRIMARY KEY,
    strategy_id   TEXT NOT NULL,
    strategy_name TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    action        TEXT NOT NULL,
    quantity      REAL,
    price         REAL NOT NULL,
    confidence    REAL NOT NULL,
    metadata_json TEXT NOT NULL,
    ts            REAL NOT NULL
);
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    strategy_id TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    quantity    REAL NOT NULL,
    purpose     TEXT NOT NULL,
    signal_id   TEXT,
    ts          REAL NOT NULL
);
CREATE TABLE fills (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    quantity    REAL NOT NULL,
    price       REAL NOT NULL,
    commission  REAL NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    ts          REAL NOT NULL
);
CREATE TABLE position_snapshots (
    seq          INTEGER PRIMARY KEY,
    fill_id      TEXT NOT NULL UNIQUE,
    strategy_id  TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    quantity     REAL NOT NULL,
    entry_price  REAL NOT NULL,
    realized_pnl REAL NOT NULL,
    ts           REAL NOT NULL
);
"""

_V2: Final = """
-- Which run config each start (and every later change) used: history, not just the last.
ALTER TABLE lifecycle ADD COLUMN config_json TEXT;
-- Lookups that otherwise scan tables growing with every trade: an order's fill
-- (resolving unfilled orders at start), a strategy's trades, and a position's
-- last snapshot (read for every fill to carry realized P&L forward).
CREATE INDEX fills_by_order ON fills (order_id);
CREATE INDEX fills_by_strategy ON fills (strategy_id);
CREATE INDEX snapshots_by_position ON position_snapshots (strategy_id, symbol);
"""

_V3: Final = """
-- The kill switch: every engagement and release, so that a restart keeps it engaged.
CREATE TABLE kill_switch (
    seq       INTEGER PRIMARY KEY,
    engaged   INTEGER NOT NULL,
    reason    TEXT,
    block_all INTEGER NOT NULL,
    source    TEXT NOT NULL,
    ts        REAL NOT NULL,
    UNIQUE (engaged, reason, block_all, source, ts)
);
"""

_V4: Final = """
-- Each daemon run on this journal: its stream epoch and the first stream position it
-- gave. From here on every journaled row's rowid (seq) is its stream position: one
-- counter over signals, orders, fills, lifecycle and kill_switch, in commit order.
CREATE TABLE runs (
    epoch          INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,
    started_at     REAL NOT NULL
)
"""

_V5: Final = """
-- The lifecycle of resting orders (docs/orders.md), one row per event, append only:
-- accepted, replaced, then triggered, cancelled or expired. Each row's seq is its
-- stream position. order_json is the order's every term as the event left it
-- (type, prices, time in force, bracket, parent, trailing); detail_json what else
-- the event says (the trigger price, the reason, the terms a replace changed).
CREATE TABLE order_events (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    order_json  TEXT NOT NULL,
    detail_json TEXT NOT NULL,
    ts          REAL NOT NULL,
    UNIQUE (order_id, kind, ts, order_json)
);
"""


_V6: Final = """
-- Live venues (docs/venues.md). Which venue each order went to: a restart asks that
-- venue what became of an order in flight instead of resolving it as rejected.
CREATE TABLE venue_orders (
    order_id TEXT PRIMARY KEY,
    venue    TEXT NOT NULL
);
-- A venue's account of each of its fills: its order id, the fee as it charged it.
CREATE TABLE venue_fills (
    fill_id        TEXT PRIMARY KEY,
    venue          TEXT NOT NULL,
    venue_order_id TEXT,
    fee_asset      TEXT,
    fee            REAL NOT NULL
);
-- What the account held besides the daemon's positions, per asset: the first
-- reconciliation's balance, then each acknowledged mismatch. The last row counts.
CREATE TABLE venue_baselines (
    seq      INTEGER PRIMARY KEY,
    venue    TEXT NOT NULL,
    asset    TEXT NOT NULL,
    quantity REAL NOT NULL,
    reason   TEXT NOT NULL,
    ts       REAL NOT NULL
);
"""

_V7: Final = """
-- Partial fills (docs/orders.md#partial-fills): what of its order a fill left open. 0 for
-- a whole fill, an order's last part and a rejection: an order with such a fill is
-- settled; one whose fills all left something open still rests or waits for the rest.
ALTER TABLE fills ADD COLUMN remaining REAL NOT NULL DEFAULT 0;
"""

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
"""``MIGRATIONS[n]`` takes a journal from version n to n + 1. Never edit a shipped one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)


# ------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class StrategyConfigured:
    """The run config a strategy has at a status change.

    :class:`JournalWriter` makes it from the config a :class:`StrategyStatusChanged`
    carries and journals it just before the event. Never delivered to clients.
    """

    strategy_id: str
    name: str
    config: StrategyRunConfig
    ts: float


Record = Event | StrategyConfigured
"""What the journal accepts: bus events (most of them ignored) and configs."""


@dataclass(frozen=True, slots=True)
class RestoredStrategy:
    id: str
    name: str
    status: StrategyStatus
    config: StrategyRunConfig | None
    """None only with status ERROR: the journal holds no valid config for it."""
    error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class LifecycleEntry:
    strategy_id: str
    status: StrategyStatus
    previous: StrategyStatus
    reason: str | None
    ts: float
    config: StrategyRunConfig | None


@dataclass(frozen=True, slots=True)
class JournaledTrade:
    """A fill and what it added to its position's realized P&L (commission included);
    None when it changed no position (a rejection, an unfilled order resolved at start)."""

    fill: Fill
    realized_pnl: float | None
    position_quantity: float | None = None
    """The strategy's quantity in the symbol after the fill; None as ``realized_pnl``."""
    purpose: OrderPurpose = OrderPurpose.SIGNAL
    """Why its order existed (the orders table; a signal's when it has no row)."""


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A position as the last fill in its symbol left it."""

    strategy_id: str
    symbol: str
    quantity: float
    entry_price: float
    realized_pnl: float
    ts: float
    fill_id: str


_ORDER_EVENT_KINDS: Final[Mapping[type[Any], str]] = {
    OrderAccepted: "accepted",
    OrderReplaced: "replaced",
    OrderTriggered: "triggered",
    OrderCancelled: "cancelled",
    OrderExpired: "expired",
    OrderPartiallyFilled: "partially_filled",
}
"""The ``kind`` of each lifecycle event's row in ``order_events``."""


StreamRecord = (
    JournaledTrade
    | SignalEmitted
    | StrategyStatusChanged
    | KillSwitchChanged
    | OrderSubmitted
    | OrderLifecycle
)
"""A journaled event read back for a client that missed it (:meth:`Journal.stream`):
the event, but a trade as a :class:`JournaledTrade` (its fill and realized P&L)."""


@dataclass(frozen=True, slots=True)
class VenueLedgerEntry:
    """A FILLED fill of an order sent to a venue, as its balance saw it."""

    order_id: str
    symbol: str
    signed_quantity: float
    fee_asset: str | None
    fee: float


def journaled(record: Record) -> bool:
    """Whether the journal writes anything for ``record``."""
    return isinstance(record, _JOURNALED)


_JOURNALED: Final = (
    StrategyConfigured,
    StrategyStatusChanged,
    SignalEmitted,
    OrderSubmitted,
    TradeExecuted,
    KillSwitchChanged,
    OrderAccepted,
    OrderReplaced,
    OrderTriggered,
    OrderCancelled,
    OrderExpired,
    OrderPartiallyFilled,
)


# ------------------------------------------------------------------ location


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$STATE_DIRECTORY (systemd; the first of several), else
    $XDG_STATE_HOME/orchestrator, else ~/.local/state/orchestrator."""
    env = os.environ if environ is None else environ
    found = systemd_directory(env, "STATE_DIRECTORY") or xdg_directory(env, "XDG_STATE_HOME")
    if found is not None:
        return found
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / APPLICATION


def journal_path(config: JournalConfig, environ: Mapping[str, str] | None = None) -> Path:
    state_dir = config.state_dir if config.state_dir is not None else default_state_dir(environ)
    return state_dir.expanduser() / config.file_name


# ------------------------------------------------------------------ the journal

FILL_COLUMNS: Final = (
    "id, order_id, strategy_id, symbol, side, quantity, price, commission, status, reason, ts"
)
ORDER_COLUMNS: Final = "id, strategy_id, symbol, side, quantity, purpose, signal_id, ts"
SIGNAL_COLUMNS: Final = (
    "id, strategy_id, strategy_name, symbol, action, quantity, price, confidence, metadata_json, ts"
)


class Journal:
    """One SQLite connection, used by one thread at a time (a lock makes sure).

    Build it with :meth:`open` (the daemon: read-write, migrated, locked against a
    second daemon) or :meth:`open_readonly` (tools, also while the daemon runs).
    """

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        *,
        readonly: bool,
        schema_version: int,
        lock_file: TextIO | None = None,
        last_position: int = 0,
        synchronous: str = "FULL",
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.schema_version = schema_version
        self.synchronous = synchronous
        self._db = connection
        self._lock = threading.Lock()
        self._lock_file = lock_file
        self._position = last_position
        """The last stream position given (see :meth:`write`); a reader's stays 0."""
        self._positions_lock = threading.Lock()
        """Guards ``_position`` alone, so the event loop can take positions while the
        writer's thread holds ``_lock`` for a commit (taken inside ``_lock``, never
        around it)."""

    # -------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, synchronous: str = "FULL") -> Journal:
        """Open (creating it if absent) and migrate the journal at ``path``."""
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the journal directory {path.parent}: {exc}") from exc
        lock_file = _lock(path)
        try:
            found = _inspect(path, full_check=True) if _has_content(path) else 0
            connection = _connect(path, readonly=False)
            try:
                _configure(connection, path, synchronous)
                version = _migrate(connection, path, found)
                _redo(connection, path)
                last_position = _last_position(connection)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            lock_file.close()
            raise
        log.info(
            "journal_opened",
            path=str(path),
            schema_version=version,
            migrated_from=found,
            synchronous=synchronous,
        )
        return cls(
            path,
            connection,
            readonly=False,
            schema_version=version,
            lock_file=lock_file,
            last_position=last_position,
            synchronous=synchronous,
        )

    @classmethod
    def from_config(
        cls, config: JournalConfig, environ: Mapping[str, str] | None = None
    ) -> Journal:
        return cls.open(journal_path(config, environ), config.synchronous)

    @classmethod
    def open_readonly(cls, path: Path) -> Journal:
        """Open for reading only; never creates, migrates or writes anything."""
        path = Path(path)
        if not path.is_file():
            raise JournalNotFound(f"no journal at {path}")
        version = _inspect(path, full_check=False)
        if version == 0:
            raise JournalError(f"journal at {path} is empty: the daemon has not written it yet")
        return cls(path, _connect(path, readonly=True), readonly=True, schema_version=version)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def checkpoint_elsewhere(self) -> WalCheckpointer:
        """Stop this connection's automatic checkpoints and return a connection of its
        own to checkpoint with, from another thread.

        SQLite checkpoints (copies the write-ahead log into the database, with a flush
        in NORMAL) inside the commit that takes the log past 1,000 pages: that commit
        took 2 to 15 ms instead of 0.3, once every second or so at 100 trades a second,
        and the trades behind it waited. A checkpoint on another connection runs beside
        the commits instead (WAL mode lets it). :meth:`checkpoint` is the fallback."""
        with self._lock:
            (synchronous,) = self._db.execute("PRAGMA synchronous").fetchone()
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
        connection = _connect(self.path, readonly=False)
        connection.execute(f"PRAGMA synchronous = {int(synchronous)}")
        return WalCheckpointer(self.path, connection)

    def checkpoint(self) -> None:
        """Checkpoint on this connection now: with nothing else writing, it empties the log."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                raise JournalError(f"journal at {self.path} cannot be checkpointed: {exc}") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------- writing

    def write(self, records: Sequence[Record]) -> list[int | None]:
        """Commit ``records`` in one transaction; records the journal ignores are skipped.

        Returns each record's stream position: the rowid of its row, from one counter
        over every journaled table, so positions follow commit order. A record already
        there (a batch written again) keeps the position it was given then. None for
        what has no row of its own (ignored records, StrategyConfigured)."""
        return self.write_rows(self.encode(records))

    def encode(self, records: Sequence[Record]) -> GroupRows:
        """``records``' rows, at new stream positions taken in record order."""
        return GroupRows.of(records, self.take_positions(sum(map(_positioned, records))))

    def write_rows(self, rows: GroupRows) -> list[int | None]:
        """Commit ``rows`` (:meth:`encode`) in one transaction; each record's position
        as :meth:`write` returns it."""
        with self._lock, self._transaction():
            kept = rows.write(self._db)
        return [kept.get(p, p) if p is not None else None for p in rows.positions]

    def take_positions(self, count: int) -> int:
        """The first of ``count`` new stream positions; never waits for a commit."""
        with self._positions_lock:
            first = self._position + 1
            self._position += count
            return first

    @property
    def last_position(self) -> int:
        """The last stream position given (0 for an empty journal)."""
        with self._positions_lock:
            return self._position

    def redo_log(self) -> RedoLog:
        """Open this journal's redo log (orchestrator.journal.redo), for the writer."""
        if self.readonly:
            raise JournalError(f"journal at {self.path} is open read-only")
        try:
            return RedoLog.open(redo_path(self.path))
        except OSError as exc:
            raise JournalError(f"cannot open the redo log of {self.path}: {exc}") from exc

    def begin_run(self, epoch: int, ts: float) -> int:
        """Record a daemon run and return its stream epoch: ``epoch`` (the start in ms),
        or one more than the last run's if that is not later (a clock set back, or
        two starts in one millisecond), so that every run's epoch is its own."""
        with self._lock, self._transaction():
            (last,) = self._db.execute("SELECT MAX(epoch) FROM runs").fetchone()
            epoch = max(epoch, (last or 0) + 1)
            self._db.execute(
                "INSERT INTO runs (epoch, first_position, started_at) VALUES (?, ?, ?)",
                (epoch, self.last_position + 1, ts),
            )
        log.info("journal_run_started", epoch=epoch, first_position=self.last_position + 1)
        return epoch

    def resolve_unfilled(self, reason: str, ts: float) -> list[Fill]:
        """Record a REJECTED fill for every accepted order without one (see the module
        docstring), but an order sent to a live venue (the venue knows what became of
        it: reconciliation asks); returns those fills, not told to anyone yet."""
        with self._lock, self._transaction():
            fills = [_restart_fill(order, reason, ts) for order in self._unfilled_orders()]
            first = self.take_positions(len(fills))
            rows = [(first + n, *_fill_row(fill)) for n, fill in enumerate(fills)]
            _insert_many(self._db, _FILLS, rows)
        for fill in fills:
            log.warning(
                "journal_order_resolved",
                order_id=fill.order_id,
                strategy_id=fill.strategy_id,
                symbol=fill.symbol,
                status=fill.status,
                reason=reason,
            )
        return fills

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.readonly:
            raise JournalError(f"journal at {self.path} is open read-only")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal at {self.path} cannot be written: {exc}") from exc
            raise

    # -------------------------------------------------------------- reading

    def strategies(self) -> list[RestoredStrategy]:
        """Every strategy the journal knows, by id."""
        rows = self._query(
            "SELECT id, name, status, config_json, error, updated_at FROM strategies ORDER BY id"
        )
        return [_restored(*row) for row in rows]

    def restorable_strategies(self) -> list[RestoredStrategy]:
        """Strategies that were ACTIVE, PAUSED or ERROR: what the daemon restores."""
        return [s for s in self.strategies() if s.status is not StrategyStatus.STOPPED]

    def history(self, strategy_id: str | None = None) -> list[LifecycleEntry]:
        """Status changes in the order they happened."""
        config = "config_json" if self.schema_version >= 2 else "NULL"
        sql = f"SELECT strategy_id, status, previous, reason, ts, {config} FROM lifecycle"
        rows = self._query(*_filtered(sql, strategy_id))
        return [
            LifecycleEntry(
                sid, StrategyStatus(status), StrategyStatus(prev), reason, ts, _config(js)[0]
            )
            for sid, status, prev, reason, ts, js in rows
        ]

    def signals(self) -> list[Signal]:
        return [_signal(row) for row in self._query(f"SELECT {SIGNAL_COLUMNS} FROM signals")]

    def orders(self) -> list[Order]:
        return [_order(row) for row in self._query(f"SELECT {ORDER_COLUMNS} FROM orders")]

    def fills(self, strategy_id: str | None = None, limit: int | None = None) -> list[Fill]:
        """Fills in commit order; with ``limit``, the last ``limit`` of them."""
        sql, params = _filtered(f"SELECT seq, {self._fill_columns()} FROM fills", strategy_id)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?)"
            params = (*params, limit)
        return [_fill(row[1:]) for row in self._query(sql + " ORDER BY seq", params)]

    def recent_trades(self, limit: int) -> list[JournaledTrade]:
        """The last ``limit`` fills in commit order, each with its realized P&L, the
        position it left and its order's purpose.

        A fill's P&L is its snapshot's running total less the position's previous
        snapshot: a few index lookups per fill, whatever the journal's size.
        """
        fill_columns = self._fill_columns("f.")
        sql = (
            f"SELECT * FROM (SELECT f.seq, {fill_columns}, "
            f"s.realized_pnl - COALESCE(({_PREVIOUS_PNL}), 0.0), s.quantity, {self._purpose()} "
            "FROM fills f LEFT JOIN position_snapshots s ON s.fill_id = f.id "
            "LEFT JOIN orders o ON o.id = f.order_id ORDER BY f.seq DESC LIMIT ?) "
            "ORDER BY seq"
        )
        return [_journaled_trade(row[1:]) for row in self._query(sql, (limit,))]

    def recent_signals(self, limit: int) -> list[Signal]:
        """The last ``limit`` signals in commit order."""
        sql = (
            f"SELECT * FROM (SELECT rowid AS r, {SIGNAL_COLUMNS} FROM signals "
            "ORDER BY rowid DESC LIMIT ?) ORDER BY r"
        )
        return [_signal(row[1:]) for row in self._query(sql, (limit,))]

    def unfilled_orders(self) -> list[Order]:
        """Accepted orders without a fill (nor a rejection), in the order they came."""
        with self._lock:
            return self._unfilled_orders()

    def positions(self) -> list[PositionSnapshot]:
        """The last snapshot of every position ever held, flat ones included."""
        rows = self._query(
            "SELECT strategy_id, symbol, quantity, entry_price, realized_pnl, ts, fill_id "
            "FROM position_snapshots WHERE seq IN "
            "(SELECT MAX(seq) FROM position_snapshots GROUP BY strategy_id, symbol) "
            "ORDER BY strategy_id, symbol"
        )
        return [PositionSnapshot(*row) for row in rows]

    def rebuild_book(self, book: PortfolioBook | None = None) -> PortfolioBook:
        """Replay every fill, in commit order, into ``book`` (a new one by default)."""
        book = book if book is not None else PortfolioBook()
        with self._lock:
            cursor = self._db.execute(f"SELECT {self._fill_columns()} FROM fills ORDER BY seq")
            for row in cursor:
                book.apply_fill(_fill(row))
        return book

    def id_watermarks(self) -> dict[str, int]:
        """The highest number used per id prefix (``order_000042`` counts for "order"),
        over signals, orders and fills: where an id factory must resume after a restart."""
        marks: dict[str, int] = {}
        ids = (
            "SELECT id FROM signals UNION ALL SELECT id FROM orders UNION ALL SELECT id FROM fills"
        )
        if self.schema_version >= 5:
            # A resting order that never triggered is in no other table.
            ids += " UNION ALL SELECT order_id FROM order_events"
        for (record_id,) in self._query(ids):
            prefix, _, number = record_id.rpartition("_")
            if prefix and number.isdigit():
                marks[prefix] = max(marks.get(prefix, 0), int(number))
        return marks

    def last_prices(self) -> dict[str, float]:
        """The last price journaled per symbol (a fill's or a signal's, whichever is
        later; a fill at the same time as a signal came after it, and of two at one
        time the one written last): where a synthetic
        feed continues after a restart, so that prices do not jump back to the
        config's and fire stop-losses and signals on the jump."""
        # One pass in SQLite, not a Python loop over every row: this runs at each start.
        latest = (
            "SELECT symbol, price FROM (SELECT symbol, price, ROW_NUMBER() OVER "
            "(PARTITION BY symbol ORDER BY ts DESC, rank DESC, n DESC) AS newest FROM ("
            "SELECT symbol, price, ts, 1 AS rank, seq AS n FROM fills WHERE status = 'FILLED' "
            "UNION ALL SELECT symbol, price, ts, 0, rowid FROM signals)) WHERE newest = 1"
        )
        return {symbol: price for symbol, price in self._query(latest)}

    def runs(self) -> dict[int, int]:
        """Each run's epoch and the first stream position it gave, oldest first (empty
        before schema 4)."""
        if self.schema_version < 4:
            return {}
        return dict(self._query("SELECT epoch, first_position FROM runs ORDER BY epoch"))

    def stream(
        self, after: int, upto: int, topics: Collection[Topic], limit: int
    ) -> list[tuple[int, StreamRecord]]:
        """The journaled events of ``topics`` with a stream position in (``after``,
        ``upto``], in position order, at most ``limit`` of them: what a client that saw
        position ``after`` missed. Each comes back as what it was delivered as (a trade
        as a :class:`JournaledTrade`); every table is read by its rowid, an index range."""
        found: list[tuple[int, StreamRecord]] = []
        for topic in topics:
            read = _STREAM_READERS.get(topic)
            if read is not None:
                found.extend(read(self, after, upto, limit))
        found.sort(key=lambda item: item[0])
        return found[:limit]

    def _stream_trades(self, after: int, upto: int, limit: int) -> list[tuple[int, StreamRecord]]:
        fill_columns = self._fill_columns("f.")
        sql = (
            f"SELECT f.seq, {fill_columns}, s.realized_pnl - COALESCE(({_PREVIOUS_PNL}), 0.0), "
            f"s.quantity, {self._purpose()} FROM fills f "
            "LEFT JOIN position_snapshots s ON s.fill_id = f.id "
            "LEFT JOIN orders o ON o.id = f.order_id "
            "WHERE f.seq > ? AND f.seq <= ? ORDER BY f.seq LIMIT ?"
        )
        rows = self._query(sql, (after, upto, limit))
        return [(row[0], _journaled_trade(row[1:])) for row in rows]

    def _stream_signals(self, after: int, upto: int, limit: int) -> list[tuple[int, StreamRecord]]:
        sql = (
            f"SELECT rowid, {SIGNAL_COLUMNS} FROM signals WHERE rowid > ? AND rowid <= ? "
            "ORDER BY rowid LIMIT ?"
        )
        rows = self._query(sql, (after, upto, limit))
        return [(row[0], SignalEmitted(_signal(row[1:]))) for row in rows]

    def _stream_statuses(self, after: int, upto: int, limit: int) -> list[tuple[int, StreamRecord]]:
        config = "l.config_json" if self.schema_version >= 2 else "NULL"
        sql = (
            f"SELECT l.seq, l.strategy_id, COALESCE(s.name, l.strategy_id), l.status, "
            f"l.previous, l.reason, l.ts, {config} FROM lifecycle l "
            "LEFT JOIN strategies s ON s.id = l.strategy_id "
            "WHERE l.seq > ? AND l.seq <= ? ORDER BY l.seq LIMIT ?"
        )
        return [(row[0], _status_event(*row[1:])) for row in self._query(sql, (after, upto, limit))]

    def _stream_kill_switch(
        self, after: int, upto: int, limit: int
    ) -> list[tuple[int, StreamRecord]]:
        if self.schema_version < 3:
            return []
        sql = (
            "SELECT seq, engaged, reason, block_all, source, ts FROM kill_switch "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
        )
        return [
            (seq, KillSwitchChanged(bool(engaged), reason, bool(block_all), HaltSource(source), ts))
            for seq, engaged, reason, block_all, source, ts in self._query(
                sql, (after, upto, limit)
            )
        ]

    def _stream_orders(self, after: int, upto: int, limit: int) -> list[tuple[int, StreamRecord]]:
        sql = (
            f"SELECT rowid, {ORDER_COLUMNS} FROM orders WHERE rowid > ? AND rowid <= ? "
            "ORDER BY rowid LIMIT ?"
        )
        rows = self._query(sql, (after, upto, limit))
        return [(row[0], OrderSubmitted(_order(row[1:]))) for row in rows]

    def _stream_order_events(
        self, after: int, upto: int, limit: int, kind: str
    ) -> list[tuple[int, StreamRecord]]:
        if self.schema_version < 5:
            return []
        sql = (
            "SELECT seq, kind, order_json, detail_json, ts FROM order_events "
            "WHERE seq > ? AND seq <= ? AND kind = ? ORDER BY seq LIMIT ?"
        )
        return [
            (seq, _order_event(*row)) for seq, *row in self._query(sql, (after, upto, kind, limit))
        ]

    def kill_switch(self) -> Halt | None:
        """The kill switch as the last engagement or release left it: None when released
        (or never engaged, or the journal predates schema 3)."""
        if self.schema_version < 3:
            return None
        rows = self._query(
            "SELECT engaged, reason, block_all, source, ts FROM kill_switch ORDER BY seq DESC "
            "LIMIT 1"
        )
        if not rows or not rows[0][0]:
            return None
        _, reason, block_all, source, ts = rows[0]
        return Halt(reason or "engaged before the restart", bool(block_all), HaltSource(source), ts)

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        tables = ("strategies", "lifecycle", "signals", "orders", "fills", "position_snapshots")
        counted = (*tables, "kill_switch") if self.schema_version >= 3 else tables
        if self.schema_version >= 5:
            counted = (*counted, "order_events")
        return {t: self._query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in counted}

    def resting_orders(self) -> list[Order]:
        """The orders still resting when the daemon stopped, in the order they were
        accepted, each as it was last replaced: whose last event is an acceptance or a
        replace (not a trigger, a cancellation or an expiry), and without a fill (a
        fill is the truth even if the event that closed the order was lost)."""
        if self.schema_version < 5:
            return []
        if self.schema_version < 7:
            rows = self._query(
                "SELECT e.order_json, NULL FROM order_events e JOIN (SELECT order_id, "
                "MAX(seq) AS last, MIN(seq) AS first FROM order_events GROUP BY order_id) g "
                "ON e.seq = g.last WHERE e.kind IN ('accepted', 'replaced') AND NOT EXISTS "
                "(SELECT 1 FROM fills f WHERE f.order_id = e.order_id) ORDER BY g.first"
            )
        else:
            # Partial fills: a part leaves the order resting (its fill's remaining > 0);
            # a part's fill committed after the order's last event says what rests.
            rows = self._query(
                "SELECT e.order_json, (SELECT f.remaining FROM fills f WHERE f.order_id = "
                "e.order_id AND f.seq > e.seq ORDER BY f.seq DESC LIMIT 1) FROM order_events e "
                "JOIN (SELECT order_id, MAX(seq) AS last, MIN(seq) AS first FROM order_events "
                "GROUP BY order_id) g ON e.seq = g.last WHERE e.kind IN ('accepted', "
                "'replaced', 'partially_filled') AND NOT EXISTS (SELECT 1 FROM fills f WHERE "
                "f.order_id = e.order_id AND f.remaining = 0) ORDER BY g.first"
            )
        orders = [order_from_json(text) for text, _ in rows]
        return [
            order if later is None else replace(order, quantity=later)
            for order, (_, later) in zip(orders, rows, strict=True)
        ]

    def filled_quantities(self) -> dict[str, float]:
        """What the parts of each order that is still partly open filled so far
        (partial fills, schema 7: its fills all left something open), by order id."""
        if self.schema_version < 7:
            return {}
        rows = self._query(
            "SELECT f.order_id, SUM(f.quantity) FROM fills f WHERE f.remaining > 0 AND NOT "
            "EXISTS (SELECT 1 FROM fills g WHERE g.order_id = f.order_id AND g.remaining = 0) "
            "GROUP BY f.order_id"
        )
        return {order_id: float(total) for order_id, total in rows}

    def _fill_columns(self, table: str = "") -> str:
        """The columns :func:`_fill` reads, ``table`` their prefix (``"f."``); a journal
        before schema 7 has no ``remaining``: every fill of it was whole."""
        columns = [f"{table}{column}" for column in FILL_COLUMNS.split(", ")]
        columns.append(f"{table}remaining" if self.schema_version >= 7 else "0.0")
        return ", ".join(columns)

    def _purpose(self) -> str:
        """The purpose of fill ``f``'s order: its orders row's; a part of a resting order
        (partial fills) has none, its order events say it."""
        if self.schema_version < 7:
            return "o.purpose"
        return (
            "COALESCE(o.purpose, (SELECT json_extract(e.order_json, '$.purpose') "
            "FROM order_events e WHERE e.order_id = f.order_id LIMIT 1))"
        )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal at {self.path} cannot be read: {exc}") from exc

    def _unfilled_orders(self) -> list[Order]:
        """The orders at the broker that no fill settled, each with what is left of it:
        all of it, or (partial fills) what its last part's fill left open. An order sent
        to a live venue is the venue's to settle (reconciliation), not listed here."""
        on_venue = (
            " AND NOT EXISTS (SELECT 1 FROM venue_orders v WHERE v.order_id = o.id)"
            if self.schema_version >= 6
            else ""
        )
        if self.schema_version < 7:
            rows = self._db.execute(
                f"SELECT {ORDER_COLUMNS}, NULL FROM orders o WHERE NOT EXISTS "
                f"(SELECT 1 FROM fills f WHERE f.order_id = o.id){on_venue} ORDER BY o.rowid"
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {ORDER_COLUMNS}, (SELECT f.remaining FROM fills f WHERE f.order_id = "
                "o.id ORDER BY f.seq DESC LIMIT 1) FROM orders o WHERE NOT EXISTS "
                "(SELECT 1 FROM fills f WHERE f.order_id = o.id AND f.remaining = 0)"
                f"{on_venue} ORDER BY o.rowid"
            ).fetchall()
        orders = [_order(row[:-1]) for row in rows]
        return [
            order if row[-1] is None else replace(order, quantity=row[-1])
            for order, row in zip(orders, rows, strict=True)
        ]

    # -------------------------------------------------------------- live venues

    def unfilled_venue_orders(self) -> list[tuple[str, Order]]:
        """(venue, order) for every order sent to a venue that is not settled yet (no
        fill, or only parts: partial fills), in the order they were sent: what the daemon
        does not know the outcome of. Each as its last event or part left it: its last
        terms, and what is left of it (a native order killed between the event that
        ended it and its last part's fill has parts, and the venue the rest)."""
        if self.schema_version < 6:
            return []
        columns = ", ".join(f"o.{column}" for column in ORDER_COLUMNS.split(", "))
        if self.schema_version < 7:
            rows = self._query(
                f"SELECT v.venue, {columns} FROM orders o JOIN venue_orders v ON "
                "v.order_id = o.id WHERE NOT EXISTS (SELECT 1 FROM fills f WHERE "
                "f.order_id = o.id) ORDER BY o.rowid"
            )
            return [(row[0], _order(row[1:])) for row in rows]
        rows = self._query(
            f"SELECT v.venue, {columns}, "
            "(SELECT e.order_json FROM order_events e WHERE e.order_id = o.id "
            "ORDER BY e.seq DESC LIMIT 1), "
            "(SELECT MAX(e.seq) FROM order_events e WHERE e.order_id = o.id), "
            "(SELECT f.remaining FROM fills f WHERE f.order_id = o.id ORDER BY f.seq DESC "
            "LIMIT 1), (SELECT MAX(f.seq) FROM fills f WHERE f.order_id = o.id) "
            "FROM orders o JOIN venue_orders v ON v.order_id = o.id WHERE NOT EXISTS "
            "(SELECT 1 FROM fills f WHERE f.order_id = o.id AND f.remaining = 0) "
            "ORDER BY o.rowid"
        )
        return [(row[0], _as_left(_order(row[1:-4]), *row[-4:])) for row in rows]

    def venue_resting_orders(self, venue: str) -> list[tuple[Order, int]]:
        """The resting orders (:meth:`resting_orders`) sent to ``venue`` (a live venue's
        native limit orders), each with how many times it was replaced: each replace
        placed it again on the venue under the next revision of its client order id."""
        if self.schema_version < 6:
            return []
        sent = {
            row[0]
            for row in self._query("SELECT order_id FROM venue_orders WHERE venue = ?", (venue,))
        }
        orders = [order for order in self.resting_orders() if order.id in sent]
        if not orders:
            return []
        replaced = self.replace_counts()
        return [(order, replaced.get(order.id, 0)) for order in orders]

    def replace_counts(self) -> dict[str, int]:
        """How many times each replaced order was replaced, by order id (on a venue each
        replace placed it again under the next revision of its client order id)."""
        if self.schema_version < 5:
            return {}
        rows = self._query(
            "SELECT order_id, COUNT(*) FROM order_events WHERE kind = 'replaced' GROUP BY order_id"
        )
        return {order_id: int(count) for order_id, count in rows}

    def venue_ledger(self, venue: str) -> list[VenueLedgerEntry]:
        """Every FILLED fill of the orders sent to ``venue``, in commit order."""
        if self.schema_version < 6:
            return []
        rows = self._query(
            "SELECT f.order_id, f.symbol, CASE f.side WHEN 'BUY' THEN f.quantity "
            "ELSE -f.quantity END, vf.fee_asset, COALESCE(vf.fee, 0.0) FROM fills f "
            "JOIN venue_orders v ON v.order_id = f.order_id "
            "LEFT JOIN venue_fills vf ON vf.fill_id = f.id "
            "WHERE v.venue = ? AND f.status = 'FILLED' ORDER BY f.seq",
            (venue,),
        )
        return [VenueLedgerEntry(*row) for row in rows]

    def venue_order_ids(self, venue: str, since: float) -> tuple[set[str], float | None]:
        """The venue's ids of the orders whose fills the journal has from ``since`` on,
        and the time of the last fill on ``venue`` (None: none yet)."""
        if self.schema_version < 6:
            return set(), None
        rows = self._query(
            "SELECT vf.venue_order_id, f.ts FROM venue_fills vf JOIN fills f ON f.id = vf.fill_id "
            "WHERE vf.venue = ? AND f.ts >= ?",
            (venue, since),
        )
        last = self._query(
            "SELECT MAX(f.ts) FROM venue_fills vf JOIN fills f ON f.id = vf.fill_id "
            "WHERE vf.venue = ?",
            (venue,),
        )[0][0]
        return {str(row[0]) for row in rows if row[0] is not None}, last

    def venue_baselines(self, venue: str) -> dict[str, float]:
        """What the account of ``venue`` holds besides the daemon's positions, per asset."""
        if self.schema_version < 6:
            return {}
        rows = self._query(
            "SELECT asset, quantity FROM venue_baselines WHERE seq IN (SELECT MAX(seq) "
            "FROM venue_baselines WHERE venue = ? GROUP BY asset)",
            (venue,),
        )
        return {asset: quantity for asset, quantity in rows}

    def add_venue_baselines(
        self, venue: str, baselines: Mapping[str, float], reason: str, ts: float
    ) -> None:
        """Record new baselines of ``venue``'s assets (the first reconciliation, or an
        operator's acknowledgement of a mismatch), in one transaction."""
        rows = [(venue, asset, quantity, reason, ts) for asset, quantity in baselines.items()]
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT INTO venue_baselines (venue, asset, quantity, reason, ts) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )


def _order_event_reader(
    kind: str,
) -> Callable[[Journal, int, int, int], list[tuple[int, StreamRecord]]]:
    def read(journal: Journal, after: int, upto: int, limit: int) -> list[tuple[int, StreamRecord]]:
        return journal._stream_order_events(after, upto, limit, kind)

    return read


_STREAM_READERS: Final[
    Mapping[Topic, Callable[[Journal, int, int, int], list[tuple[int, StreamRecord]]]]
] = {
    Topic.STRATEGY_TRADE: Journal._stream_trades,
    Topic.STRATEGY_SIGNAL: Journal._stream_signals,
    Topic.STRATEGY_STATUS: Journal._stream_statuses,
    Topic.RISK_KILL_SWITCH: Journal._stream_kill_switch,
    Topic.ORDER_SUBMITTED: Journal._stream_orders,
    **{event.topic: _order_event_reader(kind) for event, kind in _ORDER_EVENT_KINDS.items()},
}
"""Where each journaled topic's events are read back, by stream position."""


# ------------------------------------------------------------------ opening helpers


def _last_position(connection: sqlite3.Connection) -> int:
    """The highest rowid of the journaled tables: where stream positions go on (the
    journal of a new file has no tables yet: 0)."""
    tables = {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    highest = [
        connection.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").fetchone()[0]
        for table in _POSITIONED_TABLES
        if table in tables
    ]
    return max(highest, default=0)


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _lock(path: Path) -> TextIO:
    """An exclusive advisory lock next to the journal: one daemon per journal.

    The holder writes its pid into the lock file, so that the one refused can
    say which process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = lock_path.open("a+")
    except OSError as exc:
        raise JournalError(f"cannot create the journal lock {lock_path}: {exc}") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise JournalLocked(path, lock_path, _lock_holder(lock_path)) from None
    _write_pid(handle)
    return handle


def _write_pid(handle: TextIO) -> None:
    # Best effort: the lock is the flock; the pid is only for the message of the next one.
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    except OSError:
        pass


def _lock_holder(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class WalCheckpointer:
    """A connection of the journal's that only checkpoints (see
    :meth:`Journal.checkpoint_elsewhere`)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    def checkpoint(self) -> int:
        """Copy what the log holds into the database without waiting for the writer;
        returns the frames still in the log that were not copied."""
        try:
            _, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"journal at {self.path} cannot be checkpointed: {exc}") from exc
        return max(0, int(frames) - int(copied))

    def close(self) -> None:
        self._db.close()


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"{path.absolute().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _inspect(path: Path, *, full_check: bool) -> int:
    """The schema version of an existing journal, read without writing to it.

    Raises JournalError for anything that is not a journal this code can open.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise JournalError(f"journal at {path} cannot be read: {exc}") from exc
    if header != SQLITE_MAGIC:
        raise JournalError(
            f"{path} is not a SQLite database; it was left untouched. "
            "Move it away or point the daemon at another state directory."
        )
    connection = _connect(path, readonly=True)
    try:
        version, app_id, tables = _read_header(connection, path, full_check)
    finally:
        connection.close()
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal at {path} has schema version {version}; this daemon understands up to "
            f"{SCHEMA_VERSION}; upgrade the daemon or restore a backup"
        )
    if app_id not in (0, APPLICATION_ID) or (version == 0 and tables):
        raise JournalError(f"{path} is a SQLite database but not an orchestrator journal")
    return version


def _read_header(
    connection: sqlite3.Connection, path: Path, full_check: bool
) -> tuple[int, int, int]:
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        app_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()[0]
        if full_check:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise JournalError(
                    f"journal at {path} is corrupt ({'; '.join(problems)}); it was left "
                    "untouched. Restore a backup or move it away to start a new journal."
                )
    except sqlite3.DatabaseError as exc:
        raise JournalError(
            f"journal at {path} is corrupt or not a database ({exc}); it was left untouched. "
            "Restore a backup or move it away to start a new journal."
        ) from exc
    return int(version), int(app_id), int(tables)


def _configure(connection: sqlite3.Connection, path: Path, synchronous: str) -> None:
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"journal at {path} cannot use write-ahead logging (mode {mode})")
    connection.execute(f"PRAGMA synchronous = {synchronous}")


def _migrate(connection: sqlite3.Connection, path: Path, found: int) -> int:
    for version in range(found, SCHEMA_VERSION):
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            connection.execute("ROLLBACK")
            raise JournalError(
                f"journal at {path}: migration to schema version {version + 1} failed: {exc}"
            ) from exc
        if found:
            log.info("journal_migrated", path=str(path), schema_version=version + 1)
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration into statements (none of ours has a ';' inside a literal)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# ------------------------------------------------------------------ writing helpers


def _write_configured(db: sqlite3.Connection, record: StrategyConfigured) -> None:
    db.execute(
        "INSERT INTO strategies (id, name, status, config_json, error, updated_at) "
        "VALUES (?, ?, 'STOPPED', ?, NULL, ?) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, config_json = excluded.config_json",
        (
            record.strategy_id,
            record.name,
            record.config.model_dump_json(by_alias=True),
            record.ts,
        ),
    )


def _write_status(
    db: sqlite3.Connection, event: StrategyStatusChanged, position: int | None
) -> int | None:
    inserted = db.execute(
        "INSERT OR IGNORE INTO lifecycle "
        "(seq, strategy_id, status, previous, reason, ts, config_json) "
        "VALUES (?, ?, ?, ?, ?, ?, (SELECT config_json FROM strategies WHERE id = ?))",
        (
            position,
            event.strategy_id,
            event.status,
            event.previous,
            event.reason,
            event.ts,
            event.strategy_id,
        ),
    ).rowcount
    if not inserted:
        # A replay: the status it set may since have changed; its position is the first one.
        (kept,) = db.execute(
            "SELECT seq FROM lifecycle WHERE strategy_id = ? AND ts = ? AND previous = ? "
            "AND status = ?",
            (event.strategy_id, event.ts, event.previous, event.status),
        ).fetchone()
        return int(kept)
    error = event.reason if event.status is StrategyStatus.ERROR else None
    db.execute(
        "INSERT INTO strategies (id, name, status, config_json, error, updated_at) "
        "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "status = excluded.status, error = excluded.error, updated_at = excluded.updated_at",
        (event.strategy_id, event.name, event.status, error, event.ts),
    )
    return position


@dataclass(frozen=True, slots=True)
class _Table:
    """A table keyed by event id, with its statements built once. ``position`` is the
    column holding the row's stream position (its rowid)."""

    name: str
    columns: str
    position: str

    @property
    def insert(self) -> str:
        marks = ", ".join("?" * (len(self.columns.split(", ")) + 1))
        return (
            f"INSERT OR IGNORE INTO {self.name} ({self.position}, {self.columns}) VALUES ({marks})"
        )

    @property
    def select(self) -> str:
        return f"SELECT {self.position}, {self.columns} FROM {self.name} WHERE id = ?"


_SIGNALS: Final = _Table("signals", SIGNAL_COLUMNS, "rowid")
_ORDERS: Final = _Table("orders", ORDER_COLUMNS, "rowid")
_FILLS: Final = _Table("fills", FILL_COLUMNS + ", remaining", "seq")
_STATEMENTS: Final = {table: (table.insert, table.select) for table in (_SIGNALS, _ORDERS, _FILLS)}

_POSITIONED_TABLES: Final = (
    "signals",
    "orders",
    "fills",
    "lifecycle",
    "kill_switch",
    "order_events",
)
"""The tables whose rowid is a stream position."""

_SNAPSHOT_INSERT: Final = (
    "INSERT OR IGNORE INTO position_snapshots "
    "(fill_id, strategy_id, symbol, quantity, entry_price, realized_pnl, ts) "
    "VALUES (?, ?, ?, ?, ?, ? + COALESCE((SELECT realized_pnl FROM position_snapshots "
    "WHERE strategy_id = ? AND symbol = ? ORDER BY seq DESC LIMIT 1), 0.0), ?)"
)
"""A position after a fill; cumulative realized P&L carried from its last snapshot.
OR IGNORE: a replayed fill already has its snapshot, written in its transaction."""

_VENUE_ORDER_INSERT: Final = "INSERT OR IGNORE INTO venue_orders (order_id, venue) VALUES (?, ?)"
_VENUE_FILL_INSERT: Final = (
    "INSERT OR IGNORE INTO venue_fills (fill_id, venue, venue_order_id, fee_asset, fee) "
    "VALUES (?, ?, ?, ?, ?)"
)

_PREVIOUS_PNL: Final = (
    "SELECT p.realized_pnl FROM position_snapshots p WHERE p.strategy_id = s.strategy_id "
    "AND p.symbol = s.symbol AND p.seq < s.seq ORDER BY p.seq DESC LIMIT 1"
)
"""The realized P&L of a fill's position before the fill (its snapshot is ``s``)."""

_JSON_OPTIONS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

Row = tuple[Any, ...]
"""Plain values only (an enum by its value): the redo log pickles rows, and a
builtin pickles without a call into Python."""


def _positioned(record: Record) -> bool:
    """Whether ``record`` gets a row, so a stream position, of its own."""
    return journaled(record) and not isinstance(record, StrategyConfigured)


@dataclass(slots=True)
class GroupRows:
    """One write's rows, each table's in record order, so that each table takes one
    ``executemany``: per-statement overhead is most of a row's cost otherwise.
    Status changes, configs and the kill switch (rare, and a status row reads the
    config row before it) keep their order among themselves, one statement each.
    Every row starts with its stream position, given in record order."""

    signals: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    fills: list[Row] = field(default_factory=list)
    snapshots: list[Row] = field(default_factory=list)
    venue_orders: list[Row] = field(default_factory=list)
    venue_fills: list[Row] = field(default_factory=list)
    one_by_one: list[tuple[Record, int | None]] = field(default_factory=list)
    positions: list[int | None] = field(default_factory=list)
    """Each record's position, in record order (None: it gets no row of its own)."""

    @classmethod
    def of(cls, records: Sequence[Record], first: int) -> GroupRows:
        rows = cls()
        position = first
        for record in records:
            if not _positioned(record):
                rows.positions.append(None)
                if isinstance(record, StrategyConfigured):
                    rows.one_by_one.append((record, None))
                continue
            rows.positions.append(position)
            if isinstance(record, TradeExecuted):
                rows.add_trade(record, position)
            elif isinstance(record, OrderSubmitted):
                rows.orders.append((position, *_order_row(record.order)))
                if record.venue is not None:
                    rows.venue_orders.append((record.order.id, record.venue))
            elif isinstance(record, SignalEmitted):
                rows.signals.append((position, *_signal_row(record.signal)))
            else:
                rows.one_by_one.append((record, position))
            position += 1
        return rows

    def add_trade(self, event: TradeExecuted, position: int) -> None:
        fill, change = event.fill, event.change
        self.fills.append((position, *_fill_row(fill)))
        venue = fill.venue
        if venue is not None:
            self.venue_fills.append(
                (fill.id, venue.venue, venue.venue_order_id, venue.fee_asset, venue.fee)
            )
        if change is not None and change.applied:
            self.snapshots.append(
                (
                    fill.id,
                    fill.strategy_id,
                    fill.symbol,
                    change.quantity_after,
                    change.entry_price_after,
                    change.realized_pnl,
                    fill.strategy_id,
                    fill.symbol,
                    fill.ts,
                )
            )

    def write(self, db: sqlite3.Connection) -> dict[int, int]:
        """Write the rows; returns, for rows already there, the position they were
        given then, by the position they were to get now."""
        kept: dict[int, int] = {}
        for record, position in self.one_by_one:
            stored = _WRITERS[type(record)](db, record, position)
            if position is not None and stored is not None and stored != position:
                kept[position] = stored
        kept.update(_insert_many(db, _SIGNALS, self.signals))
        kept.update(_insert_many(db, _ORDERS, self.orders))
        kept.update(_insert_many(db, _FILLS, self.fills))
        if self.snapshots:
            db.executemany(_SNAPSHOT_INSERT, self.snapshots)
        if self.venue_orders:
            db.executemany(_VENUE_ORDER_INSERT, self.venue_orders)
        if self.venue_fills:
            db.executemany(_VENUE_FILL_INSERT, self.venue_fills)
        return kept

    def state(self) -> tuple[list[Any], ...]:
        """The rows as plain lists, for the redo log: pickled without a call into
        Python (a dataclass's own pickling took 10 times as long)."""
        return (
            self.signals,
            self.orders,
            self.fills,
            self.snapshots,
            self.venue_orders,
            self.venue_fills,
            self.one_by_one,
            self.positions,
        )

    @classmethod
    def from_state(cls, state: object) -> GroupRows:
        """The rows :meth:`state` gave; JournalError for anything else."""
        if not isinstance(state, tuple) or len(state) != len(fields(cls)):
            raise JournalError(f"a redo frame holds {type(state).__name__}, not journal rows")
        return cls(*state)

    def extend(self, other: GroupRows) -> None:
        """Add ``other``'s rows after these: one transaction writes both."""
        self.signals += other.signals
        self.orders += other.orders
        self.fills += other.fills
        self.snapshots += other.snapshots
        self.venue_orders += other.venue_orders
        self.venue_fills += other.venue_fills
        self.one_by_one += other.one_by_one
        self.positions += other.positions


def _redo(db: sqlite3.Connection, path: Path) -> None:
    """Write into SQLite what the redo log holds, one transaction per frame (what is
    there already is skipped: every row is keyed by its id), then remove the log."""
    log_path = redo_path(path)
    try:
        frames = read_redo(log_path)
    except Exception as exc:  # unreadable, a foreign class, another version's rows: kept
        raise JournalError(f"journal at {path} cannot redo {log_path}: {exc}") from exc
    for frame in frames:
        try:
            rows = GroupRows.from_state(frame)
        except JournalError as exc:
            raise JournalError(f"journal at {path} cannot redo {log_path}: {exc.message}") from exc
        try:
            db.execute("BEGIN IMMEDIATE")
            rows.write(db)
            db.execute("COMMIT")
        except JournalConflict as exc:
            db.execute("ROLLBACK")
            # Clients were told of this frame's events: refuse the start, keep the log.
            raise JournalError(
                f"journal at {path} cannot redo {log_path}: {exc.message}; the log is kept "
                "(it holds trades clients were told of): see docs/journal.md#the-redo-log"
            ) from exc
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise JournalError(f"journal at {path} cannot redo {log_path}: {exc}") from exc
    if frames:
        log.info("journal_redone", path=str(log_path), frames=len(frames))
    log_path.unlink(missing_ok=True)


def _signal_row(s: Signal) -> Row:
    metadata = orjson.dumps(dict(s.metadata), default=str, option=_JSON_OPTIONS).decode()
    return (
        s.id,
        s.strategy_id,
        s.strategy_name,
        s.symbol,
        s.action.value,
        s.quantity,
        s.price,
        s.confidence,
        metadata,
        s.ts,
    )


def _order_row(o: Order) -> Row:
    return (
        o.id,
        o.strategy_id,
        o.symbol,
        o.side.value,
        o.quantity,
        o.purpose.value,
        o.signal_id,
        o.ts,
    )


def _fill_row(fill: Fill) -> Row:
    return (
        fill.id,
        fill.order_id,
        fill.strategy_id,
        fill.symbol,
        fill.side.value,
        fill.quantity,
        fill.price,
        fill.commission,
        fill.status.value,
        fill.reason,
        fill.ts,
        fill.remaining,
    )


def _insert_many(db: sqlite3.Connection, table: _Table, rows: list[Row]) -> dict[int, int]:
    """INSERT OR IGNORE by id (each row: its position, then its columns); an id already
    there with other content is a conflict. Returns the stored position of each row
    that was already there, by the position it came with.

    When every row went in (the rule: replays are rare) nothing is read back."""
    if not rows:
        return {}
    insert, select = _STATEMENTS[table]
    if db.executemany(insert, rows).rowcount == len(rows):
        return {}
    kept: dict[int, int] = {}
    for row in rows:
        stored_position, *stored = db.execute(select, (row[1],)).fetchone()
        if tuple(stored) != row[1:]:
            raise JournalConflict(
                f"{table.name} id {row[1]!r} is already in the journal with other content "
                f"(stored {tuple(stored)!r}, new {row[1:]!r}): ids must not be reused across "
                "restarts"
            )
        if stored_position != row[0]:
            kept[row[0]] = stored_position
    return kept


def _write_kill_switch(
    db: sqlite3.Connection, event: KillSwitchChanged, position: int | None
) -> int | None:
    key = (int(event.engaged), event.reason, int(event.block_all), event.source, event.ts)
    inserted = db.execute(
        "INSERT OR IGNORE INTO kill_switch (seq, engaged, reason, block_all, source, ts) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (position, *key),
    ).rowcount
    if inserted:
        return position
    (kept,) = db.execute(
        "SELECT seq FROM kill_switch WHERE engaged = ? AND reason IS ? AND block_all = ? "
        "AND source = ? AND ts = ?",
        key,
    ).fetchone()
    return int(kept)


def _write_configured_record(
    db: sqlite3.Connection, record: StrategyConfigured, _: int | None
) -> None:
    _write_configured(db, record)


def _write_order_event(
    db: sqlite3.Connection, event: OrderLifecycle, position: int | None
) -> int | None:
    """One row of ``order_events``; a batch written again keeps its first position."""
    order = event.order
    key = (order.id, _ORDER_EVENT_KINDS[type(event)], event.ts, order_json(order))
    detail = orjson.dumps(_order_event_detail(event)).decode()
    cursor = db.execute(
        "INSERT OR IGNORE INTO order_events (seq, order_id, kind, ts, order_json, strategy_id, "
        "detail_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (position, *key, order.strategy_id, detail),
    )
    if cursor.rowcount:
        return cursor.lastrowid
    (kept,) = db.execute(
        "SELECT seq FROM order_events WHERE order_id = ? AND kind = ? AND ts = ? "
        "AND order_json = ?",
        key,
    ).fetchone()
    return int(kept)


def _order_event_detail(event: OrderLifecycle) -> dict[str, Any]:
    """What the event says beside the order: what :func:`_order_event` needs back."""
    if isinstance(event, OrderTriggered):
        return {"price": event.price}
    if isinstance(event, OrderCancelled | OrderExpired):
        return {"reason": event.reason}
    if isinstance(event, OrderReplaced):
        return {"previous": _order_terms(event.previous)}
    if isinstance(event, OrderPartiallyFilled):
        return {"quantity": event.filled_quantity, "price": event.fill_price}
    return {}


def _order_event(kind: str, order_text: str, detail_text: str, ts: float) -> OrderLifecycle:
    """The event a row of ``order_events`` was written from (a cancellation without
    the command's origin: that connection belongs to an earlier run)."""
    order, detail = order_from_json(order_text), orjson.loads(detail_text)
    if kind == "triggered":
        return OrderTriggered(order, detail["price"], ts)
    if kind == "cancelled":
        return OrderCancelled(order, detail["reason"], ts)
    if kind == "expired":
        return OrderExpired(order, detail["reason"], ts)
    if kind == "replaced":
        return OrderReplaced(order, _order_from_data(detail["previous"]), ts)
    if kind == "partially_filled":
        return OrderPartiallyFilled(order, detail["quantity"], detail["price"], ts)
    return OrderAccepted(order, ts)


_WRITERS: Final[dict[type[Any], Callable[[sqlite3.Connection, Any, int | None], int | None]]] = {
    StrategyConfigured: _write_configured_record,
    StrategyStatusChanged: _write_status,
    KillSwitchChanged: _write_kill_switch,
    **dict.fromkeys(_ORDER_EVENT_KINDS, _write_order_event),
}
"""Records written one statement at a time, in order (the rest: :class:`GroupRows`);
each returns the stream position of its row (None: it has none)."""


def _as_left(
    order: Order,
    event_json: str | None,
    event_seq: int | None,
    remaining: float | None,
    fill_seq: int | None,
) -> Order:
    """``order`` as its last event (a resting order's: its terms, its rest) or, when
    later, its last part's fill (what it left) left it."""
    if event_json is not None:
        order = order_from_json(event_json)
    if remaining is not None and fill_seq is not None and (event_seq or 0) < fill_seq:
        order = replace(order, quantity=remaining)
    return order


def _restart_fill(order: Order, reason: str, ts: float) -> Fill:
    return Fill(
        id=RESTART_FILL_PREFIX + order.id,
        order_id=order.id,
        strategy_id=order.strategy_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        price=0.0,
        commission=0.0,
        ts=ts,
        status=TradeStatus.REJECTED,
        reason=reason,
    )


# ------------------------------------------------------------------ reading helpers


def _filtered(sql: str, strategy_id: str | None) -> tuple[str, tuple[Any, ...]]:
    if strategy_id is None:
        return sql, ()
    return f"{sql} WHERE strategy_id = ?", (strategy_id,)


def _config(config_json: str | None) -> tuple[StrategyRunConfig | None, str | None]:
    """The config, or None and why not."""
    if config_json is None:
        return None, "the journal holds no run config for it"
    try:
        return StrategyRunConfig.model_validate_json(config_json), None
    except ValidationError as exc:
        return None, f"its journaled run config is no longer valid: {exc.errors()[0]['msg']}"


def _restored(
    strategy_id: str,
    name: str,
    status: str,
    config_json: str | None,
    error: str | None,
    updated_at: float,
) -> RestoredStrategy:
    config, problem = _config(config_json)
    state = StrategyStatus(status)
    if problem is not None and state is not StrategyStatus.STOPPED:
        # Restarting with defaults the user never chose would be worse than not running.
        state, error = StrategyStatus.ERROR, f"not restored: {problem}"
    return RestoredStrategy(strategy_id, name, state, config, error, updated_at)


def _journaled_trade(row: Sequence[Any]) -> JournaledTrade:
    """A fill's columns, then its realized P&L, the position it left and its order's
    purpose (a fill without an order row: a signal's)."""
    *fill, pnl, quantity, purpose = row
    return JournaledTrade(_fill(fill), pnl, quantity, OrderPurpose(purpose or OrderPurpose.SIGNAL))


def _status_event(
    strategy_id: str,
    name: str,
    status: str,
    previous: str,
    reason: str | None,
    ts: float,
    config_json: str | None,
) -> StrategyStatusChanged:
    """A lifecycle row as the event that wrote it (its symbols: the run config's)."""
    config, _ = _config(config_json)
    return StrategyStatusChanged(
        strategy_id=strategy_id,
        name=name,
        status=StrategyStatus(status),
        previous=StrategyStatus(previous),
        symbols=config.symbols if config is not None else (),
        ts=ts,
        reason=reason,
        config=config,
    )


def _fill(row: Sequence[Any]) -> Fill:
    fid, order_id, sid, symbol, side, quantity, price, commission, status, reason, ts, rest = row
    return Fill(
        id=fid,
        order_id=order_id,
        strategy_id=sid,
        symbol=symbol,
        side=Side(side),
        quantity=quantity,
        price=price,
        commission=commission,
        ts=ts,
        status=TradeStatus(status),
        reason=reason,
        remaining=rest,
    )


def _order(row: Sequence[Any]) -> Order:
    oid, sid, symbol, side, quantity, purpose, signal_id, ts = row
    return Order(
        id=oid,
        strategy_id=sid,
        symbol=symbol,
        side=Side(side),
        quantity=quantity,
        ts=ts,
        purpose=OrderPurpose(purpose),
        signal_id=signal_id,
    )


def order_json(order: Order) -> str:
    """Every term of ``order`` as JSON: what a restart needs to rest it again."""
    return orjson.dumps(_order_terms(order)).decode()


def _order_terms(order: Order) -> dict[str, Any]:
    bracket = order.bracket
    return {
        "id": order.id,
        "strategy_id": order.strategy_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "quantity": order.quantity,
        "ts": order.ts,
        "purpose": order.purpose.value,
        "signal_id": order.signal_id,
        "order_type": order.order_type.value,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "time_in_force": order.time_in_force.value,
        "bracket": None
        if bracket is None
        else {
            "stop_loss": bracket.stop_loss,
            "take_profit": bracket.take_profit,
            "trailing": _trailing_json(bracket.trailing),
        },
        "parent_id": order.parent_id,
        "trailing": _trailing_json(order.trailing),
    }


def _trailing_json(trailing: Trailing | None) -> dict[str, Any] | None:
    return None if trailing is None else {"amount": trailing.amount, "fraction": trailing.fraction}


def _trailing(data: Mapping[str, Any] | None) -> Trailing | None:
    return None if data is None else Trailing(data["amount"], data["fraction"])


def order_from_json(text: str) -> Order:
    """The order :func:`order_json` wrote."""
    return _order_from_data(orjson.loads(text))


def _order_from_data(data: Mapping[str, Any]) -> Order:
    bracket = data["bracket"]
    return Order(
        id=data["id"],
        strategy_id=data["strategy_id"],
        symbol=data["symbol"],
        side=Side(data["side"]),
        quantity=data["quantity"],
        ts=data["ts"],
        purpose=OrderPurpose(data["purpose"]),
        signal_id=data["signal_id"],
        order_type=OrderType(data["order_type"]),
        limit_price=data["limit_price"],
        stop_price=data["stop_price"],
        time_in_force=TimeInForce(data["time_in_force"]),
        bracket=None
        if bracket is None
        else Bracket(bracket["stop_loss"], bracket["take_profit"], _trailing(bracket["trailing"])),
        parent_id=data["parent_id"],
        trailing=_trailing(data["trailing"]),
    )


def _signal(row: Sequence[Any]) -> Signal:
    sid, strategy_id, name, symbol, action, quantity, price, confidence, metadata, ts = row
    return Signal(
        id=sid,
        strategy_id=strategy_id,
        strategy_name=name,
        symbol=symbol,
        action=Side(action),
        price=price,
        quantity=quantity,
        confidence=confidence,
        ts=ts,
        metadata=orjson.loads(metadata),
    )
