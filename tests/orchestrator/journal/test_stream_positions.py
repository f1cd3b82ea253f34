"""Stream positions: every journaled event's place in one order that outlives the run,
and the events read back by it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.journal.store import Journal, JournaledTrade, Record, StrategyConfigured
from orchestrator.model.events import (
    HaltSource,
    KillSwitchChanged,
    QuoteUpdated,
    SignalEmitted,
    StrategyStatus,
    StrategyStatusChanged,
    Topic,
    TradeExecuted,
)
from orchestrator.model.market import Tick
from orchestrator.model.orders import Side
from tests.orchestrator.journal.journal_support import T0, Trading, run_config

EVERY_TOPIC = list(Topic)


def session(trading: Trading) -> list[Record]:
    records: list[Record] = [*trading.status("sma", StrategyStatus.ACTIVE, run_config("AAPL"))]
    records += trading.round_trip("sma", "AAPL", Side.BUY, 2, 100.0)
    records.append(
        KillSwitchChanged(True, "maintenance", False, HaltSource.COMMAND, trading.tick())
    )
    records += trading.round_trip("sma", "AAPL", Side.SELL, 2, 101.0)
    return records


def positioned(records: list[Record]) -> list[Record]:
    return [r for r in records if not isinstance(r, StrategyConfigured)]


def test_positions_follow_the_records_across_tables_and_a_rewrite_keeps_them(
    tmp_path: Path,
) -> None:
    records = session(Trading())
    with Journal.open(tmp_path / "journal.sqlite3") as journal:
        positions = journal.write(records)
        assert positions == [None, *range(1, len(records))]  # the config has no row of its own
        assert journal.write(records) == positions  # written again: the same rows, positions
        assert journal.last_position == 2 * len(positions[1:])  # the rewrite's were skipped
        streamed = journal.stream(0, journal.last_position, EVERY_TOPIC, 100)
    assert [p for p, _ in streamed] == positions[1:]
    kinds = [type(record) for _, record in streamed]
    assert kinds == [
        StrategyStatusChanged,
        SignalEmitted,
        type(records[3]),  # the order
        JournaledTrade,
        KillSwitchChanged,
        SignalEmitted,
        type(records[7]),
        JournaledTrade,
    ]


def test_events_read_back_are_the_events_written(tmp_path: Path) -> None:
    records = session(Trading())
    with Journal.open(tmp_path / "journal.sqlite3") as journal:
        journal.write(records)
        streamed = [record for _, record in journal.stream(0, 100, EVERY_TOPIC, 100)]
    for written, read in zip(positioned(records), streamed, strict=True):
        if isinstance(written, TradeExecuted):
            assert isinstance(read, JournaledTrade)
            assert read.fill == written.fill
            change = written.change
            assert change is not None
            assert read.realized_pnl is not None
            assert abs(read.realized_pnl - change.realized_pnl) < 1e-9
        else:
            assert read == written


def test_reads_are_bounded_by_range_topics_and_limit(tmp_path: Path) -> None:
    trading = Trading()
    with Journal.open(tmp_path / "journal.sqlite3") as journal:
        for i in range(10):
            journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0 + i))
        trades = journal.stream(6, 21, [Topic.STRATEGY_TRADE], 100)
        assert [p for p, _ in trades] == [9, 12, 15, 18, 21]
        assert [p for p, _ in journal.stream(6, 21, [Topic.STRATEGY_TRADE], 2)] == [9, 12]
        mixed = journal.stream(27, 30, [Topic.STRATEGY_SIGNAL, Topic.STRATEGY_TRADE], 10)
        assert [(p, type(r)) for p, r in mixed] == [(28, SignalEmitted), (30, JournaledTrade)]
        assert journal.stream(30, 30, EVERY_TOPIC, 10) == []
        assert journal.stream(0, 30, [Topic.MARKET_QUOTE, Topic.EXECUTION_STATUS], 10) == []


def test_positions_go_on_after_a_restart_and_each_run_has_its_own_later_epoch(
    tmp_path: Path,
) -> None:
    trading = Trading()
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        first = journal.begin_run(1_000, T0)
        journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
    with Journal.open(path) as journal:
        # The clock went back, or the start came in the same millisecond: still later.
        second = journal.begin_run(900, T0)
        assert journal.write(trading.round_trip("sma", "AAPL", Side.SELL, 1, 101.0)) == [4, 5, 6]
        unfilled = trading.order("sma", "AAPL", Side.BUY, 1)
        journal.write([unfilled])
        [resolved] = journal.resolve_unfilled("daemon restarted", T0)
        [(position, trade)] = journal.stream(7, 100, [Topic.STRATEGY_TRADE], 10)
        assert (position, trade.fill) == (8, resolved)  # a fill written at start has one too
        assert journal.runs() == {first: 1, second: 4}
    assert (first, second) == (1_000, 1_001)
    with Journal.open_readonly(path) as reader:
        assert reader.runs() == {1_000: 1, 1_001: 4}


def test_quotes_and_configs_take_no_position(tmp_path: Path) -> None:
    trading = Trading()
    records: list[Record] = [
        QuoteUpdated(Tick("AAPL", 1.0, 1.0, T0)),
        *trading.status("sma", StrategyStatus.ACTIVE, run_config("AAPL")),
    ]
    with Journal.open(tmp_path / "journal.sqlite3") as journal:
        assert journal.write(records) == [None, None, 1]
