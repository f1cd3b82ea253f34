"""``orchestrator journal``: tables for people, JSON and CSV for programs, clear refusals."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateways.cli.journal import TRADE_FIELDS
from gateways.cli.main import PACKAGE, main
from orchestrator.journal.store import Journal, Record
from orchestrator.model.clock import iso_utc
from orchestrator.model.events import StrategyStatus
from orchestrator.model.orders import Fill, Side
from tests.orchestrator.journal.journal_support import Trading, run_config

FILE = "journal.sqlite3"


def trading_day(trading: Trading) -> list[Record]:
    records: list[Record] = []
    records += trading.status("sma", StrategyStatus.ACTIVE, run_config("AAPL", "MSFT"))
    records += trading.status("rsi", StrategyStatus.ACTIVE, run_config("GOOG"))
    records += trading.round_trip("sma", "AAPL", Side.BUY, 10, 100.0)
    records += trading.round_trip("sma", "AAPL", Side.BUY, 10, 110.5)
    records += trading.round_trip("sma", "AAPL", Side.SELL, 15, 120.25)
    records += trading.round_trip("rsi", "GOOG", Side.SELL, 0.5, 170.125)
    order = trading.order("rsi", "GOOG", Side.SELL, 1)
    records += [order, trading.reject(order, "maxOrdersPerMinute 5 reached")]
    return records


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def fills(state: Path) -> list[Fill]:
    records = trading_day(Trading())
    with Journal.open(state / FILE) as journal:
        journal.write(records)
        return journal.fills()


def trade_id(line: str) -> str:
    """The trade id of a table row: after the time, strategy, symbol, side, quantity,
    price, commission, P&L (empty for an opening fill) and status."""
    return next(cell for cell in line.split() if cell.startswith("trade_"))


def fill_of(row: dict[str, Any]) -> Fill:
    """The Fill a JSON or CSV row of ``trades`` describes (its wire names undone)."""
    names = {"orderId": "order_id", "strategyId": "strategy_id"}
    fields = {names.get(k, k): v for k, v in row.items() if k not in ("time", "realizedPnl")}
    return Fill(**fields)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["journal", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def columns(header: str) -> list[int]:
    """Where each column starts in a table's dashed line."""
    starts, previous = [], " "
    for i, char in enumerate(header):
        if char == "-" and previous == " ":
            starts.append(i)
        previous = char
    return starts


def test_trades_are_an_aligned_table_oldest_first(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--state-dir", str(state), "trades")
    assert (code, err) == (0, "")
    header, dashes, *rows = out.splitlines()
    assert header.split() == [
        *("time", "strategy", "symbol", "side", "quantity", "price", "commission", "P&L"),
        *("status", "trade", "order", "reason"),
    ]
    assert len(rows) == len(fills) == 5
    starts = columns(dashes)
    for row, fill in zip(rows, fills, strict=True):
        cells = [
            iso_utc(fill.ts),
            fill.strategy_id,
            fill.symbol,
            fill.side,
            f"{fill.quantity:g}",
            f"{fill.price:g}" if fill.status == "FILLED" else "-",
            f"{fill.commission:.2f}",
        ]
        assert row.split()[:7] == cells
        assert row[starts[8] :].split()[:3] == [fill.status, fill.id, fill.order_id]
        # text columns start where their dashes start; numbers end where theirs end
        assert row[starts[1] :].startswith(fill.strategy_id)
        assert row[starts[9] :].startswith(fill.id)
        assert row[: starts[6] - 2].endswith(f"{fill.price:g}" if fill.price else "-")
    assert rows[-1].endswith("maxOrdersPerMinute 5 reached")


def test_trades_of_one_strategy_the_last_n_and_as_json(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--state-dir", str(state), "trades", "--strategy", "sma")
    assert code == 0
    assert [trade_id(line) for line in out.splitlines()[2:]] == [
        f.id for f in fills if f.strategy_id == "sma"
    ]
    code, out, _ = run(capsys, "--state-dir", str(state), "trades", "--limit", "2")
    assert [trade_id(line) for line in out.splitlines()[2:4]] == [f.id for f in fills[-2:]]
    assert "the last 2 trades" in out
    code, out, _ = run(capsys, "--state-dir", str(state), "trades", "--limit", "1")
    assert "(the last 1 trade; --limit 0 shows all)" in out
    code, out, _ = run(capsys, "--state-dir", str(state), "trades", "--json", "--limit", "0")
    rows = json.loads(out)
    assert [tuple(row) for row in rows] == [TRADE_FIELDS] * len(fills)
    assert [fill_of(row) for row in rows] == fills
    code, out, _ = run(capsys, "--state-dir", str(state), "trades", "--strategy", "none")
    assert (code, out) == (0, "no trades for none\n")


def test_positions_show_quantity_average_cost_and_realized_pnl(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--state-dir", str(state), "positions")
    assert code == 0
    header, _, *rows, total = out.splitlines()
    assert header == "strategy  symbol  quantity  entry price  realized P&L  last fill"
    # AAPL: 10 @ 100 + 10 @ 110.5 = avg 105.25; sold 15 @ 120.25: 225 gross - 1.5 commission
    assert [row.split()[:5] for row in rows] == [
        ["rsi", "GOOG", "-0.5", "170.125", "-0.50"],
        ["sma", "AAPL", "5", "105.25", "223.50"],
    ]
    assert total == "realized P&L: 223.00"

    code, out, _ = run(capsys, "--file", str(state / FILE), "positions", "--json")
    book = Journal.open_readonly(state / FILE).rebuild_book()
    for row in json.loads(out):
        position = book.portfolio(row["strategyId"]).get(row["symbol"])
        assert position is not None
        assert (row["quantity"], row["entryPrice"], row["realizedPnl"]) == (
            position.quantity,
            position.entry_price,
            position.realized_pnl,
        )


def test_export_writes_every_trade_as_csv_with_a_header(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "out" / "trades.csv"
    output.parent.mkdir()
    code, _, err = run(capsys, "--state-dir", str(state), "export", "--output", str(output))
    assert code == 0
    assert err == f"exported 5 trades to {output}\n"
    with output.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == TRADE_FIELDS
        rows = list(reader)
    assert [row["id"] for row in rows] == [f.id for f in fills]
    for row, fill in zip(rows, fills, strict=True):
        assert float(row["price"]) == fill.price  # full precision
        assert float(row["quantity"]) == fill.quantity
        assert float(row["ts"]) == fill.ts
        assert row["time"] == iso_utc(fill.ts)
        assert row["reason"] == (fill.reason or "")

    code, out, _ = run(capsys, "--state-dir", str(state), "export", "--output", "-")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == rows


def test_export_to_an_unwritable_place_fails_cleanly(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing-dir" / "trades.csv"
    code, _, err = run(capsys, "--state-dir", str(state), "export", "--output", str(target))
    assert code == 1
    assert f"cannot write {target}" in err


def test_a_missing_journal_exits_2_and_creates_nothing(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--state-dir", str(state), "trades")
    assert (code, out) == (2, "")
    assert f"no journal at {state / FILE}" in err
    assert "--state-dir" in err
    assert not state.exists()


def test_a_corrupt_journal_exits_2_as_the_daemon_does_and_stays_untouched(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state.mkdir()
    (state / FILE).write_bytes(b"not a database, just text\n" * 100)
    code, out, err = run(capsys, "--state-dir", str(state), "positions")
    assert (code, out) == (2, "")
    assert "is not a SQLite database" in err
    assert (state / FILE).read_bytes() == b"not a database, just text\n" * 100


def test_reads_while_the_daemon_writes_and_changes_nothing(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trading = Trading()
    with Journal.open(state / FILE) as journal:  # the daemon holds it open
        journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 100.0))
        before = (state / FILE).read_bytes()
        code, out, _ = run(capsys, "--state-dir", str(state), "trades")
        assert code == 0 and "trade_000001" in out
        journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 1, 101.0))
        code, out, _ = run(capsys, "--state-dir", str(state), "trades")
        assert "trade_000002" in out
        assert (state / FILE).read_bytes() == before  # commits sit in the WAL until checkpoint


def test_finds_the_journal_the_daemon_would_use(
    state: Path,
    fills: list[Fill],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_JOURNAL__STATE_DIR", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(state))  # as systemd sets it
    assert run(capsys, "trades")[0] == 0
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert run(capsys, "trades")[0] == 2
    monkeypatch.setenv("ORCHESTRATOR_JOURNAL__STATE_DIR", str(state))
    assert run(capsys, "trades")[0] == 0
    monkeypatch.delenv("ORCHESTRATOR_JOURNAL__STATE_DIR")
    config = tmp_path / "orchestrator.toml"
    config.write_text(f'[journal]\nstate_dir = "{state}"\n')
    assert run(capsys, "--config", str(config), "trades")[0] == 0
    config.write_text("[journal]\nstate_dir = 5\nbogus = 1\n")
    code, _, err = run(capsys, "--config", str(config), "trades")
    assert code == 2
    assert "journal.bogus" in err


def test_each_closing_trade_shows_what_it_realized(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--state-dir", str(state), "trades", "--json", "--limit", "0")
    realized = {row["id"]: row["realizedPnl"] for row in json.loads(out)}
    # AAPL: bought 10 @ 100 and 10 @ 110.5, sold 15 @ 120.25 (avg 105.25): 225 gross;
    # each fill pays 0.5 commission, so the three add up to the position's 223.50
    aapl = [f.id for f in fills if f.symbol == "AAPL"]
    assert [realized[i] for i in aapl] == [-0.5, -0.5, 224.5]
    _, out, _ = run(capsys, "--state-dir", str(state), "trades", "--limit", "3")
    last_aapl = next(line for line in out.splitlines() if aapl[-1] in line)
    assert "224.50" in last_aapl.split()
    _, out, _ = run(capsys, "--state-dir", str(state), "trades", "--json", "--limit", "1")
    assert [row["realizedPnl"] for row in json.loads(out)] == [None]  # a rejection


def test_a_flat_position_shows_no_entry_price(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trading = Trading()
    with Journal.open(state / FILE) as journal:
        journal.write(trading.round_trip("sma", "AAPL", Side.BUY, 10, 100.0))
        journal.write(trading.round_trip("sma", "AAPL", Side.SELL, 10, 101.0))
    capsys.readouterr()  # the journal's log lines
    code, out, _ = run(capsys, "--state-dir", str(state), "positions")
    assert code == 0
    [row] = out.splitlines()[2:-1]
    assert row.split()[:4] == ["sma", "AAPL", "0", "-"]
    code, out, _ = run(capsys, "--state-dir", str(state), "positions", "--json")
    assert [row["entryPrice"] for row in json.loads(out)] == [None]


def test_export_refuses_to_overwrite_without_force(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "trades.csv"
    output.write_text("precious\n")
    code, _, err = run(capsys, "--state-dir", str(state), "export", "--output", str(output))
    assert code == 1
    assert f"{output} exists; add --force to overwrite it" in err
    assert output.read_text() == "precious\n"
    argv = ("--state-dir", str(state), "export", "--output", str(output), "--force")
    code, _, _ = run(capsys, *argv)
    assert code == 0
    assert output.read_text().startswith(",".join(TRADE_FIELDS))


@pytest.mark.parametrize(
    "argv",
    [
        ("trades", "--state-dir", "{state}"),
        ("--state-dir", "{state}", "trades"),
        ("trades", "--file", "{state}/journal.sqlite3"),
        ("positions", "--file", "{state}/journal.sqlite3"),
        ("export", "--output", "-", "--state-dir", "{state}"),
    ],
)
def test_location_options_work_after_the_action(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *(arg.format(state=state) for arg in argv))
    assert (code, err) == (0, "")
    assert "AAPL" in out


def test_file_and_state_dir_on_both_sides_of_the_action_are_refused(
    state: Path, fills: list[Fill], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--file", str(state / FILE), "trades", "--state-dir", str(state))
    assert (code, out) == (2, "")
    assert "--file and --state-dir" in err


def test_a_bad_option_prints_the_usage_of_that_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["journal", "trades", "--bogus"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: orchestrator journal trades")
    assert "orchestrator journal trades: error: unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        main(["status", "--bogus"])
    assert capsys.readouterr().err.startswith("usage: orchestrator status")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"orchestrator {importlib.metadata.version(PACKAGE)}\n"
