"""The dashboard's Backtests view in a real browser against a real daemon.

Headless Chromium (Debian's, through Playwright, as tests/gateways/test_dashboard.py)
loads the page the daemon serves and uses the view as a person would: a strategy's
params refused by the page's bounds and by the daemon, a run whose progress bar moves
and that is cancelled, a run to its statistics, curves and trades, the jobs listed again
after a reload, and a daemon that goes away and comes back. Waits are on the page's
state (attributes and texts), never on time. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import math
import re
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from gateways.client.backtest_text import STATISTICS_ROWS, symbol_rows
from tests.gateways.test_daemon_process import SERVERS, free_ports
from tests.gateways.test_dashboard import (
    DESKTOP,
    NARROW_PHONE,
    PHONE,
    TIMEOUT_MS,
    chromium_page,
    dashboard_config,
    expect,
    outside_the_daemon,
    poll,
    ready_daemon,
)
from tests.support import report

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"
)

JOB_TIMEOUT_MS = 90_000
"""A whole backtest on a loaded machine: a bound on a hang, not a speed."""
PARTIAL = re.compile(r"^0\.\d*[1-9]\d*$")
"""A progress strictly between 0 and 1, as the page's progress bar holds it."""

EQUITY_INK = """() => {
  let equity = 0;
  for (const canvas of document.querySelectorAll("[data-testid=bt-equity-chart] canvas")) {
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4) {
      const near = Math.abs(pixels[i] - 210) + Math.abs(pixels[i + 1] - 153) +
        Math.abs(pixels[i + 2] - 34) < 40;
      if (near && pixels[i + 3] > 128) equity += 1;
    }
  }
  return equity;
}"""

PAGE_WIDTH = "() => document.documentElement.scrollWidth"


def backtest_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    config = dashboard_config(tmp_path, ports)
    data = tmp_path / "data"
    data.mkdir()
    text = config.read_text() + f'[jobs]\ndata_dir = "{data}"\n'
    config.write_text(text, encoding="utf-8")
    return config


async def open_view(page: Any, ports: dict[str, int]) -> None:
    await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=500#backtests")
    await expect(page.get_by_test_id("backtests-view")).to_be_visible()
    await expect(page.get_by_test_id("tab-backtests")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_test_id("bt-run")).to_be_enabled()


async def fill(page: Any, **fields: str) -> None:
    for test_id, value in fields.items():
        await page.get_by_test_id(test_id.replace("_", "-")).fill(value)


async def test_a_backtest_runs_from_the_page_to_its_statistics_chart_and_trades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = backtest_config(tmp_path, ports)
    page_errors: list[str] = []
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", DESKTOP))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        strays = outside_the_daemon(page, ports)
        page.set_default_timeout(TIMEOUT_MS)
        await open_view(page, ports)
        assert await page.get_by_test_id("bt-strategy").input_value() == "strategy-123"
        await expect(page.get_by_test_id("bt-param-fast")).to_have_value("3")
        await expect(page.get_by_test_id("bt-jobs-empty")).to_be_visible()
        error = page.get_by_test_id("bt-error")
        job = page.get_by_test_id("bt-job")
        run = page.get_by_test_id("bt-run")

        # The page checks the params' bounds (the strategy's model's); the daemon the rest.
        await fill(page, bt_param_fast="0")
        await run.click()
        await expect(error).to_have_text("fast: at least 1")
        await fill(page, bt_param_fast="30")
        await run.click()
        await expect(error).to_have_text(
            "the daemon refused: invalid params for strategy-123: "
            "params: fast (30) must be less than slow (8)"
        )
        await page.screenshot(path=str(tmp_path / "backtest-refused.png"))
        await expect(page.get_by_test_id("bt-job-row")).to_have_count(0)

        # A long run: its progress bar moves, and it is cancelled while it runs.
        await fill(page, bt_param_fast="3", bt_days="5")
        await page.get_by_test_id("bt-resolution").select_option("1s")
        await run.click()
        await expect(error).to_be_hidden()
        await expect(job).to_have_attribute("data-status", "running", timeout=JOB_TIMEOUT_MS)
        progress = page.get_by_test_id("bt-progress")
        await expect(progress).to_have_attribute("data-fraction", PARTIAL, timeout=JOB_TIMEOUT_MS)
        await expect(page.get_by_test_id("bt-progress-text")).to_contain_text(" / 432,000 bars")
        await page.screenshot(path=str(tmp_path / "backtest-progress.png"))
        await page.get_by_test_id("bt-cancel").click()
        await expect(job).to_have_attribute("data-status", "failed", timeout=JOB_TIMEOUT_MS)
        await expect(page.get_by_test_id("bt-job-error")).to_have_text("failed: cancelled by user")

        # A run to completion with its own params and capital.
        await fill(page, bt_days="1", bt_param_fast="5", bt_param_slow="30", bt_capital="25000")
        await run.click()
        await expect(job).to_have_attribute("data-status", "completed", timeout=JOB_TIMEOUT_MS)
        job_id = await job.get_attribute("data-job-id")
        await expect(page.get_by_test_id("bt-job-title")).to_have_text(
            "Moving Average Crossover on AAPL · synthetic, 1 day of 1s bars, seed 7"
            " · fast 5, slow 30"
        )
        statistics = page.get_by_test_id("bt-statistics").locator("tr")
        await expect(statistics).to_have_count(len(STATISTICS_ROWS))
        await expect(page.get_by_test_id("bt-equity-chart")).not_to_have_attribute(
            "data-points", "0"
        )
        ink = await poll(page, EQUITY_INK, lambda found: found > 100)
        whole = await page.evaluate(f"() => window.orchestratorService.getBacktest('{job_id}')")
        result = whole["result"]
        assert result["initial_capital"] == 25_000
        trades = page.get_by_test_id("bt-trades").locator("tbody tr")
        shown_trades = min(len(result["trades"]), 200) + (result["open_trade"] is not None)
        await expect(trades).to_have_count(shown_trades)
        figures = page.get_by_test_id("bt-statistics")
        trade_count = figures.locator("[data-key=trade_count] td")
        await expect(trade_count).to_have_text(f"{result['statistics']['trade_count']:,}")
        await expect(figures.locator("[data-key=equity_final] td")).to_have_text(
            f"{result['statistics']['equity_final']:,.2f}"
        )
        await expect(page.get_by_test_id("bt-per-symbol-box")).to_be_hidden()
        await expect(page.get_by_test_id("bt-trade-symbol")).to_be_hidden()
        await page.screenshot(path=str(tmp_path / "backtest-result.png"), full_page=True)

        # The HTML report the link opens: drawn, from the daemon only.
        async with page.context.expect_page() as opened:
            await page.get_by_test_id("bt-report").click()
        report_page = await opened.value
        strays += outside_the_daemon(report_page, ports)
        await expect(report_page.locator("body")).to_have_attribute("data-ready", "true")
        await report_page.close()

        # After a reload the daemon's jobs are listed again; the one shown stays shown.
        await page.reload()
        rows = page.get_by_test_id("bt-job-row")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-job-id", job_id or "")
        await expect(rows.nth(1)).to_have_attribute("data-status", "failed")
        await expect(job).to_have_attribute("data-status", "completed")
        await rows.nth(1).click()
        await expect(job).to_have_attribute("data-status", "failed")
        await expect(page.get_by_test_id("bt-results")).to_be_hidden()
        await rows.first.click()
        await expect(trade_count).to_have_text(f"{result['statistics']['trade_count']:,}")
        await expect(trades).to_have_count(shown_trades)

        # A file the data directory does not hold: the job fails saying so.
        await page.get_by_test_id("bt-source-file").check()
        await fill(page, bt_path="NOPE.csv")
        await run.click()
        await expect(job).to_have_attribute("data-status", "failed", timeout=JOB_TIMEOUT_MS)
        await expect(page.get_by_test_id("bt-job-error")).to_contain_text("NOPE.csv")
        await page.screenshot(path=str(tmp_path / "backtest-jobs.png"), full_page=True)
    assert page_errors == []
    assert strays == []
    report(
        capsys,
        "dashboard backtests",
        trades=result["statistics"]["trade_count"],
        equity_px=ink,
        screenshot=tmp_path / "backtest-result.png",
    )


def write_minute_bars(path: Path, scale: float) -> Path:
    """300 minute bars of a wave, so that a 3/8 crossover trades both ways."""
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(300):
        close = scale * (100 + 5 * math.sin(i / 6) + (i % 7) * 0.3)
        rows.append(f"{1_704_067_200 + 60 * i},{close},{close * 1.002},{close * 0.998},{close},50")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def test_a_job_of_several_symbols_names_them_and_shows_each_symbols_figures_and_trades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = backtest_config(tmp_path, ports)
    write_minute_bars(tmp_path / "data" / "aaa.csv", 1.0)
    write_minute_bars(tmp_path / "data" / "bbb.csv", 2.0)
    files = {"kind": "files", "paths": {"AAA": "aaa.csv", "BBB": "bbb.csv"}}
    synthetic = {"kind": "synthetic", "resolution": "5s", "durationSeconds": 3600}
    page_errors: list[str] = []
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", DESKTOP))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        strays = outside_the_daemon(page, ports)
        page.set_default_timeout(TIMEOUT_MS)
        await open_view(page, ports)
        run = (
            "([source, options]) =>"
            " window.orchestratorService.runBacktest('strategy-123', source, options)"
        )
        on_files = await page.evaluate(run, [files, {"initialCapital": 20_000}])
        on_feed = await page.evaluate(run, [synthetic, {"symbols": ["AAPL", "MSFT"]}])
        rows = page.get_by_test_id("bt-job-row")
        for job in (on_files, on_feed):
            row = page.locator(f"[data-testid=bt-job-row][data-job-id='{job['jobId']}']")
            await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_TIMEOUT_MS)
        await expect(rows.first).to_contain_text("Moving Average Crossover · AAPL, MSFT")
        await expect(rows.first).to_contain_text("synthetic, 1 h of 5s bars, seed 7")
        await expect(rows.nth(1)).to_contain_text("Moving Average Crossover · AAA, BBB")
        await expect(rows.nth(1)).to_contain_text("aaa.csv, bbb.csv")

        await rows.nth(1).click()
        await expect(page.get_by_test_id("bt-job-title")).to_have_text(
            "Moving Average Crossover on AAA, BBB · aaa.csv, bbb.csv · fast 3, slow 8"
        )
        whole = await page.evaluate(
            f"() => window.orchestratorService.getBacktest('{on_files['jobId']}')"
        )
        result = whole["result"]
        per_symbol = page.get_by_test_id("bt-per-symbol").locator("tbody tr")
        await expect(per_symbol).to_have_count(2)
        # Each symbol's figures as the CLI prints them.
        for index, cells in enumerate(symbol_rows(result["per_symbol"])):
            await expect(per_symbol.nth(index).locator("td")).to_have_text(list(cells))
        parts_trades = sum(part["total_trades"] for part in result["per_symbol"])
        assert parts_trades == result["total_trades"] > 0
        await expect(page.get_by_test_id("bt-trade-symbol")).to_be_visible()
        trades = page.get_by_test_id("bt-trades").locator("tbody tr")
        await expect(trades).to_have_count(len(result["trades"]) + len(result["open_trades"]))
        symbols = await trades.evaluate_all("rows => rows.map(row => row.cells[1].textContent)")
        assert set(symbols) == {"AAA", "BBB"}
        assert symbols[: len(result["trades"])] == [trade["symbol"] for trade in result["trades"]]
        await page.screenshot(path=str(tmp_path / "backtest-symbols.png"), full_page=True)

        await page.set_viewport_size(PHONE)
        await expect(per_symbol).to_have_count(2)
        # The tables scroll inside their cards, and a huge figure (the CAGR of five hours)
        # wraps in its cell: the page is no wider than the phone.
        await poll(page, PAGE_WIDTH, lambda width: width == PHONE["width"])
        await page.screenshot(path=str(tmp_path / "backtest-symbols-phone.png"), full_page=True)
    assert page_errors == []
    assert strays == []
    report(
        capsys,
        "dashboard backtests, several symbols",
        trades=result["total_trades"],
        screenshot=tmp_path / "backtest-symbols.png",
    )


@pytest.mark.parametrize("viewport", [PHONE, NARROW_PHONE], ids=["390px", "360px"])
async def test_on_a_phone_the_view_fits_and_a_dead_daemon_disables_run(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = backtest_config(tmp_path, ports)
    width = viewport["width"]
    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", viewport))
        page.set_default_timeout(TIMEOUT_MS)
        strays = outside_the_daemon(page, ports)
        await open_view(page, ports)
        assert await page.evaluate(PAGE_WIDTH) == width
        await fill(page, bt_days="0.25")
        await page.get_by_test_id("bt-run").click()
        job = page.get_by_test_id("bt-job")
        await expect(job).to_have_attribute("data-status", "completed", timeout=JOB_TIMEOUT_MS)
        await expect(page.get_by_test_id("bt-statistics").locator("tr")).to_have_count(
            len(STATISTICS_ROWS)
        )
        await expect(page.get_by_test_id("bt-equity-chart")).not_to_have_attribute(
            "data-points", "0"
        )
        await poll(page, EQUITY_INK, lambda found: found > 50)
        # The trades table scrolls inside its card: the page never scrolls sideways.
        assert await page.evaluate(PAGE_WIDTH) == width
        await page.screenshot(path=str(tmp_path / "backtest-phone.png"), full_page=True)

        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()
        view = page.get_by_test_id("backtests-view")
        await expect(view).to_have_attribute("data-stale", "true")
        await expect(page.get_by_test_id("bt-stale")).to_be_visible()
        await expect(page.get_by_test_id("bt-run")).to_be_disabled()
        await expect(page.get_by_test_id("bt-job-row")).to_have_count(1)
        await page.screenshot(path=str(tmp_path / "backtest-phone-down.png"), full_page=True)
        async with ready_daemon(config):
            await expect(view).to_have_attribute("data-stale", "false")
            await expect(page.get_by_test_id("bt-run")).to_be_enabled()
            # A new daemon knows no earlier job: the list is the daemon's.
            await expect(page.get_by_test_id("bt-job-row")).to_have_count(0)
            await expect(page.get_by_test_id("bt-jobs-empty")).to_be_visible()
        assert await page.evaluate(PAGE_WIDTH) == width
    assert strays == []
