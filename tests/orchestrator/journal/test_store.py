"""The journal: round trips, idempotence, restore, unfilled orders, migrations and refusals."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Journal,
    JournalConflict,
    JournalError,
    JournalNotFound,
    Record,
    default_state_dir,
    journal_path,
)
from orchestrator.model.events import (
    BarClosed,
    HaltSource,
    KillSwitchChanged,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReplaced,
    OrderTriggered,
    QuoteUpdated,
    StrategyStatus,
)
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import (
    Bracket,
    Order,
    OrderPurpose,
    OrderType,
    Side,
    TimeInForce,
    TradeStatus,
    Trailing,
)
from orchestrator.risk.guardian import Halt
from orchestrator.trading.portfolio import PortfolioBook
from tests.orchestrator.journal.journal_support import T0, Trading, run_config

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


def write(path: Path, records: list[Record]) -> None:
    with Journal.open(path) as journal:
        journal.write(records)


def a_day_of_trading(trading: Trading) -> list[Record]:
    """Three strategies that start, trade and end up ACTIVE, PAUSED and STOPPED."""
    records: list[Record] = []
    records += trading.status("sma", StrategyStatus.ACTIVE, run_config("AAPL", "MSFT"))
    records += trading.status(
        "rsi", StrategyStatus.ACTIVE, run_config("GOOG", max_orders_per_minute=9)
    )
    records += trading.status("bb", StrategyStatus.ACTIVE, run_config("TSLA"))
    records += trading.round_trip("sma", "AAPL", Side.BUY, 10, 100.0)
    records += trading.round_trip("sma", "AAPL", Side.BUY, 10, 110.0)
    records += trading.round_trip("sma", "AAPL", Side.SELL, 15, 120.0)
    records += trading.round_trip("sma", "MSFT", Side.SELL, 4, 400.0)
    records += trading.round_trip("rsi", "GOOG", Side.BUY, 7, 170.0)
    records += trading.round_trip("rsi", "GOOG", Side.SELL, 12, 160.0)  # reverses to short
    records += trading.round_trip("bb", "TSLA", Side.BUY, 3, 250.0)
    records += trading.round_trip("bb", "TSLA", Side.SELL, 3, 240.0)
    records += trading.status("rsi", StrategyStatus.PAUSED)
    records += trading.status("bb", StrategyStatus.STOPPED)
    return records


# ---------------------------------------------------------------- opening


def test_a_new_journal_is_created_in_wal_mode_at_the_current_version(path: Path) -> None:
    with Journal.open(path) as journal:
        assert journal.schema_version == SCHEMA_VERSION == 7
    assert path.is_file()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        db.close()


def test_the_journal_path_follows_the_state_directory_conventions(tmp_path: Path) -> None:
    home = {"HOME": "/home/ann"}
    assert default_state_dir(home) == Path("/home/ann/.local/state/orchestrator")
    xdg = {**home, "XDG_STATE_HOME": "/x/state"}
    assert default_state_dir(xdg) == Path("/x/state/orchestrator")
    assert default_state_dir({**home, "XDG_STATE_HOME": "relative"}) == Path(
        "/home/ann/.local/state/orchestrator"
    )
    systemd = {**xdg, "STATE_DIRECTORY": "/var/lib/orchestrator:/var/lib/other"}
    assert default_state_dir(systemd) == Path("/var/lib/orchestrator")
    assert journal_path(JournalConfig(), systemd) == Path("/var/lib/orchestrator/journal.sqlite3")
    configured = JournalConfig(state_dir=tmp_path, file_name="j.db")
    assert journal_path(configured, systemd) == tmp_path / "j.db"


def test_a_second_daemon_cannot_open_the_same_journal(path: Path) -> None:
    with Journal.open(path):
        with pytest.raises(JournalError, match="another orchestrator") as caught:
            Journal.open(path)
        assert f"(pid {os.getpid()}) is running on the state directory {path.parent}" in str(
            caught.value
        )
        with Journal.open_readonly(path) as reader:  # readers are welcome
            assert reader.fills() == []
    Journal.open(path).close()  # and the lock goes with the first one


# ---------------------------------------------------------------- round trips


def test_every_journaled_event_type_round_trips(path: Path) -> None:
    trading = Trading()
    config = run_config("AAPL", "MSFT", data_resolution="5s", stop_loss_percentage=0.05)
    started = trading.status("sma", StrategyStatus.ACTIVE, config)
    signal = trading.signal("sma", "AAPL", Side.BUY, 100.0)
    order = trading.order("sma", "AAPL", Side.BUY, 10, signal_id=signal.signal.id)
    filled = trading.fill(order, 100.25, commission=1.5)
    stop = trading.order("sma", "AAPL", Side.SELL, 10, purpose=OrderPurpose.STOP_LOSS)
    rejected = trading.reject(stop, "price unknown")
    failed = trading.status("sma", StrategyStatus.ERROR, reason="on_bar raised ZeroDivisionError")
    quote = QuoteUpdated(Tick("AAPL", 100.0, 1.0, T0))
    bar = BarClosed(Bar("AAPL", "1s", T0, 1.0, 2.0, 0.5, 1.5, 10.0, 4))
    write(path, [*started, quote, signal, order, bar, filled, stop, rejected, *failed])

    with Journal.open(path) as journal:
        assert journal.signals() == [signal.signal]
        assert journal.orders() == [order.order, stop.order]
        assert journal.fills() == [filled.fill, rejected.fill]
        [strategy] = journal.strategies()
        assert (strategy.id, strategy.name, strategy.status) == ("sma", "Strategy sma", "ERROR")
        assert strategy.config == config
        assert strategy.error == "on_bar raised ZeroDivisionError"
        history = journal.history("sma")
        assert [(h.previous, h.status, h.reason) for h in history] == [
            (StrategyStatus.STOPPED, StrategyStatus.ACTIVE, None),
            (StrategyStatus.ACTIVE, StrategyStatus.ERROR, "on_bar raised ZeroDivisionError"),
        ]
        assert [h.config for h in history] == [config, config]
        [position] = journal.positions()
        assert (position.strategy_id, position.symbol, position.quantity) == ("sma", "AAPL", 10)
        assert (position.entry_price, position.realized_pnl) == (100.25, -1.5)
        assert position.fill_id == filled.fill.id
        assert journal.counts()["position_snapshots"] == 1  # the rejection made none


def test_a_replayed_batch_changes_nothing(path: Path) -> None:
    trading = Trading()
    records = a_day_of_trading(trading)
    with Journal.open(path) as journal:
        journal.write(records)
        before = journal.counts()
        statuses = {s.id: s.status for s in journal.strategies()}
        journal.write(records)
        journal.write(records[:5])  # an old status change must not roll the status back
        assert journal.counts() == before
        assert {s.id: s.status for s in journal.strategies()} == statuses
        assert journal.fills() == [r.fill for r in records if hasattr(r, "fill")]


def test_an_id_reused_with_other_content_is_refused_and_nothing_of_its_batch_kept(
    path: Path,
) -> None:
    trading = Trading()
    first = trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0)
    with Journal.open(path) as journal:
        journal.write(first)
        again = Trading()  # a daemon whose id counters started over
        second = again.round_trip("sma", "AAPL", Side.BUY, 2, 101.0)
        before = journal.counts()
        with pytest.raises(JournalConflict, match="sig_000001"):
            journal.write(second)
        assert journal.counts() == before


# ---------------------------------------------------------------- restore


def test_active_and_paused_strategies_come_back_with_their_configs(path: Path) -> None:
    trading = Trading()
    write(path, a_day_of_trading(trading))
    write(path, trading.status("err", StrategyStatus.ACTIVE, run_config("AMZN")))
    write(path, trading.status("err", StrategyStatus.ERROR, reason="boom"))

    with Journal.open(path) as journal:
        restored = {s.id: s for s in journal.restorable_strategies()}
    assert {i: s.status for i, s in restored.items()} == {
        "sma": StrategyStatus.ACTIVE,
        "rsi": StrategyStatus.PAUSED,
        "err": StrategyStatus.ERROR,
    }
    assert restored["sma"].config == run_config("AAPL", "MSFT")
    assert restored["rsi"].config == run_config("GOOG", max_orders_per_minute=9)
    assert restored["err"].error == "boom"
    assert restored["err"].config == run_config("AMZN")


def test_a_strategy_without_a_usable_config_comes_back_as_error(path: Path) -> None:
    trading = Trading()
    write(path, trading.status("bare", StrategyStatus.ACTIVE))  # no config record
    write(path, trading.status("old", StrategyStatus.PAUSED, run_config("AAPL")))
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE strategies SET config_json = '{\"symbols\": []}' WHERE id = 'old'")
    db.close()
    with Journal.open(path) as journal:
        restored = {s.id: s for s in journal.restorable_strategies()}
    assert restored["bare"].status is StrategyStatus.ERROR
    assert restored["bare"].config is None
    assert restored["bare"].error == "not restored: the journal holds no run config for it"
    assert restored["old"].status is StrategyStatus.ERROR
    assert restored["old"].error is not None
    assert "no longer valid" in restored["old"].error


def test_positions_and_pnl_are_rebuilt_from_the_fills(path: Path) -> None:
    trading = Trading()
    write(path, a_day_of_trading(trading))
    live = trading.book

    with Journal.open(path) as journal:
        rebuilt = journal.rebuild_book()
        snapshots = {(p.strategy_id, p.symbol): p for p in journal.positions()}
    assert sorted(rebuilt.strategy_ids()) == sorted(live.strategy_ids())
    for strategy_id in live.strategy_ids():
        for position in live.portfolio(strategy_id):
            again = rebuilt.portfolio(strategy_id).get(position.symbol)
            assert again is not None
            assert again.quantity == position.quantity
            assert again.entry_price == position.entry_price
            assert again.realized_pnl == position.realized_pnl
            assert again.commission_paid == position.commission_paid
            snapshot = snapshots[(strategy_id, position.symbol)]
            assert snapshot.quantity == position.quantity
            assert snapshot.entry_price == position.entry_price
            assert snapshot.realized_pnl == position.realized_pnl
    aapl = rebuilt.portfolio("sma").get("AAPL")
    assert aapl is not None
    # bought 10 @ 100 and 10 @ 110 (avg 105), sold 15 @ 120: 225 gross, 1.5 commission
    assert (aapl.quantity, aapl.entry_price, aapl.realized_pnl) == (5, 105.0, 223.5)
    goog = rebuilt.portfolio("rsi").get("GOOG")
    assert goog is not None
    assert (goog.quantity, goog.entry_price) == (-5, 160.0)
    assert rebuilt.realized_pnl == live.realized_pnl


def test_rebuild_into_an_existing_book(path: Path) -> None:
    trading = Trading()
    write(path, trading.round_trip("sma", "AAPL", Side.BUY, 2, 50.0))
    book = PortfolioBook()
    with Journal.open(path) as journal:
        assert journal.rebuild_book(book) is book
    assert book.portfolio("sma").position("AAPL") == 2


def test_fills_by_strategy_and_the_last_n(path: Path) -> None:
    trading = Trading()
    records = a_day_of_trading(trading)
    write(path, records)
    fills = [r.fill for r in records if hasattr(r, "fill")]
    with Journal.open_readonly(path) as journal:
        assert journal.fills(strategy_id="rsi") == [f for f in fills if f.strategy_id == "rsi"]
        assert journal.fills(limit=3) == fills[-3:]
        assert (
            journal.fills(strategy_id="sma", limit=1)
            == [f for f in fills if f.strategy_id == "sma"][-1:]
        )
        assert journal.id_watermarks() == {"sig": 8, "order": 8, "trade": 8}


def test_the_last_trades_come_with_their_realized_pnl_and_the_last_signals(path: Path) -> None:
    trading = Trading()
    records = a_day_of_trading(trading)
    write(path, records)
    events = [r for r in records if hasattr(r, "fill")]
    with Journal.open_readonly(path) as journal:
        trades = journal.recent_trades(limit=4)
        signals = journal.recent_signals(limit=2)
        assert journal.recent_trades(limit=100)[0].fill == events[0].fill
    assert [t.fill for t in trades] == [e.fill for e in events[-4:]]
    # Each trade's P&L is what it added to its position's, whatever the limit cut off.
    assert [t.realized_pnl for t in trades] == [e.change.realized_pnl for e in events[-4:]]
    # GOOG: bought 7 @ 170 (0.5 commission), sold 12 @ 160: 7 closed at a 70 loss.
    assert (trades[0].realized_pnl, trades[1].realized_pnl) == (-0.5, -70.5)
    assert trades[-1].realized_pnl == -30.5  # TSLA: 3 bought @ 250, sold @ 240
    assert [s.id for s in signals] == [r.signal.id for r in records if hasattr(r, "signal")][-2:]


# ---------------------------------------------------------------- unfilled orders


def test_accepted_orders_without_a_fill_are_rejected_once_and_never_again(path: Path) -> None:
    trading = Trading()
    filled = trading.order("sma", "AAPL", Side.BUY, 1)
    waiting = trading.order("sma", "AAPL", Side.SELL, 2)
    refused = trading.order("rsi", "GOOG", Side.BUY, 3)
    stop = trading.order("rsi", "GOOG", Side.SELL, 4, purpose=OrderPurpose.STOP_LOSS)
    write(
        path,
        [filled, waiting, refused, stop, trading.fill(filled, 10.0), trading.reject(refused, "x")],
    )
    restart = T0 + 3600

    with Journal.open(path) as journal:
        assert journal.unfilled_orders() == [waiting.order, stop.order]
        resolved = journal.resolve_unfilled("daemon restarted before the order filled", restart)
        assert [f.order_id for f in resolved] == [waiting.order.id, stop.order.id]
        for fill, order in zip(resolved, (waiting.order, stop.order), strict=True):
            assert fill.status is TradeStatus.REJECTED
            assert (fill.strategy_id, fill.symbol, fill.side) == (
                order.strategy_id,
                order.symbol,
                order.side,
            )
            assert (fill.quantity, fill.price, fill.commission, fill.ts) == (
                order.quantity,
                0.0,
                0.0,
                restart,
            )
            assert fill.reason == "daemon restarted before the order filled"
        assert journal.unfilled_orders() == []
    with Journal.open(path) as journal:  # the next start finds nothing to resolve
        assert journal.unfilled_orders() == []
        assert journal.resolve_unfilled("again", restart + 1) == []
        assert journal.fills()[-2:] == resolved
        assert journal.rebuild_book().portfolio("sma").position("AAPL") == 1


# ---------------------------------------------------------------- crashes


def test_a_commit_survives_a_crash_of_the_process(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from orchestrator.journal.store import Journal
        from orchestrator.model.orders import Side
        from tests.orchestrator.journal.journal_support import Trading

        journal = Journal.open(Path({str(path)!r}))
        journal.write(Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
        os._exit(0)  # no close, no checkpoint: the commit is only in the WAL
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0
    with Journal.open_readonly(path) as reader:
        assert len(reader.fills()) == 1
    with Journal.open(path) as journal:
        assert [f.symbol for f in journal.fills()] == ["AAPL"]


def test_a_reader_sees_commits_while_the_daemon_writes(path: Path) -> None:
    trading = Trading()
    with Journal.open(path) as journal:
        journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
        with Journal.open_readonly(path) as reader:
            assert len(reader.fills()) == 1
            journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 101.0))
            assert len(reader.fills()) == 2
            with pytest.raises(JournalError, match="read-only"):
                reader.write([])


# ---------------------------------------------------------------- migrations

V1_SCHEMA = """
CREATE TABLE strategies (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    config_json TEXT, error TEXT, updated_at REAL NOT NULL);
CREATE TABLE lifecycle (seq INTEGER PRIMARY KEY, strategy_id TEXT NOT NULL,
    status TEXT NOT NULL, previous TEXT NOT NULL, reason TEXT, ts REAL NOT NULL,
    UNIQUE (strategy_id, ts, previous, status));
CREATE TABLE signals (id TEXT PRIMARY KEY, strategy_id TEXT NOT NULL,
    strategy_name TEXT NOT NULL, symbol TEXT NOT NULL, action TEXT NOT NULL, quantity REAL,
    price REAL NOT NULL, confidence REAL NOT NULL, metadata_json TEXT NOT NULL,
    ts REAL NOT NULL);
CREATE TABLE orders (id TEXT PRIMARY KEY, strategy_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, quantity REAL NOT NULL, purpose TEXT NOT NULL, signal_id TEXT,
    ts REAL NOT NULL);
CREATE TABLE fills (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    quantity REAL NOT NULL, price REAL NOT NULL, commission REAL NOT NULL,
    status TEXT NOT NULL, reason TEXT, ts REAL NOT NULL);
CREATE TABLE position_snapshots (seq INTEGER PRIMARY KEY, fill_id TEXT NOT NULL UNIQUE,
    strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, quantity REAL NOT NULL,
    entry_price REAL NOT NULL, realized_pnl REAL NOT NULL, ts REAL NOT NULL);
"""
"""Schema version 1 as it shipped, written out here so that a change to the shipped
migration cannot pass unnoticed."""


def make_v1_journal(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V1_SCHEMA)
    db.executescript(
        f"""
        INSERT INTO strategies VALUES ('sma', 'SMA', 'ACTIVE', '{{"symbols": ["AAPL"]}}',
            NULL, {T0});
        INSERT INTO lifecycle (strategy_id, status, previous, reason, ts)
            VALUES ('sma', 'ACTIVE', 'STOPPED', NULL, {T0});
        INSERT INTO orders VALUES ('order_000001', 'sma', 'AAPL', 'BUY', 5, 'signal', NULL, {T0});
        INSERT INTO orders VALUES ('order_000002', 'sma', 'AAPL', 'BUY', 1, 'signal', NULL, {T0});
        INSERT INTO fills (id, order_id, strategy_id, symbol, side, quantity, price,
            commission, status, reason, ts) VALUES ('trade_000001', 'order_000001', 'sma',
            'AAPL', 'BUY', 5, 100.0, 0.0, 'FILLED', NULL, {T0 + 1});
        INSERT INTO position_snapshots (fill_id, strategy_id, symbol, quantity, entry_price,
            realized_pnl, ts) VALUES ('trade_000001', 'sma', 'AAPL', 5, 100.0, 0.0, {T0 + 1});
        PRAGMA application_id = {APPLICATION_ID};
        PRAGMA user_version = 1;
        """
    )
    db.close()


def indexes(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        return {name for (name,) in rows}
    finally:
        db.close()


def test_a_version_1_journal_is_migrated_and_keeps_its_data(path: Path) -> None:
    make_v1_journal(path)
    with Journal.open_readonly(path) as old:  # tools read a v1 journal as it is
        assert old.schema_version == 1
        assert [h.config for h in old.history()] == [None]
        assert old.kill_switch() is None
        assert "kill_switch" not in old.counts()
    assert indexes(path) == set()

    with Journal.open(path) as journal:
        assert journal.schema_version == SCHEMA_VERSION
        assert journal.kill_switch() is None
        assert [f.id for f in journal.fills()] == ["trade_000001"]
        assert [o.id for o in journal.unfilled_orders()] == ["order_000002"]
        [strategy] = journal.restorable_strategies()
        assert strategy.config == run_config("AAPL")
        assert [h.config for h in journal.history()] == [None]  # the new column, empty
        trading = Trading(statuses={"sma": StrategyStatus.ACTIVE})
        journal.write(trading.status("sma", StrategyStatus.PAUSED, run_config("AAPL")))
        assert journal.history()[-1].config == run_config("AAPL")
        position = journal.rebuild_book().portfolio("sma").get("AAPL")
        assert position is not None and position.quantity == 5
    assert indexes(path) == {
        "fills_by_order",
        "fills_by_strategy",
        "snapshots_by_position",
    }
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_the_kill_switch_is_journaled_and_its_last_change_read_back(path: Path) -> None:
    with Journal.open(path) as journal:
        assert journal.kill_switch() is None
        journal.write([KillSwitchChanged(True, "panic", True, HaltSource.COMMAND, 1_000.0)])
        assert journal.kill_switch() == Halt("panic", True, HaltSource.COMMAND, 1_000.0)
        journal.write([KillSwitchChanged(False, "calm", False, HaltSource.COMMAND, 2_000.0)])
        assert journal.kill_switch() is None
        loss = KillSwitchChanged(True, "daily loss", False, HaltSource.DAILY_LOSS, 3_000.0)
        journal.write([loss])
        journal.write([loss])  # a batch written twice changes nothing
        assert journal.counts()["kill_switch"] == 3
    with Journal.open_readonly(path) as reader:
        assert reader.kill_switch() == Halt("daily loss", False, HaltSource.DAILY_LOSS, 3_000.0)


def test_a_failed_migration_leaves_the_journal_at_its_version(path: Path) -> None:
    make_v1_journal(path)
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX fills_by_order ON fills (order_id)")  # in the way of migration 2
    db.close()
    with pytest.raises(JournalError, match="migration to schema version 2 failed"):
        Journal.open(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [row[1] for row in db.execute("PRAGMA table_info(lifecycle)")]
        assert "config_json" not in columns  # the ALTER before it was rolled back too
    finally:
        db.close()


# ---------------------------------------------------------------- refusals


def refused(path: Path, match: str) -> None:
    """Opening ``path`` is refused with ``match``, and the file is left as it was."""
    before = path.read_bytes()
    with pytest.raises(JournalError, match=match) as caught:
        Journal.open(path)
    assert str(path) in caught.value.message
    assert path.read_bytes() == before
    # tools refuse at opening or at the first read
    with pytest.raises(JournalError), Journal.open_readonly(path) as reader:
        reader.fills()
        reader.positions()
    assert path.read_bytes() == before


def test_a_journal_from_a_newer_daemon_is_refused(path: Path) -> None:
    write(path, Trading().round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    refused(
        path,
        f"has schema version {SCHEMA_VERSION + 1}; this daemon understands up to {SCHEMA_VERSION}; "
        "upgrade the daemon or restore a backup",
    )


def test_random_bytes_are_refused_untouched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 64)
    refused(path, "is not a SQLite database")


def test_a_truncated_journal_is_refused_untouched(path: Path) -> None:
    trading = Trading()
    records: list[Record] = []
    for i in range(300):
        records += trading.round_trip("sma", "AAPL", Side.BUY, 1 + i % 5, 100.0 + i)
    write(path, records)
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: all in the main file
    data = path.read_bytes()
    assert len(data) > 16 * 4096
    path.write_bytes(data[: len(data) // 2])
    refused(path, "corrupt")


def test_a_damaged_trades_page_is_refused_untouched(path: Path) -> None:
    trading = Trading()
    records: list[Record] = []
    for i in range(300):
        records += trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0 + i)
    write(path, records)
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'fills'").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + 200] = b"\xff" * 200  # scribble over the trades' root page
    path.write_bytes(bytes(data))
    refused(path, "corrupt")


def test_another_applications_database_is_refused_untouched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    refused(path, "not an orchestrator journal")


def test_read_only_opening_needs_an_existing_journal(path: Path) -> None:
    with pytest.raises(JournalNotFound, match="no journal at"):
        Journal.open_readonly(path)
    assert not path.exists()


def resting_order(order_id: str, **terms: object) -> Order:
    base = Order(order_id, "sma", "AAPL", Side.BUY, 10.0, T0, order_type=OrderType.LIMIT,
                 limit_price=99.0)  # fmt: skip
    return dataclasses.replace(base, **terms)  # type: ignore[arg-type]


def test_resting_orders_are_journaled_with_every_term_and_closed_by_their_events(
    path: Path,
) -> None:
    entry = resting_order(
        "order_000001",
        order_type=OrderType.STOP_LIMIT,
        stop_price=101.0,
        limit_price=101.5,
        time_in_force=TimeInForce.DAY,
        bracket=Bracket(95.0, 110.0, Trailing(0.02, fraction=True)),
    )
    exit_ = resting_order(
        "order_000007",
        side=Side.SELL,
        order_type=OrderType.STOP,
        limit_price=None,
        stop_price=97.0,
        purpose=OrderPurpose.STOP_LOSS,
        parent_id="order_000005",
        trailing=Trailing(2.0),
    )
    triggered, cancelled, expired = (resting_order(f"order_00001{n}") for n in range(3))
    accepted = [OrderAccepted(o, T0) for o in (entry, exit_, triggered, cancelled, expired)]
    replaced = dataclasses.replace(entry, quantity=4.0, limit_price=102.0)
    closing: list[Record] = [
        OrderReplaced(replaced, entry, T0 + 1),
        OrderTriggered(triggered, 99.0, T0 + 2),
        OrderCancelled(cancelled, "cancelled by the strategy", T0 + 3),
        OrderExpired(expired, "expired", T0 + 4),
    ]
    with Journal.open(path) as journal:
        first = journal.write(accepted)
        assert len(journal.resting_orders()) == 5
        first += journal.write(closing)
        again = journal.write([*accepted, *closing])  # a replay changes nothing
        assert again == first
        assert journal.resting_orders() == [replaced, exit_]
        assert journal.counts()["order_events"] == 9
        # An order id only a resting order used is where the id factory resumes.
        assert journal.id_watermarks()["order"] == 12
    with Journal.open_readonly(path) as reader:
        assert reader.resting_orders() == [replaced, exit_]


def test_order_events_are_read_back_by_stream_position_as_they_were_written(
    path: Path,
) -> None:
    entry = resting_order("order_000001", bracket=Bracket(95.0, 110.0, None))
    replaced = dataclasses.replace(entry, quantity=4.0, limit_price=102.0)
    written: list[Record] = [
        OrderAccepted(entry, T0),
        OrderReplaced(replaced, entry, T0 + 1),
        OrderTriggered(replaced, 102.0, T0 + 2),
        OrderCancelled(resting_order("order_000002"), "cancelled by the strategy", T0 + 3),
        OrderExpired(resting_order("order_000003"), "expired", T0 + 4),
    ]
    with Journal.open(path) as journal:
        positions = journal.write(written)
        topics = {type(event).topic for event in written}
        read = journal.stream(0, journal.last_position, topics, limit=100)
    assert read == list(zip(positions, written, strict=True))


def test_a_resting_order_with_a_fill_is_not_resting_even_if_its_close_was_lost(
    path: Path,
) -> None:
    trading = Trading()
    submitted = trading.order("sma", "AAPL", Side.BUY, 10.0)
    with Journal.open(path) as journal:
        journal.write([OrderAccepted(submitted.order, T0), submitted])
        assert journal.resting_orders() == [submitted.order]
        journal.write([trading.fill(submitted, 99.0)])
        assert journal.resting_orders() == []
