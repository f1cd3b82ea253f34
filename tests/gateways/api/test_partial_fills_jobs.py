"""run_backtest's partialFills and maxVolumeFraction over 8082 (a real daemon, a real
client): the job runs what the core runs with them, says so, and a bad fraction is
refused with the daemon's reason."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backtest.engine import BacktestSpec, FileSource, run_backtest
from orchestrator.strategy.config import default_catalog
from tests.gateways.api.test_jobs import completed, csv
from tests.support import running_daemon, test_config


def thin_history(path: Path) -> Path:
    """Bars of 3 units each: the crossover's orders are larger, so they fill in parts."""
    rows = ["timestamp,open,high,low,close,volume"]
    closes = [100 + (i % 20 if i % 40 < 20 else 20 - i % 20) for i in range(200)]
    rows += [f"{1_704_067_200 + 60 * i},{c},{c + 1},{c - 1},{c},3" for i, c in enumerate(closes)]
    path.write_text("\n".join(rows) + "\n")
    return path


async def test_a_backtest_fills_in_parts_bounded_by_its_bars_volume(tmp_path: Path) -> None:
    thin_history(tmp_path / "spy.csv")
    config = test_config(jobs={"data_dir": str(tmp_path)})
    base = {"type": "run_backtest", "strategyId": "strategy-123", "source": csv("spy.csv")}
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request({**base, "partialFills": True, "maxVolumeFraction": 0.5})
        assert reply["type"] == "backtest_job", reply
        state = await completed(client, reply["data"]["jobId"])
        whole = await client.request(base)
        whole_state = await completed(client, whole["data"]["jobId"])
        without = await client.request({**base, "maxVolumeFraction": 0.5})
        too_much = await client.request({**base, "partialFills": True, "maxVolumeFraction": 2})
        broker = daemon.daemon.config.broker
    assert state["status"] == "completed", state
    assert (reply["data"]["partialFills"], reply["data"]["maxVolumeFraction"]) == (True, 0.5)
    assert whole["data"]["partialFills"] is False
    spec = BacktestSpec(
        strategy=default_catalog()[0],
        source=FileSource(kind="csv", path=tmp_path / "spy.csv"),
        broker=broker,
        partial_fills=True,
        max_volume_fraction=0.5,
    )
    expected = run_backtest(spec).to_payload()
    result, whole_result = state["result"], whole_state["result"]
    assert (result["fills"], result["total_trades"], result["final_equity"]) == (
        expected["fills"],
        expected["total_trades"],
        expected["final_equity"],
    )
    # 1.5 units a bar: every order of the crossover fills in several parts.
    assert result["fills"] > 2 * whole_result["fills"] > 0
    assert without["data"]["code"] == "invalid_message"
    assert (
        "maxVolumeFraction bounds partial fills: set partialFills too"
        in (without["data"]["message"])
    )
    assert too_much["data"]["code"] == "invalid_message"
    assert (
        "maxVolumeFraction: Input should be less than or equal to 1"
        in (too_much["data"]["message"])
    )
