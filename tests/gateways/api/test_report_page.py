"""The HTML report of a backtest: served on 8082, saved by `orchestrator backtest
--report`, and a file that opens in Chromium with every chart and table and makes
no request at all."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateways.client.backtest_text import STATISTICS_ROWS
from gateways.client.commands import EXIT_OK, EXIT_USAGE, main_async
from tests.gateways.test_dashboard import CHROMIUM, DESKTOP, PHONE, TIMEOUT_MS, chromium_page
from tests.support import running_daemon, test_config

BACKTEST = ("backtest", "strategy-123", "--duration", "21600", "--resolution", "1m")
TOKEN = "report-test-token-5c8e1a7f3b9d"


def http_status(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as refusal:
        return refusal.code, bytes(refusal.read())


async def saved_report(
    tmp_path: Path, backtest: tuple[str, ...] = BACKTEST, **config: Any
) -> tuple[Path, str]:
    """Run a backtest through the CLI with --report; the file and the daemon's URL."""
    target = tmp_path / "report.html"
    with structlog.testing.capture_logs():
        async with running_daemon(test_config(**config)) as daemon:
            argv = [*backtest, "--url", daemon.url(), "--report", str(target)]
            if "security" in config:
                argv += ["--token", TOKEN]
            assert await main_async(argv) == EXIT_OK
            url = daemon.url().replace("ws://", "http://").rstrip("/")
    return target, url


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_the_saved_report_opens_offline_with_its_charts_and_tables(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    target, _ = await saved_report(tmp_path)
    requests: list[str] = []
    async with chromium_page(tmp_path / "profile", viewport) as page:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(target.as_uri())
        await page.wait_for_selector("body[data-ready=true]")
        for chart in ("price-chart", "equity-chart", "drawdown-chart"):
            canvases = page.get_by_test_id(chart).locator("canvas")
            assert await canvases.count() > 0, chart
        rows = page.get_by_test_id("statistics").locator("tr")
        assert await rows.count() == len(STATISTICS_ROWS)
        trades = await page.get_by_test_id("trades").locator("tbody tr").count()
        assert trades > 3
        await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert requests == [target.as_uri()]  # the file itself, and nothing else


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_a_report_of_several_symbols_shows_each_symbol_and_the_account(
    tmp_path: Path,
) -> None:
    target, _ = await saved_report(tmp_path, (*BACKTEST, "--symbols", "AAPL,MSFT"))
    requests: list[str] = []
    async with chromium_page(tmp_path / "profile", DESKTOP) as page:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(target.as_uri())
        await page.wait_for_selector("body[data-ready=true]")
        prices = page.get_by_test_id("price-chart")
        assert await prices.count() == 2
        for number in range(2):
            assert await prices.nth(number).locator("canvas").count() > 0
        assert await page.locator("h3").all_inner_texts() == ["AAPL", "MSFT"]
        per_symbol = page.get_by_test_id("per-symbol").locator("tbody tr")
        assert [text.split()[0] for text in await per_symbol.all_inner_texts()] == ["AAPL", "MSFT"]
        symbols = page.get_by_test_id("trades").locator("tbody tr td:nth-child(2)")
        assert set(await symbols.all_inner_texts()) == {"AAPL", "MSFT"}
        await page.screenshot(path=str(tmp_path / "report-symbols.png"), full_page=True)
    assert requests == [target.as_uri()]


def test_the_cli_will_not_overwrite_a_report_without_force(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("mine")
    argv = [*BACKTEST, "--url", "ws://127.0.0.1:9/", "--report", str(target)]
    assert asyncio.run(main_async(argv)) == EXIT_USAGE
    assert target.read_text() == "mine"


async def test_a_report_needs_a_token_and_a_kept_job(tmp_path: Path) -> None:
    security = {"tokens": [TOKEN]}
    target, _ = await saved_report(tmp_path, security=security)
    assert target.read_text().startswith("<!doctype html>")
    async with running_daemon(test_config(security=security)) as daemon:
        base = daemon.url().replace("ws://", "http://").rstrip("/")
        unknown = f"{base}/api/backtests/{uuid.uuid4()}/report.html"
        # The server runs on this loop: the blocking client goes to a thread.
        status, _ = await asyncio.to_thread(http_status, unknown)
        assert status == 401
        status, body = await asyncio.to_thread(http_status, unknown, TOKEN)
        assert status == 404 and b"no job" in body.lower()
        bad = f"{base}/api/backtests/not-a-uuid/report.html"
        status, _ = await asyncio.to_thread(http_status, bad, TOKEN)
        assert status == 400
