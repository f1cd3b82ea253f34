"""run_sweep over 8082: a real daemon, a real websockets client, an embedded cluster
of one worker; the job stream's events; bad input answered, the connection kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from tests.orchestrator.sweep.conftest import write_goog
from tests.support import running_daemon, test_config

SWEEP_TIMEOUT = 180.0


async def test_run_sweep_over_the_orchestrator_server(tmp_path: Path) -> None:
    write_goog(tmp_path)
    config = test_config(jobs={"data_dir": str(tmp_path)}, sweeps={"workers": 1})
    command = {
        "type": "run_sweep",
        "strategyId": "strategy-123",
        "source": {"kind": "file", "path": "GOOG.csv"},
        "config": {"symbols": ["GOOG"], "dataResolution": "1d", "maxPositionValue": 10000},
        "parameters": {"fast": {"low": 4, "high": 12, "step": 4}, "slow": {"choices": [20, 40]}},
        "objective": {"metric": "return", "minTrades": 1},
    }
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request(command)
        assert reply["type"] == "sweep_job" and reply["data"]["jobType"] == "sweep"
        # What it searches, so that a listing reads on its own.
        described = {key: reply["data"][key] for key in ("strategyId", "symbol", "source")}
        assert described == {
            "strategyId": "strategy-123",
            "symbol": "GOOG",
            "source": {"kind": "file", "path": "GOOG.csv"},
        }
        assert reply["data"]["parameters"] == command["parameters"]
        assert reply["data"]["objective"]["metric"] == "return_pct"
        job_id = reply["data"]["jobId"]
        async with connect(daemon.url(path=f"/api/ws/jobs/{job_id}")) as stream:
            assert orjson.loads(await stream.recv())["type"] == "subscribed"
            events = await _until_finished(stream)
        assert events[-1]["type"] == "job.completed", events[-1]
        progress = [e["payload"] for e in events if e["type"] == "job.progress"]
        assert progress[-1]["trials_done"] == progress[-1]["trials_total"] == 6
        assert progress[-1]["job_type"] == "sweep" and progress[-1]["best_params"] is not None
        result = events[-1]["payload"]["result"]
        assert len(result["trials"]) == 6 and result["best"]["strategy_params"]["fast"] in (
            4,
            8,
            12,
        )
        fetched = await client.request({"type": "get_sweep", "jobId": job_id})
        assert fetched["data"]["result"] == result
        listed = await client.request({"type": "get_sweeps"})
        assert [s["jobId"] for s in listed["data"]] == [job_id]
        assert listed["data"][0]["method"] == "grid" and listed["data"][0]["finishedAt"]
        assert "trials" not in listed["data"][0]["result"]


async def test_a_bad_sweep_gets_an_error_and_the_connection_stays(tmp_path: Path) -> None:
    config = test_config(sweeps={"workers": 1})
    base: dict[str, Any] = {
        "type": "run_sweep",
        "strategyId": "strategy-123",
        "source": {"kind": "synthetic", "resolution": "1m", "durationSeconds": 3600},
        "symbol": "AAPL",
    }
    async with running_daemon(config) as daemon, daemon.client() as client:
        unknown = await client.request({**base, "parameters": {"fsat": {"low": 1, "high": 3}}})
        assert unknown["type"] == "error" and unknown["data"]["code"] == "invalid_job"
        assert "no parameter 'fsat'" in unknown["data"]["message"]
        random = await client.request(
            {**base, "parameters": {"fast": {"low": 1, "high": 3}}, "method": "random"}
        )
        assert random["type"] == "error" and "needs trials" in random["data"]["message"]
        several = {key: value for key, value in base.items() if key != "symbol"}
        walk = await client.request(
            {
                **several,
                "symbols": ["AAPL", "MSFT"],
                "parameters": {"fast": {"low": 1, "high": 3}},
                "walkForward": {"windows": 2},
            }
        )
        assert (
            walk["type"] == "error"
            and "walk-forward runs over one symbol" in (walk["data"]["message"])
        )
        missing = await client.request({"type": "cancel_sweep", "jobId": "nope"})
        assert missing["data"]["code"] == "unknown_job"
        assert (await client.request({"type": "get_sweeps"}))["data"] == []


async def _until_finished(stream: Any) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(SWEEP_TIMEOUT):
        while True:
            event = orjson.loads(await stream.recv())
            events.append(event)
            if event["type"] in ("job.completed", "job.failed"):
                return events
