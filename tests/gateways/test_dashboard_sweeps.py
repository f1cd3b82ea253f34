"""The sweeps of the dashboard's Backtests view in a real browser against a real daemon.

Headless Chromium (Debian's, through Playwright, as tests/gateways/test_dashboard.py)
loads the page the daemon serves; the daemon runs its sweeps on an embedded Dask cluster
of one worker. A range the daemon refuses shows its words; a 3 x 3 grid of the SMA
crossover's periods runs from the form through the progress bar to its trials table and
heatmap (the points where fast is not below slow fail, and are marked so); its best
trial starts live after a confirmation and runs with those params; a sweep is cancelled
while it runs; and on a phone the list of sweeps comes back when the daemon does. Waits
are on the page's state, never on time. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import re
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.gateways.test_daemon_process import SERVERS, free_ports
from tests.gateways.test_dashboard import (
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    chromium_page,
    dashboard_config,
    expect,
    outside_the_daemon,
    ready_daemon,
)
from tests.support import report

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"
)

SWEEP_TIMEOUT_MS = 180_000
"""A sweep with the embedded cluster's start on a loaded machine: a bound on a hang."""
PAGE_WIDTH = "() => document.documentElement.scrollWidth"
SMA = "strategy-123"  # the catalog's sma_crossover, fast 3 and slow 8
FAILED_POINTS = 3
"""Of fast 2, 4, 6 x slow 4, 6, 8: (4, 4), (6, 4), (6, 6) fail the params model (fast < slow)."""
MIN_TRADES = "250"
"""Over 2 days of AAPL's seeded 1-minute bars the three slow-8 points trade fewer: infeasible."""
INFEASIBLE_POINTS = 3

# Every text the progress line shows, recorded as the page writes it.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const text = document.getElementById("sw-progress-text");
  new MutationObserver(() => window.__progress.push(text.textContent))
    .observe(text, {childList: true, characterData: true, subtree: true});
}"""


def sweep_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    config = dashboard_config(tmp_path, ports)
    text = config.read_text() + "[sweeps]\nworkers = 1\n"
    config.write_text(text, encoding="utf-8")
    return config


async def open_view(page: Any, ports: dict[str, int]) -> None:
    await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=500#backtests")
    await expect(page.get_by_test_id("backtests-view")).to_be_visible()
    await expect(page.get_by_test_id("sw-run")).to_be_enabled()


async def fill_grid(page: Any, fast: tuple[int, int, int], slow: tuple[int, int, int]) -> None:
    for name, (low, high, step) in (("fast", fast), ("slow", slow)):
        await page.get_by_test_id(f"sw-low-{name}").fill(str(low))
        await page.get_by_test_id(f"sw-high-{name}").fill(str(high))
        await page.get_by_test_id(f"sw-step-{name}").fill(str(step))


async def fill_source(page: Any, days: str, resolution: str = "1m") -> None:
    await page.get_by_test_id("sw-days").fill(days)
    await page.get_by_test_id("sw-resolution").select_option(resolution)


async def whole_sweep(page: Any, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(
        "(id) => window.orchestratorService.getSweep(id)", job_id
    )
    return found


async def test_a_sweep_runs_from_the_form_to_its_heatmap_and_its_best_starts_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = sweep_config(tmp_path, ports)
    page_errors: list[str] = []
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", DESKTOP))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        strays = outside_the_daemon(page, ports)
        page.set_default_timeout(TIMEOUT_MS)
        await open_view(page, ports)
        assert await page.get_by_test_id("sw-strategy").input_value() == SMA
        # Pre-filled around the catalog's values (fast 3, slow 8), within the model's bounds.
        await expect(page.get_by_test_id("sw-low-fast")).to_have_value("2")
        await expect(page.get_by_test_id("sw-high-slow")).to_have_value("16")
        await expect(page.get_by_test_id("sw-vary-fast")).to_be_checked()
        await expect(page.get_by_test_id("sw-vary-slow")).to_be_checked()
        await expect(page.get_by_test_id("sw-empty")).to_be_visible()
        error = page.get_by_test_id("sw-error")
        sweep = page.get_by_test_id("sw-job")
        run = page.get_by_test_id("sw-run")

        # A range beyond the params model's bounds: the daemon says so, in its words.
        await fill_source(page, "2")
        await fill_grid(page, (0, 6, 2), (4, 8, 2))
        await run.click()
        await expect(error).to_have_text(
            "the daemon refused: invalid sweep: fast must be >= 1; the range reaches 0"
        )
        await expect(page.get_by_test_id("sw-row")).to_have_count(0)

        # A 3 x 3 grid: progress, then the table and the heatmap. (A Sharpe ratio needs
        # daily returns: over two days the return is the objective.)
        await fill_grid(page, (2, 6, 2), (4, 8, 2))
        await page.get_by_test_id("sw-metric").select_option("return_pct")
        await page.get_by_test_id("sw-min-trades").fill(MIN_TRADES)
        await expect(page.get_by_test_id("sw-size")).to_have_text("9 trials")
        await page.evaluate(RECORD_PROGRESS)
        await run.click()
        await expect(error).to_be_hidden()
        await expect(sweep).to_have_attribute("data-status", "completed", timeout=SWEEP_TIMEOUT_MS)
        job_id = await sweep.get_attribute("data-job-id")
        assert job_id
        shown = await page.evaluate("() => window.__progress")
        assert any(re.match(r"^\d / 9 trials", text) for text in shown), shown
        result = (await whole_sweep(page, job_id))["result"]
        best = result["best"]
        assert result["trials_total"] == 9 and result["trials_failed"] == FAILED_POINTS
        await expect(page.get_by_test_id("sw-job-title")).to_have_text(
            "Moving Average Crossover on AAPL · synthetic, 2 days of 1m bars, seed 7"
            " · grid search · maximize Return"
        )
        rows = page.get_by_test_id("sw-trial-row")
        await expect(rows).to_have_count(9)
        # Best first by default: the objective's direction.
        await expect(rows.first.get_by_test_id("sw-trial-value")).to_have_text(
            f"{best['value']:.3f}"
        )
        cells = page.get_by_test_id("sw-cell")
        await expect(cells).to_have_count(9)
        failed = page.locator("[data-testid=sw-cell][data-state=failed]")
        await expect(failed).to_have_count(FAILED_POINTS)
        await expect(failed.first).to_have_attribute(
            "title", re.compile(r"failed \(1 trial: .*slow")
        )
        infeasible = page.locator("[data-testid=sw-cell][data-state=infeasible]")
        await expect(infeasible).to_have_count(INFEASIBLE_POINTS)
        await expect(infeasible.first).to_have_attribute("title", re.compile("slow 8: infeasible"))
        # Each valued cell's title is the daemon's heatmap value at that point.
        heat = result["heatmap"]
        for y_index, y in enumerate(heat["y_values"]):
            for x_index, x in enumerate(heat["x_values"]):
                value = heat["values"][y_index][x_index]
                if value is None:
                    continue
                shown_cell = page.locator(f"[data-testid=sw-cell][title^='fast {x}, slow {y}:']")
                await expect(shown_cell).to_have_attribute(
                    "title", re.compile(rf": Return {value:,.3f} \(best of 1 trial\)$")
                )
        await expect(page.get_by_test_id("sw-heat-x")).to_be_hidden()  # two parameters only

        # The table sorts by the objective, the other way on a second click.
        await page.get_by_test_id("sw-sort-value").click()
        feasible = [t["value"] for t in result["trials"] if t["feasible"]]
        await expect(rows.first.get_by_test_id("sw-trial-value")).to_have_text(
            f"{min(feasible):.3f}"
        )
        # The trials without a feasible value stay last, whichever the direction.
        await expect(rows.last).to_have_attribute("data-state", re.compile("^(infeasible|failed)$"))
        await expect(rows.nth(len(feasible))).not_to_have_attribute("data-state", "feasible")
        await page.screenshot(path=str(tmp_path / "sweep-result.png"), full_page=True)

        # The HTML report the link opens: the heatmap, from the daemon only.
        async with page.context.expect_page() as opened:
            await page.get_by_test_id("sw-report").click()
        report_page = await opened.value
        strays += outside_the_daemon(report_page, ports)
        await expect(report_page.get_by_test_id("heatmap").locator("td")).to_have_count(9)
        await report_page.close()

        # The best trial's params go live after a confirmation.
        await page.get_by_test_id("sw-start-live").click()
        dialog = page.get_by_test_id("confirm")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("Start Moving Average Crossover live with")
        await page.get_by_test_id("confirm-ok").click()
        outcome = page.get_by_test_id("sw-start-result")
        await expect(outcome).to_have_attribute("data-outcome", "started")
        strategies = await page.evaluate("() => window.orchestratorService.getStrategies()")
        [entry] = [s for s in strategies if s["id"] == SMA]
        assert entry["status"] == "ACTIVE" and entry["params"] == best["strategy_params"]
        # Started again while it runs: the daemon's refusal is reported.
        await page.get_by_test_id("sw-start-live").click()
        await page.get_by_test_id("confirm-ok").click()
        await expect(outcome).to_have_attribute("data-outcome", "refused")

        # A longer sweep, cancelled while it runs.
        await fill_source(page, "1", "1s")
        await fill_grid(page, (2, 6, 1), (10, 30, 5))
        await run.click()
        await expect(sweep).to_have_attribute("data-status", "running", timeout=SWEEP_TIMEOUT_MS)
        await page.get_by_test_id("sw-cancel").click()
        await expect(sweep).to_have_attribute("data-status", "failed", timeout=SWEEP_TIMEOUT_MS)
        await expect(page.get_by_test_id("sw-job-error")).to_have_text("failed: cancelled by user")

        # After a reload the daemon's sweeps are listed; an earlier one shows its result.
        await page.reload()
        listed = page.get_by_test_id("sw-row")
        await expect(listed).to_have_count(2)
        await expect(listed.nth(1)).to_have_attribute("data-job-id", job_id)
        await listed.nth(1).click()
        await expect(sweep).to_have_attribute("data-status", "completed")
        await expect(cells).to_have_count(9)
        await page.screenshot(path=str(tmp_path / "sweep-list.png"), full_page=True)
    assert page_errors == []
    assert strays == []
    report(
        capsys,
        "dashboard sweeps",
        trials=result["trials_total"],
        best=best["params"],
        screenshot=tmp_path / "sweep-result.png",
    )


async def test_on_a_phone_a_sweep_fits_and_its_list_comes_back_with_the_daemon(
    tmp_path: Path,
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = sweep_config(tmp_path, ports)
    width = PHONE["width"]
    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", PHONE))
        page.set_default_timeout(TIMEOUT_MS)
        strays = outside_the_daemon(page, ports)
        await open_view(page, ports)
        assert await page.evaluate(PAGE_WIDTH) == width
        await fill_source(page, "1")
        await fill_grid(page, (2, 3, 1), (6, 8, 2))
        await page.get_by_test_id("sw-run").click()
        sweep = page.get_by_test_id("sw-job")
        await expect(sweep).to_have_attribute("data-status", "completed", timeout=SWEEP_TIMEOUT_MS)
        await expect(page.get_by_test_id("sw-cell")).to_have_count(4)
        await expect(page.get_by_test_id("sw-trial-row")).to_have_count(4)
        # The tables scroll inside their cards: the page never scrolls sideways.
        assert await page.evaluate(PAGE_WIDTH) == width
        await page.screenshot(path=str(tmp_path / "sweep-phone.png"), full_page=True)
        job_id = await sweep.get_attribute("data-job-id")
        sweeps = page.get_by_test_id("sw-list")
        loads = int(await sweeps.get_attribute("data-loads") or "0")

        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()
        await expect(page.get_by_test_id("backtests-view")).to_have_attribute("data-stale", "true")
        await expect(page.get_by_test_id("sw-run")).to_be_disabled()
        await expect(page.get_by_test_id("sw-row")).to_have_count(1)  # what it last said
        async with ready_daemon(config):
            # Back: the list is asked for again, and the daemon kept the sweep's files.
            await expect(sweeps).to_have_attribute("data-loads", str(loads + 1))
            await expect(page.get_by_test_id("sw-run")).to_be_enabled()
            await expect(page.get_by_test_id("sw-row")).to_have_count(1)
            await page.reload()
            row = page.get_by_test_id("sw-row")
            await expect(row).to_have_attribute("data-job-id", job_id or "")
            await expect(sweep).to_have_attribute("data-status", "completed")
            await expect(page.get_by_test_id("sw-cell")).to_have_count(4)
        assert await page.evaluate(PAGE_WIDTH) == width
    assert strays == []
