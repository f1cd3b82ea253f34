"""Backtest jobs through the orchestrator server and the dgbit job stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateways.api.jobs import SyntheticSourceIn, _source
from orchestrator.backtest.engine import BacktestSpec, SyntheticSource, run_backtest
from orchestrator.strategy.config import default_catalog
from tests.support import TestDaemon, running_daemon, test_config

RESULT_FIELDS = {"total_trades", "win_rate", "total_return"}


async def job_stream(daemon: TestDaemon, job_id: str) -> ClientConnection:
    ws = await connect(daemon.url(path=f"/api/ws/jobs/{job_id}"))
    hello = orjson.loads(await ws.recv())
    assert hello == {
        "type": "subscribed",
        "job_uuid": job_id,
        "message": f"Subscribed to job {job_id}",
    }
    return ws


async def until_finished(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(60):
        while True:
            event = orjson.loads(await ws.recv())
            events.append(event)
            if event["type"] in ("job.completed", "job.failed"):
                return events


def synthetic(seconds: float = 600) -> dict[str, Any]:
    return {
        "kind": "synthetic",
        "resolution": "5s",
        "durationSeconds": seconds,
        "ticksPerSecond": 2,
    }


async def test_a_backtest_job_runs_to_completion_with_its_events() -> None:
    async with running_daemon() as daemon, daemon.client() as client, daemon.client() as observer:
        reply = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": synthetic()}
        )
        assert reply["type"] == "backtest_job"
        job_id = reply["data"]["jobId"]
        assert reply["data"]["status"] in ("pending", "running")
        ws = await job_stream(daemon, job_id)
        await ws.send("anything")
        assert orjson.loads(await ws.recv()) == {"type": "ack", "job_uuid": job_id}
        events = await until_finished(ws)
        await ws.close()
        assert events[-1]["type"] == "job.completed", events
        payload = events[-1]["payload"]
        assert payload["job_id"] == job_id and payload["status"] == "completed"
        assert set(payload["result"]) >= RESULT_FIELDS
        listed = await client.request({"type": "get_backtests"})
        assert [job["status"] for job in listed["data"]] == ["completed"]
        states = [(await observer.recv_type("backtest_job"))["data"] for _ in range(3)]
        assert [state["status"] for state in states] == ["pending", "running", "completed"]
        assert set(states[-1]["result"]) >= RESULT_FIELDS


async def test_a_bad_file_fails_the_job_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("timestamp,open,high,low,close,volume\n")
    config = test_config(jobs={"data_dir": str(tmp_path)})
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": {"kind": "csv", "path": "empty.csv"},
                "symbol": "AAPL",
            }
        )
        ws = await job_stream(daemon, reply["data"]["jobId"])
        events = await until_finished(ws)
        await ws.close()
        assert events[-1]["type"] == "job.failed"
        assert "empty.csv" in events[-1]["payload"]["error"]


async def test_file_backtests_need_a_data_dir_and_unknown_strategies_are_refused() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        error = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": {"kind": "csv", "path": "/etc/passwd"},
            }
        )
        assert error["type"] == "error"
        assert error["data"]["code"] == "invalid_job"
        error = await client.request(
            {"type": "run_backtest", "strategyId": "nope", "source": synthetic()}
        )
        assert error["data"]["code"] == "unknown_strategy"


async def test_a_running_job_can_be_cancelled() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": {**synthetic(86_400 * 30), "ticksPerSecond": 5},
            }
        )
        job_id = reply["data"]["jobId"]
        ws = await job_stream(daemon, job_id)
        while (await client.recv_type("backtest_job", timeout=30))["data"]["status"] != "running":
            pass
        cancelled = await client.request({"type": "cancel_backtest", "jobId": job_id})
        assert cancelled["type"] == "backtest_job"
        events = await until_finished(ws)
        await ws.close()
        assert events[-1]["type"] == "job.failed"
        assert events[-1]["payload"]["error"] == "cancelled by user"


def test_a_synthetic_source_without_fields_takes_the_core_defaults() -> None:
    # The wire once ran one hour where the core and the CLI ran one day.
    assert _source(SyntheticSourceIn(kind="synthetic")) == SyntheticSource()
    given = SyntheticSourceIn(kind="synthetic", durationSeconds=600.0, seed=3)
    assert _source(given) == SyntheticSource(duration_seconds=600.0, seed=3)


async def test_a_synthetic_backtest_of_a_symbol_the_feed_lacks_is_refused_as_live() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        command = {"strategyId": "strategy-123", "source": synthetic(), "symbol": "nope"}
        backtest = await client.request({"type": "run_backtest", **command})
        live = await client.request(
            {"type": "start_strategy", "id": "strategy-123", "config": {"symbols": ["NOPE"]}}
        )
        assert backtest["type"] == live["type"] == "error"
        assert backtest["data"]["code"] == live["data"]["code"] == "invalid_config"
        assert backtest["data"]["message"] == live["data"]["message"]
        assert backtest["data"]["message"].startswith("no market data for NOPE; the feed provides")
        listed = await client.request({"type": "get_backtests"})
        assert listed["data"] == []


async def test_a_file_backtest_trades_the_symbol_its_file_is_named_after(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    closes = [100 + i % 5 for i in range(40)]
    rows += [f"{1_704_067_200 + 60 * i},{c},{c + 1},{c - 1},{c},10" for i, c in enumerate(closes)]
    (tmp_path / "spy.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "my data.csv").write_text("\n".join(rows) + "\n")
    config = test_config(jobs={"data_dir": str(tmp_path)})
    async with running_daemon(config) as daemon, daemon.client() as client:
        named = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": csv("spy.csv")}
        )
        assert named["type"] == "backtest_job", named
        ws = await job_stream(daemon, named["data"]["jobId"])
        events = await until_finished(ws)
        await ws.close()
        assert events[-1]["type"] == "job.completed", events
        unnamed = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": csv("my data.csv")}
        )
        assert unnamed["type"] == "error"
        assert "'my data.csv' is no ticker: name the symbol" in unnamed["data"]["message"]


def csv(path: str) -> dict[str, str]:
    return {"kind": "csv", "path": path}


# ---------------------------------------------------------------- reports and progress


async def test_a_finished_job_has_its_full_report_page_by_page() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        # 5s bars over 6 hours: 4,320 bars, so the report takes three pages
        reply = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": synthetic(21_600)}
        )
        job_id = reply["data"]["jobId"]
        early = await client.request({"type": "get_backtest_report", "jobId": job_id})
        state = await client.recv_type("backtest_job", timeout=60)
        while state["data"]["status"] != "completed":
            state = await client.recv_type("backtest_job", timeout=60)
        result = state["data"]["result"]
        [listed] = (await client.request({"type": "get_backtests"}))["data"]
        equity: list[float] = []
        offset: int | None = 0
        while offset is not None:
            page = await client.request(
                {"type": "get_backtest_report", "jobId": job_id, "offset": offset}
            )
            assert page["type"] == "backtest_report" and page["data"]["jobId"] == job_id
            report = page["data"]["report"]
            assert set(report["series"]) == {"time", "equity", "drawdown_pct", "buy_and_hold"}
            equity += report["series"]["equity"]
            offset = report["next_offset"]
        assert len(equity) == result["bars"] == result["series_points"] == 4_320
        assert equity[-1] == result["final_equity"]
        assert len(result["series"]["equity"]) <= 500
        assert min(result["series"]["equity"]) == min(equity)
        assert max(result["series"]["equity"]) == max(equity)
        assert report["trade_count"] == result["total_trades"] == len(report["trades"])
        assert report["statistics"] == result["statistics"]
        # the listing holds the counts only: a thousand reports would not fit a reply
        assert listed["result"]["total_trades"] == result["total_trades"]
        assert not {"statistics", "trades", "series"} & set(listed["result"])
        unknown = await client.request(
            {"type": "get_backtest_report", "jobId": "00000000-0000-4000-8000-000000000000"}
        )
    assert early["type"] == "error" and early["data"]["code"] == "no_report"
    assert "its report comes when it completes" in early["data"]["message"]
    assert unknown["type"] == "error" and unknown["data"]["code"] == "unknown_job"


async def test_a_failed_job_has_no_report() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": synthetic(30)}
        )
        job_id = reply["data"]["jobId"]
        while (await client.recv_type("backtest_job", timeout=60))["data"]["status"] != "failed":
            pass
        error = await client.request({"type": "get_backtest_report", "jobId": job_id})
    assert error["data"]["code"] == "no_report"
    assert f"job {job_id} failed" in error["data"]["message"]


async def test_progress_arrives_in_order_up_to_all_bars_before_completion() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": {**synthetic(86_400 * 2), "ticksPerSecond": 1},
            }
        )
        job_id = reply["data"]["jobId"]
        ws = await job_stream(daemon, job_id)
        events = await until_finished(ws)
        await ws.close()
        progress_messages = []
        async with asyncio.timeout(10):
            while True:
                message = await client.recv()
                if message["type"] == "backtest_progress":
                    progress_messages.append(message["data"])
                if message["type"] == "backtest_job" and message["data"]["status"] == "completed":
                    break
    kinds = [event["type"] for event in events]
    assert kinds[-1] == "job.completed"
    progress = [event["payload"] for event in events if event["type"] == "job.progress"]
    assert progress
    assert kinds[-2] == "job.progress"  # the last progress comes before the completion
    fractions = [p["progress"] for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert progress[-1]["bars_done"] == progress[-1]["bars_total"] == 34_560
    assert {p["job_id"] for p in progress} == {job_id}
    assert [p["fraction"] for p in progress_messages] == fractions
    assert progress_messages[-1]["barsDone"] == 34_560


# ---------------------------------------------------------------- the dashboard's backtests


async def completed(client: Any, job_id: str) -> dict[str, Any]:
    """The job's completion broadcast (its whole result)."""
    while True:
        state = (await client.recv_type("backtest_job", timeout=60))["data"]
        if state["jobId"] == job_id and state["status"] in ("completed", "failed"):
            return state


async def test_a_run_takes_its_own_params_and_capital_and_is_described(tmp_path: Path) -> None:
    source = synthetic(21_600)
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": source,
                "params": {"fast": 5, "slow": 30},
                "initialCapital": 25_000,
            }
        )
        job_id = reply["data"]["jobId"]
        state = await completed(client, job_id)
        fetched = await client.request({"type": "get_backtest", "jobId": job_id})
        [listed] = (await client.request({"type": "get_backtests"}))["data"]
        config = daemon.daemon.config
    # What runs is what the core runs with those params and that capital.
    spec = BacktestSpec(
        strategy=default_catalog()[0].model_copy(update={"params": {"fast": 5, "slow": 30}}),
        source=_source(SyntheticSourceIn(kind="synthetic", **without_kind(source))),
        broker=config.broker,
        risk=config.risk,
        runtime=config.runtime,
        initial_capital=25_000,
    )
    expected = run_backtest(spec).to_payload()
    result = state["result"]
    assert result["initial_capital"] == 25_000
    assert (result["total_trades"], result["final_equity"]) == (
        expected["total_trades"],
        expected["final_equity"],
    )
    # get_backtest gives the whole result again, as the completion told it.
    assert fetched["type"] == "backtest_job" and fetched["data"]["result"] == result
    described = {
        "strategyId": "strategy-123",
        "strategyName": "Moving Average Crossover",
        "symbol": "AAPL",
        "source": {"kind": "synthetic", "resolution": "5s", "durationSeconds": 21_600.0, "seed": 7},
        "params": {"fast": 5, "slow": 30},
        "initialCapital": 25_000.0,
    }
    for shown in (reply["data"], fetched["data"], listed):
        assert shown.items() >= described.items(), shown
        assert shown["createdAt"].endswith("Z")
    assert listed["finishedAt"] is not None and "statistics" not in listed["result"]


def without_kind(source: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in source.items() if name != "kind"}


async def test_bad_params_and_capital_are_refused_with_the_daemon_s_reason() -> None:
    base = {"type": "run_backtest", "strategyId": "strategy-123", "source": synthetic()}
    async with running_daemon() as daemon, daemon.client() as client:
        crossed = await client.request({**base, "params": {"fast": 30}})
        unknown = await client.request({**base, "params": {"fastest": 3}})
        out_of_bounds = await client.request({**base, "params": {"slow": 0}})
        capital = await client.request({**base, "initialCapital": -5})
        listed = await client.request({"type": "get_backtests"})
    assert crossed["data"]["code"] == "invalid_config"
    assert crossed["data"]["message"] == (
        "invalid params for strategy-123: params: fast (30) must be less than slow (8)"
    )
    assert unknown["data"]["code"] == "invalid_config"
    assert "params.fastest: Extra inputs are not permitted" in unknown["data"]["message"]
    assert (
        "params.slow: Input should be greater than or equal to 2 (got 0)"
        in (out_of_bounds["data"]["message"])
    )
    assert capital["data"]["code"] == "invalid_message"
    assert capital["data"]["message"] == (
        "invalid run_backtest: initialCapital: Input should be greater than 0 (got -5.0)"
    )
    assert listed["data"] == []


async def test_a_file_job_is_described_by_the_path_the_client_named(tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [
        f"{1_704_067_200 + 60 * i},{100 + i % 5},{101 + i % 5},{99 + i % 5},{100 + i % 5},1"
        for i in range(40)
    ]
    (tmp_path / "spy.csv").write_text("\n".join(rows) + "\n")
    config = test_config(jobs={"data_dir": str(tmp_path)})
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": csv("spy.csv")}
        )
        await completed(client, reply["data"]["jobId"])
        [listed] = (await client.request({"type": "get_backtests"}))["data"]
    assert listed["source"] == {"kind": "csv", "path": "spy.csv"}
    assert listed["symbol"] == "SPY" and listed["initialCapital"] is None


# ---------------------------------------------------------------- several symbols


async def test_a_backtest_of_several_symbols_on_one_account_over_the_wire() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        command = {
            "type": "run_backtest",
            "strategyId": "strategy-123",
            "source": synthetic(3_600),
            "symbols": ["aapl", "MSFT"],
            "initialCapital": 25_000,
        }
        reply = await client.request(command)
        assert reply["type"] == "backtest_job", reply
        job_id = reply["data"]["jobId"]
        ws = await job_stream(daemon, job_id)
        events = await until_finished(ws)
        await ws.close()
        assert events[-1]["type"] == "job.completed", events
        result = events[-1]["payload"]["result"]
        page = await client.request({"type": "get_backtest_report", "jobId": job_id})
    assert set(result) >= RESULT_FIELDS | {"per_symbol", "open_trades", "cash_limited"}
    assert result["symbols"] == ["AAPL", "MSFT"] and result["initial_capital"] == 25_000
    per_symbol = result["per_symbol"]
    assert [part["symbol"] for part in per_symbol] == ["AAPL", "MSFT"]
    assert sum(part["total_trades"] for part in per_symbol) == result["total_trades"] > 0
    assert sum(part["bars"] for part in per_symbol) == result["bars"] == 2 * 720
    assert result["series_points"] == 720  # the account: one point per 5-second moment
    pnl = sum(part["final_equity"] - 25_000 for part in per_symbol)
    assert result["final_equity"] == pytest.approx(25_000 + pnl, rel=1e-9)
    assert {trade["symbol"] for trade in result["trades"]} == {"AAPL", "MSFT"}
    report = page["data"]["report"]
    assert [part["symbol"] for part in report["per_symbol"]] == ["AAPL", "MSFT"]
    assert report["trade_count"] == result["total_trades"]


async def test_files_per_symbol_stay_inside_the_data_dir_and_name_their_symbols(
    tmp_path: Path,
) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    closes = [100 + i % 5 for i in range(40)]
    rows += [f"{1_704_067_200 + 60 * i},{c},{c + 1},{c - 1},{c},10" for i, c in enumerate(closes)]
    for name in ("aapl.csv", "msft.csv"):
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    config = test_config(jobs={"data_dir": str(tmp_path)})
    files = {"kind": "files", "paths": {"AAPL": "aapl.csv", "MSFT": "msft.csv"}}
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": files}
        )
        assert reply["type"] == "backtest_job", reply
        # What the job runs names its symbols whichever field of the command gave them.
        assert (reply["data"]["symbol"], reply["data"]["symbols"]) == ("AAPL", ["AAPL", "MSFT"])
        ws = await job_stream(daemon, reply["data"]["jobId"])
        events = await until_finished(ws)
        await ws.close()
        listed = await client.request({"type": "get_backtests"})
        outside = {"kind": "files", "paths": {"AAPL": "aapl.csv", "MSFT": "../msft.csv"}}
        escaped = await client.request(
            {"type": "run_backtest", "strategyId": "strategy-123", "source": outside}
        )
        both = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": files,
                "symbols": ["AAPL", "GOOG"],
            }
        )
        unknown = await client.request(
            {
                "type": "run_backtest",
                "strategyId": "strategy-123",
                "source": synthetic(),
                "symbols": ["AAPL", "NOPE"],
            }
        )
    assert events[-1]["type"] == "job.completed", events
    assert events[-1]["payload"]["result"]["symbols"] == ["AAPL", "MSFT"]
    assert [job["symbols"] for job in listed["data"]] == [["AAPL", "MSFT"]]
    assert escaped["type"] == "error" and escaped["data"]["code"] == "invalid_job"
    assert "outside the data directory" in escaped["data"]["message"]
    assert both["type"] == "error" and "names its symbols" in both["data"]["message"]
    assert unknown["type"] == "error" and "no market data for NOPE" in unknown["data"]["message"]
