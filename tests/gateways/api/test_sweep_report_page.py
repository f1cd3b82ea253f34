"""The HTML report of a sweep: served on 8082, saved by `orchestrator sweep --report`,
and a file that opens in Chromium with its heatmaps and table and makes no request."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from gateways.api.sweep_report_page import heat_cells, heatmap_pairs, ranked
from gateways.client.backtest_text import STATISTICS_ROWS
from gateways.client.commands import EXIT_OK, EXIT_USAGE, main_async
from tests.gateways.api.test_report_page import http_status
from tests.gateways.test_dashboard import CHROMIUM, PHONE, TIMEOUT_MS, chromium_page
from tests.orchestrator.sweep.conftest import write_goog
from tests.support import running_daemon, test_config

# 3 x 3 x 2 = 18 trials over GOOG's daily bars; fast 20 and 30 with slow 20 fail the params
# model (fast < slow), with either allow_short: 4 failed trials, 2 failed heatmap cells.
SWEEP = (
    "sweep",
    "strategy-123",
    "--file",
    "GOOG.csv",
    "--symbol",
    "GOOG",
    "-p",
    "fast=10:30:10",
    "-p",
    "slow=20:60:20",
    "-p",
    "allow_short=true,false",
    "--objective",
    "return",
)


def trial(number: int, params: dict[str, Any], value: float | None, **row: Any) -> dict[str, Any]:
    state = "failed" if row.get("error") else "complete"
    feasible = state == "complete" and not row.get("violations") and value is not None
    return (
        {"number": number, "params": params, "value": value, "state": state}
        | {
            "feasible": feasible,
            "violations": [],
            "error": None,
        }
        | row
    )


def test_a_heatmap_cell_is_the_best_over_the_others_or_says_why_it_has_none() -> None:
    trials = [
        trial(0, {"a": 1, "b": 1, "c": 0}, 2.0),
        trial(1, {"a": 1, "b": 1, "c": 1}, 5.0),
        trial(2, {"a": 2, "b": 1, "c": 0}, 1.0, violations=["3 trades, fewer than 5"]),
        trial(3, {"a": 2, "b": 1, "c": 1}, None, error="bad params"),
        trial(4, {"a": 1, "b": 2, "c": 0}, None, error="bad params"),
    ]
    cells = heat_cells(trials, "a", "b", minimize=False)
    assert (cells[(1, 1)].value, cells[(1, 1)].state, cells[(1, 1)].tried) == (5.0, "value", 2)
    assert heat_cells(trials, "a", "b", minimize=True)[(1, 1)].value == 2.0
    assert cells[(2, 1)].state == "infeasible" and cells[(2, 1)].why == [
        "3 trades, fewer than 5",
        "bad params",
    ]
    assert cells[(1, 2)].state == "failed" and (2, 2) not in cells
    assert [t["number"] for t in ranked(trials, minimize=False)] == [1, 0, 2, 3, 4]
    result = {"heatmap": {"x": "b", "y": "c"}}
    assert heatmap_pairs(result, ["a", "b", "c"]) == [("b", "c"), ("a", "b"), ("a", "c")]


async def saved_sweep_report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A sweep through the CLI with --report; the file and the sweep's whole result."""
    write_goog(tmp_path)
    target = tmp_path / "sweep.html"
    config = test_config(jobs={"data_dir": str(tmp_path)}, sweeps={"workers": 1})
    with structlog.testing.capture_logs():
        async with running_daemon(config) as daemon:
            argv = [*SWEEP, "--url", daemon.url(), "--report", str(target)]
            assert await main_async(argv) == EXIT_OK
            [info] = daemon.daemon.sweeps.list()
            base = daemon.url().replace("ws://", "http://").rstrip("/")
            # The server runs on this loop: the blocking client goes to a thread.
            status, body = await asyncio.to_thread(
                http_status, f"{base}/api/sweeps/{info.job_id}/report.html"
            )
            assert status == 200 and body == target.read_bytes()
            status, body = await asyncio.to_thread(
                http_status, f"{base}/api/sweeps/{uuid.uuid4()}/report.html"
            )
            assert status == 404 and b"no sweep" in body
            status, _ = await asyncio.to_thread(http_status, f"{base}/api/sweeps/x/report.html")
            assert status == 400
            # The CLI will not overwrite the file without --force.
            assert await main_async([*argv]) == EXIT_USAGE
    assert info.result is not None
    return target, orjson.loads(orjson.dumps(info.result))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_the_saved_sweep_report_opens_offline_with_its_heatmaps_and_trials(
    tmp_path: Path,
) -> None:
    target, result = await saved_sweep_report(tmp_path)
    assert result["trials_total"] == 18 and result["trials_failed"] == 4
    requests: list[str] = []
    async with chromium_page(tmp_path / "profile", PHONE) as page:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(target.as_uri())
        heatmaps = page.get_by_test_id("heatmap")
        assert await heatmaps.count() == 3  # each pair of the three parameters
        first = heatmaps.first
        assert await first.get_attribute("data-axes") == "fast,slow"  # the result's own
        assert await first.locator("td").count() == 9
        assert await first.locator("td[data-state=failed]").count() == 2
        # Each valued cell is the daemon's heatmap value (the best over allow_short).
        heat = result["heatmap"]
        for y_index, y in enumerate(heat["y_values"]):
            for x_index, x in enumerate(heat["x_values"]):
                value = heat["values"][y_index][x_index]
                cell = first.locator(f"td[title^='fast {x}, slow {y}:']")
                title = await cell.get_attribute("title") or ""
                if value is None:
                    assert "failed" in title, title
                else:
                    assert title.endswith(f"return_pct {value:,.3f} (best of 2 trials)"), title
        rows = page.get_by_test_id("trials").locator("tbody tr")
        assert await rows.count() == 18
        best = result["best"]
        assert (await rows.first.locator("td").first.inner_text()) == str(best["number"])
        start = ", ".join(
            f"{k}={orjson.dumps(v).decode()}" for k, v in best["strategy_params"].items()
        )
        assert await page.get_by_test_id("start-params").inner_text() == start
        statistics = page.get_by_test_id("best-statistics").locator("tr")
        assert await statistics.count() == len(STATISTICS_ROWS)
        await page.screenshot(path=str(tmp_path / "sweep-report.png"), full_page=True)
    assert requests == [target.as_uri()]  # the file itself, and nothing else
