"""`orchestrator backtest` against a real daemon: a job submitted and followed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateways.client.backtest_text import STATISTICS_ROWS
from gateways.client.commands import (
    EXIT_DAEMON_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    _backtest_command,
    build_client_parser,
)
from orchestrator.marketdata.history import load_ohlcv, write_parquet
from tests.gateways.client.test_commands import cli_daemon, dead_url


async def test_backtest_runs_a_job_to_completion(capsys: pytest.CaptureFixture[str]) -> None:
    async with cli_daemon(capsys) as (_, cli):
        code, out, err = await cli(
            "backtest", "holder", "--duration", "900", "--resolution", "5s", "--json"
        )
    assert code == EXIT_OK, err
    job = json.loads(out)
    assert job["status"] == "completed"
    result = job["result"]
    assert {"total_trades", "win_rate", "total_return"} <= set(result)
    assert {"statistics", "trades", "open_trade", "series", "buy_and_hold_return"} <= set(result)
    assert len(result["series"]["equity"]) == result["bars"] == 180


async def test_backtest_prints_the_statistics_as_an_aligned_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, cli):
        code, out, err = await cli("backtest", "holder", "--duration", "3600", "--resolution", "5s")
    assert code == EXIT_OK, err
    headline, blank, *table = out.rstrip("\n").split("\n")
    assert headline.startswith("backtest ") and " completed: " in headline and "trade" in headline
    assert blank == ""
    assert len(table) == len(STATISTICS_ROWS)
    assert len({len(line) for line in table}) == 1  # labels and values aligned
    rows = {line[:24].rstrip(): line[24:].strip() for line in table}
    assert rows["Start"] == "2024-01-01T00:00:00.000Z"
    assert rows["Duration"] == "59 min 55 s"
    assert rows["Return"].endswith("%") and rows["Max. drawdown"].endswith("%")
    assert rows["Equity final"].replace(",", "").replace(".", "").isdigit()
    assert "," in rows["Equity final"]  # thousands separators, as the rest of the CLI
    assert rows["Trades"].isdigit()
    assert "\r" not in out  # no progress bar when the output is no terminal


async def test_a_failing_backtest_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "empty.csv").write_text("timestamp,open,high,low,close,volume\n")
    async with cli_daemon(capsys, jobs={"data_dir": str(tmp_path)}) as (_, cli):
        # --csv, the option's former name, still works.
        code, out, _ = await cli("backtest", "holder", "--csv", "empty.csv", "--symbol", "aapl")
    assert code == EXIT_DAEMON_ERROR
    assert "failed" in out and "empty.csv" in out


async def test_a_parquet_dataset_backtests_like_its_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    closes = [100 + (i * 7 % 11) for i in range(120)]
    rows += [f"{1_704_067_200 + 60 * i},{c},{c + 1},{c - 1},{c},10" for i, c in enumerate(closes)]
    csv = tmp_path / "aapl.csv"
    csv.write_text("\n".join(rows) + "\n")
    (tmp_path / "set" / "symbol=AAPL").mkdir(parents=True)
    write_parquet(load_ohlcv(csv, "AAPL"), tmp_path / "set" / "symbol=AAPL" / "part.parquet")
    results = []
    async with cli_daemon(capsys, jobs={"data_dir": str(tmp_path)}) as (_, cli):
        for path in ("aapl.csv", "set"):
            code, out, err = await cli(
                "backtest", "holder", "--file", path, "--symbol", "aapl", "--json"
            )
            assert code == EXIT_OK, err
            result = json.loads(out)["result"]
            results.append({k: v for k, v in result.items() if k != "duration_seconds"})
    assert results[0] == results[1]
    assert results[0]["bars"] == 120


async def test_backtest_without_a_daemon_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    from gateways.client.commands import main_async

    code = await main_async(["backtest", "holder", "--url", dead_url()])
    assert code == EXIT_UNREACHABLE
    assert "is `orchestrator run` running?" in capsys.readouterr().err


def test_a_synthetic_backtest_leaves_what_is_not_given_to_the_daemon() -> None:
    parser = build_client_parser()
    bare = _backtest_command(parser.parse_args(["backtest", "holder"]))
    assert bare == {"type": "run_backtest", "strategyId": "holder", "source": {"kind": "synthetic"}}
    given = parser.parse_args(["backtest", "holder", "--duration", "60", "--seed", "3"])
    assert _backtest_command(given)["source"] == {
        "kind": "synthetic",
        "durationSeconds": 60.0,
        "seed": 3,
    }


async def test_the_daemons_bounds_come_back_in_the_clis_flag_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, cli):
        code, _, err = await cli("backtest", "holder", "--duration", "1e12")
        assert code == EXIT_DAEMON_ERROR
        assert "--duration: Input should be less than or equal to 31622400" in err
        code, _, err = await cli("backtest", "holder", "--resolution", "7m")
        assert "--resolution: unknown resolution '7m'; use one of 1s" in err
        code, _, err = await cli("backtest", "holder", "--symbol", "nope")
        assert code == EXIT_DAEMON_ERROR
        assert "no market data for NOPE; the feed provides" in err


def test_params_and_capital_go_on_the_wire_as_typed() -> None:
    parser = build_client_parser()
    args = ["backtest", "holder", "--param", "quantity=3", "--param", "note=a b"]
    command = _backtest_command(parser.parse_args([*args, "--capital", "2500"]))
    assert command["params"] == {"quantity": 3, "note": "a b"}
    assert command["initialCapital"] == 2500.0


async def test_a_backtest_runs_with_its_params_and_capital(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, cli):
        code, out, err = await cli(
            "backtest",
            "holder",
            *("--duration", "600", "--resolution", "5s"),
            *("--param", "quantity=3", "--capital", "2500", "--json"),
        )
        assert code == EXIT_OK, err
        result = json.loads(out)["result"]
        code, _, err = await cli("backtest", "holder", "--capital", "2e12")
    assert result["initial_capital"] == 2500
    assert result["open_trade"]["quantity"] == 3
    assert code == EXIT_DAEMON_ERROR
    assert "--capital: Input should be less than or equal to 1000000000000" in err


async def test_backtest_of_several_symbols_prints_each_symbols_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, cli):
        argv = ("--duration", "1800", "--resolution", "5s", "--symbols", "aapl,MSFT")
        code, out, err = await cli("backtest", "holder", *argv)
        json_code, json_out, _ = await cli(
            "backtest", "holder", *argv, "--capital", "15e3", "--json"
        )
    assert code == json_code == EXIT_OK, err
    *_, header, aapl, msft = out.rstrip("\n").split("\n")
    assert header.split() == ["Symbol", "Trades", "Win", "rate", "Return", "Buy", "&", "hold",
                              "Max.", "drawdown", "Sharpe", "Profit", "factor"]  # fmt: skip
    assert aapl.startswith("AAPL ") and msft.startswith("MSFT ")
    assert len({len(header), len(aapl), len(msft)}) == 1  # aligned
    result = json.loads(json_out)["result"]
    assert result["symbols"] == ["AAPL", "MSFT"]
    assert result["initial_capital"] == result["per_symbol"][1]["initial_capital"] == 15_000


def test_the_cli_builds_several_symbols_files_and_capital() -> None:
    parser = build_client_parser()
    args = parser.parse_args(
        ["backtest", "holder", "--files", "aapl=a.csv, MSFT=m.parquet", "--capital", "5e4"]
    )
    assert _backtest_command(args) == {
        "type": "run_backtest",
        "strategyId": "holder",
        "source": {"kind": "files", "paths": {"AAPL": "a.csv", "MSFT": "m.parquet"}},
        "initialCapital": 50_000.0,
    }
    args = parser.parse_args(["backtest", "holder", "--file", "set", "--symbols", "a,b"])
    assert _backtest_command(args)["symbols"] == ["A", "B"]
    with pytest.raises(SystemExit):
        parser.parse_args(["backtest", "holder", "--files", "AAPL"])


def test_partial_fills_and_their_volume_fraction_go_on_the_wire() -> None:
    parser = build_client_parser()
    plain = _backtest_command(parser.parse_args(["backtest", "holder"]))
    assert "partialFills" not in plain and "maxVolumeFraction" not in plain
    flags = ["--partial-fills", "--max-volume-fraction", "0.25"]
    command = _backtest_command(parser.parse_args(["backtest", "holder", *flags]))
    assert (command["partialFills"], command["maxVolumeFraction"]) == (True, 0.25)


async def test_a_volume_fraction_without_partial_fills_is_refused_in_flag_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, cli):
        code, _, err = await cli("backtest", "holder", "--max-volume-fraction", "0.5")
    assert code == EXIT_DAEMON_ERROR
    assert "--max-volume-fraction bounds partial fills: set --partial-fills too" in err
