"""The dashboard in a real browser against a real daemon.

Headless Chromium from Debian's packages (``/usr/bin/chromium``), driven by
Playwright with that executable (no browser download), loads the page the
daemon serves on its orchestrator port and uses it as a person would: start,
pause and stop a strategy, watch its signals, trades and chart, press the kill
switch, and see the connection indicator through a daemon restart. The page
runs under its real Content-Security-Policy, so waits use Playwright's
locators (no string evaluation).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from orchestrator.model.events import Topic
from tests.gateways.test_daemon_process import (
    SERVERS,
    Process,
    daemon_process,
    free_ports,
    write_config,
)
from tests.support import recovered_journal, report, running_daemon, test_config
from tests.test_crash_recovery import FEED_AND_STRATEGIES, spawned
from tests.test_snapshot_commit import start_strategies

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)",
)

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
# Every wait a generous deadline: a loaded 2-core machine is slow, never wrong.
expect.set_options(timeout=TIMEOUT_MS)


def dashboard_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    text = "".join(f"[servers.{name}]\nport = {port}\n" for name, port in ports.items())
    text += '[logging]\nformat = "json"\n'
    text += f'[journal]\nstate_dir = "{tmp_path / "state"}"\nsynchronous = "NORMAL"\n'
    text += "[nng]\nenabled = false\n"
    path = tmp_path / "orchestrator.toml"
    path.write_text(text, encoding="utf-8")
    return path


THOUSANDTHS = "[market_data]\ndefault_price_increment = 0.001\n"

DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
NARROW_PHONE = {"width": 360, "height": 740}


@asynccontextmanager
async def chromium_page(profile: Path, viewport: dict[str, int] = DESKTOP) -> AsyncIterator[Any]:
    """A page in Debian's Chromium with a new, empty profile."""
    async with playwright_api.async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport=viewport,
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


@asynccontextmanager
async def ready_daemon(config: Path) -> AsyncIterator[Process]:
    async with daemon_process(config) as process:
        await process.wait_for_log("daemon_ready")
        yield process


async def poll(page: Any, script: str, done: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Evaluate ``script`` until ``done`` holds for its value (at most ``timeout`` s)."""
    async with asyncio.timeout(timeout):
        while not done(value := await page.evaluate(script)):  # noqa: ASYNC110 - in the browser
            await asyncio.sleep(0.1)
    return value


RECORD_SEQS = """() => {
  window.__seqs = [];
  window.__resumed = [];
  window.orchestratorService.getMessages("orchestrator").subscribe((m) => {
    if (typeof m.seq === "number" && !m.snapshot) window.__seqs.push([m.epoch, m.seq]);
    if (m.type === "resumed") window.__resumed.push(m.data);
  });
}"""

CHART_INK = """() => {
  let candles = 0;
  for (const canvas of document.querySelectorAll("[data-testid=chart] canvas")) {
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4) {
      const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
      const near = (red, green, blue) =>
        pixels[i + 3] > 128 && Math.abs(r - red) + Math.abs(g - green) + Math.abs(b - blue) < 40;
      if (near(63, 185, 80) || near(248, 81, 73)) candles += 1;
    }
  }
  return {candles};
}"""


def outside_the_daemon(page: Any, ports: dict[str, int]) -> list[str]:
    """Every request and WebSocket the page makes that is not to the daemon's ports."""
    allowed = {f"127.0.0.1:{port}" for port in ports.values()}
    strays: list[str] = []

    def check(url: str) -> None:
        if urlsplit(url).netloc not in allowed:
            strays.append(url)

    page.on("request", lambda request: check(request.url))
    page.on("websocket", lambda ws: check(ws.url))
    return strays


GROUPED_EXPOSURE = re.compile(r"^\d{1,3}(,\d{3})*\.\d\d / 100,000$")

UNKNOWN_START = """async () => {
  try {
    await window.orchestratorService.startStrategy("no-such-strategy");
    return null;
  } catch (error) {
    return {name: error.name, code: error.code, requestType: error.requestType};
  }
}"""


async def test_the_dashboard_drives_a_real_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = dashboard_config(tmp_path, ports)
    # Prices on a 0.001 grid: the page shows them to three decimals (get_instruments).
    config.write_text(config.read_text() + THOUSANDTHS, encoding="utf-8")
    page_errors: list[str] = []
    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile"))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        strays = outside_the_daemon(page, ports)
        page.set_default_timeout(TIMEOUT_MS)
        # A short backoff cap so the page finds the restarted daemon quickly.
        await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=500")

        # The page loads and shows the catalog, connected, execution running.
        connection = page.get_by_test_id("connection")
        await expect(connection).to_have_attribute("data-state", "connected")
        rows = page.get_by_test_id("strategy-row")
        await expect(rows).to_have_count(3)
        await expect(page.get_by_test_id("execution-status")).to_have_text("RUNNING")
        assert await page.evaluate("() => window.orchestratorService.isConnected()") is True
        refused = await page.evaluate(UNKNOWN_START)
        assert refused == {
            "name": "ServiceError",
            "code": "unknown_strategy",
            "requestType": "start_strategy",
        }
        await page.evaluate(RECORD_SEQS)

        # Start from the page: ACTIVE, then its signals and trades, and a chart.
        # The start dialog checks the bounds start_strategy applies before sending.
        row = page.locator("[data-strategy-id='strategy-123']")
        await row.locator("[data-action=start]").click()
        dialog = page.get_by_test_id("start-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.get_by_test_id("start-symbol-AAPL")).to_be_checked()
        await page.get_by_test_id("start-stop-loss").fill("150")
        await page.get_by_test_id("start-ok").click()
        await expect(page.get_by_test_id("start-error")).to_have_text(
            "Stop-loss, % of entry (0: none): less than 100.0"
        )
        await page.screenshot(path=str(tmp_path / "start-dialog.png"))
        await expect(row).to_have_attribute("data-status", "STOPPED")
        await page.get_by_test_id("start-stop-loss").fill("3")
        await page.get_by_test_id("start-max-orders").fill("40")
        await page.get_by_test_id("start-ok").click()
        await expect(dialog).to_be_hidden()
        await expect(row).to_have_attribute("data-status", "ACTIVE")
        limits = await page.evaluate(
            "async () => (await window.orchestratorService.getRiskStatus()).strategies[0].limits"
        )
        assert (limits["stopLossPercentage"], limits["maxOrdersPerMinute"]) == (0.03, 40)
        await expect(row.get_by_test_id("strategy-status")).to_have_text("ACTIVE")
        await expect(page.get_by_test_id("signal-count")).not_to_have_text("0")
        await expect(page.get_by_test_id("trade-count")).not_to_have_text("0")
        feed = page.get_by_test_id("feed")
        await expect(feed.locator("li[data-kind=signal]").first).to_contain_text("strategy-123")
        filled = feed.locator("li[data-kind=trade]").first
        await expect(filled).to_contain_text(
            re.compile(r"FILLED (BUY|SELL) \S+ [A-Z]+ @ [\d,]+\.\d{3}\b")
        )
        await expect(page.locator("#last-price")).to_have_text(re.compile(r"^[\d,]+\.\d{3}$"))
        traded = re.search(r"FILLED (?:BUY|SELL) \S+ ([A-Z]+)", await filled.inner_text())
        assert traded is not None
        # Candles: the history (get_bars) at once, then live bars with the fills marked.
        await page.get_by_test_id("chart-symbol").select_option(traded.group(1))
        await page.get_by_test_id("chart-resolution").select_option("1s")
        chart = page.get_by_test_id("chart")
        await expect(chart).to_have_attribute("data-resolution", "1s")
        await expect(chart).to_have_attribute("data-bars", re.compile(r"^\d{2,}$"))
        await expect(chart).not_to_have_attribute("data-markers", "0")
        ink = await poll(page, CHART_INK, lambda found: found["candles"] > 100)
        trade_rows = page.get_by_test_id("trades").locator("tbody tr")
        await expect(trade_rows.first).to_contain_text("strategy-123")
        await expect(row.get_by_test_id("strategy-positions")).not_to_have_text("—")
        await expect(row.get_by_test_id("strategy-pnl-since-start")).to_have_text(
            re.compile(r"^[+-]?\d")
        )
        # Numbers grouped as the CLI groups them.
        await expect(page.locator("#gross-exposure")).to_have_text(GROUPED_EXPOSURE)
        await expect(page.locator("#daily-pnl")).to_contain_text("(loss limit 5,000)")
        await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # The connection drops mid-stream: it resumes, nothing missing or twice.
        before = len(await page.evaluate("() => window.__seqs"))
        await page.evaluate(
            "() => window.orchestratorService._connections.orchestrator.ws.close(4000, 'test')"
        )
        await expect(connection).to_have_attribute("data-state", "connected")
        resumed = await poll(page, "() => window.__resumed", lambda found: len(found) == 1)
        recorded = await poll(page, "() => window.__seqs", lambda found: len(found) > before)
        seqs = [seq for _, seq in recorded]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs

        # The kill switch halts execution and resumes it.
        # It asks first, with the reduce-only / block-all choice; Cancel changes nothing.
        kill = page.get_by_test_id("kill-switch")
        confirm = page.get_by_test_id("confirm")
        await kill.click()
        await expect(confirm).to_be_visible()
        await expect(page.get_by_test_id("halt-reduce-only")).to_be_checked()
        await page.screenshot(path=str(tmp_path / "kill-switch-confirm.png"))
        await page.get_by_test_id("confirm-cancel").click()
        await expect(confirm).to_be_hidden()
        await expect(page.get_by_test_id("kill-switch-state")).to_have_text("released")
        await kill.click()
        await page.get_by_test_id("halt-block-all").check()
        await page.get_by_test_id("confirm-ok").click()
        await expect(page.get_by_test_id("execution-status")).to_have_text("STOPPED")
        await expect(kill).to_have_text("Resume trading")
        await expect(page.get_by_test_id("kill-switch-state")).to_contain_text(
            "engaged (COMMAND, blocks all)"
        )
        await kill.click()
        await expect(page.get_by_test_id("execution-status")).to_have_text("RUNNING")
        await expect(kill).to_have_text("Kill switch")
        await expect(page.get_by_test_id("kill-switch-state")).to_have_text("released")

        # Pause, then stop, from the page.
        await row.locator("[data-action=pause]").click()
        await expect(row).to_have_attribute("data-status", "PAUSED")
        await expect(row.locator("[data-action=start]")).to_have_text("Resume")
        # Stop closes positions at market: it asks first.
        await row.locator("[data-action=stop]").click()
        await expect(confirm).to_contain_text("closes its open positions at market")
        await page.get_by_test_id("confirm-cancel").click()
        await expect(row).to_have_attribute("data-status", "PAUSED")
        await row.locator("[data-action=stop]").click()
        await page.get_by_test_id("confirm-ok").click()
        await expect(row).to_have_attribute("data-status", "STOPPED")
        await expect(row.get_by_test_id("strategy-status")).to_have_text("STOPPED")
        await expect(row.get_by_test_id("strategy-positions")).to_have_text("—")

        # The daemon dies: the indicator shows reconnection; it comes back on the same ports.
        epoch = await page.evaluate(
            "() => window.orchestratorService.connectionStatus().servers.orchestrator.epoch"
        )
        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()
        await expect(connection).to_have_attribute("data-state", "reconnecting")
        await expect(connection).to_contain_text("Reconnecting")
        # People's names for the servers, not the API's (marketData).
        await expect(feed).to_contain_text("lost the market data connection; reconnecting")
        await expect(connection).to_have_attribute("title", re.compile("^strategy orchestrator: "))
        assert "marketData" not in (await feed.inner_text())
        assert "marketData" not in (await connection.get_attribute("title") or "")
        assert await page.evaluate("() => window.orchestratorService.isConnected()") is False
        await expect(row.locator("[data-action=start]")).to_be_disabled()
        await expect(page.get_by_test_id("execution-status")).to_have_text("UNKNOWN")
        await expect(row).to_have_attribute("data-stale", "true")
        async with ready_daemon(config):
            await expect(connection).to_have_attribute("data-state", "connected")
            await expect(page.get_by_test_id("execution-status")).to_have_text("RUNNING")
            await expect(row).to_have_attribute("data-stale", "false")
            await expect(rows).to_have_count(3)
            await expect(row).to_have_attribute("data-status", "STOPPED")
            await expect(row.locator("[data-action=start]")).to_be_enabled()
            # Not a fresh snapshot but a resume: the journal has what the page missed.
            restarted = await poll(page, "() => window.__resumed", lambda found: len(found) == 2)
            assert "journalReplayed" in restarted[1]
            assert "fresh snapshot" not in await feed.inner_text()
            status = await page.evaluate("() => window.orchestratorService.connectionStatus()")
            assert status["servers"]["orchestrator"]["epoch"] != epoch
            assert {s["state"] for s in status["servers"].values()} == {"connected"}
            # The recent trades asked again on reconnection are the ones shown: none twice.
            shown = await trade_rows.evaluate_all("(rows) => rows.map((r) => r.dataset.id)")
            assert shown and len(set(shown)) == len(shown)
            # A page opened now shows them from the journal, with the chart's history.
            fresh = await page.context.new_page()
            fresh.on("pageerror", lambda error: page_errors.append(str(error)))
            strays += outside_the_daemon(fresh, ports)
            await fresh.goto(f"http://127.0.0.1:{ports['orchestrator']}/?resolution=1s")
            fresh_rows = fresh.get_by_test_id("trades").locator("tbody tr")
            await expect(fresh_rows).to_have_count(len(shown))
            assert await fresh_rows.evaluate_all("(rows) => rows.map((r) => r.dataset.id)") == shown
            await expect(fresh.get_by_test_id("chart")).to_have_attribute(
                "data-bars", re.compile(r"^\d{2,}$")
            )
            await fresh.screenshot(path=str(tmp_path / "after-restart.png"), full_page=True)
        signals = await page.get_by_test_id("signal-count").inner_text()
        trades = await page.get_by_test_id("trade-count").inner_text()
    assert page_errors == []
    assert strays == []
    report(
        capsys,
        "dashboard",
        signals=signals,
        trades=trades,
        seqs_across_reconnect=len(seqs),
        replayed=resumed[0]["replayed"],
        candle_px=ink["candles"],
        screenshot=tmp_path / "dashboard.png",
    )


async def test_the_dashboard_asks_for_a_token_and_sends_it_first(tmp_path: Path) -> None:
    token = "dashboard-test-token-7f3a9c"
    config = test_config(security={"tokens": [token]})
    async with (
        running_daemon(config) as daemon,
        chromium_page(tmp_path / "profile") as page,
    ):
        page.set_default_timeout(TIMEOUT_MS)
        base = f"http://127.0.0.1:{daemon.daemon.servers['orchestrator'].port}/"
        connection = page.get_by_test_id("connection")
        form = page.get_by_test_id("token-form")
        await page.goto(base)
        await expect(form).to_be_visible()
        await page.get_by_test_id("token-input").fill("not-the-token")
        await form.locator("button").click()
        await expect(connection).to_have_attribute("data-state", "closed")
        await expect(connection).to_contain_text("Token refused")
        await expect(form).to_contain_text("refused the token")
        await page.get_by_test_id("token-input").fill(token)
        await form.locator("button").click()
        await expect(connection).to_have_attribute("data-state", "connected")
        await expect(page.get_by_test_id("strategy-row")).to_have_count(3)
        await expect(form).to_be_hidden()

        # A link with the token in its fragment: used, then taken out of the address bar.
        linked = await page.context.new_page()
        await linked.goto(f"{base}#token={token}")
        await expect(linked.get_by_test_id("connection")).to_have_attribute(
            "data-state", "connected"
        )
        await expect(linked.get_by_test_id("strategy-row")).to_have_count(3)
        assert token not in linked.url


IN_VIEW = """() => ["kill-switch", "header-pnl"].map((id) => {
  const box = document.getElementById(id).getBoundingClientRect();
  const [height, width] = [window.innerHeight, window.innerWidth];
  return box.top >= 0 && box.bottom <= height && box.left >= 0 && box.right <= width;
})"""

OFF_SCREEN = """(width) => {
  const outside = (element) => {
    const box = element.getBoundingClientRect();
    return box.left < 0 || box.right > width;
  };
  const selector = "#kill-switch, [data-testid=strategy-row] button";
  const controls = [...document.querySelectorAll(selector)];
  return {
    pageWidth: document.documentElement.scrollWidth,
    controls: controls.length,
    offScreen: controls.filter(outside).map((element) => element.id || element.textContent.trim()),
  };
}"""


# What the page shows from a server that is away: each must look stale (greyed), not live.
LAST_KNOWN = [
    "[data-strategy-id='strategy-123'] [data-testid=strategy-positions]",
    "[data-strategy-id='strategy-123'] [data-testid=strategy-pnl-today]",
    "[data-strategy-id='strategy-123'] [data-testid=strategy-pnl-since-start]",
    "[data-strategy-id='strategy-123'] [data-testid=strategy-pnl-unrealized]",
    "#header-pnl",
    "#account-equity",
    "#account-realized-since-start",
    "#last-price",
    "#chart",
    "#feed",
    "#trade-rows",
    "#closed-rows",
    "#gross-exposure",
]

# Whether each element looks live: fully opaque, not grey, in a colour of its own
# (a greyed one is dimmed, desaturated or in the muted text colour).
LOOKS_LIVE = """(selectors) => {
  const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted").trim();
  const probe = document.createElement("span");
  probe.style.color = muted;
  document.body.append(probe);
  const mutedColor = getComputedStyle(probe).color;
  probe.remove();
  return Object.fromEntries(selectors.map((selector) => {
    const style = getComputedStyle(document.querySelector(selector));
    const live = Number(style.opacity) === 1 && !style.filter.includes("grayscale")
      && style.color !== mutedColor;
    return [selector, live];
  }));
}"""

LIVE_NOW = f"() => ({LOOKS_LIVE})({json.dumps(LAST_KNOWN)})"


async def assert_last_known_look(page: Any, *, live: bool) -> None:
    """Every element of LAST_KNOWN looks live (or every one stale), once the page caught up."""
    with contextlib.suppress(TimeoutError):
        await poll(page, LIVE_NOW, lambda seen: set(seen.values()) == {live})
    assert await page.evaluate(LIVE_NOW) == dict.fromkeys(LAST_KNOWN, live)


@pytest.mark.parametrize("viewport", [PHONE, NARROW_PHONE], ids=["390px", "360px"])
async def test_on_a_phone_every_control_is_on_screen_and_a_dead_daemon_is_not_shown_live(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = dashboard_config(tmp_path, ports)
    width = viewport["width"]
    async with AsyncExitStack() as stack:
        daemon = await stack.enter_async_context(ready_daemon(config))
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile", viewport))
        page.set_default_timeout(TIMEOUT_MS)
        strays = outside_the_daemon(page, ports)
        await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=500")
        await expect(page.get_by_test_id("strategy-row")).to_have_count(3)
        execution = page.get_by_test_id("execution-status")
        await expect(execution).to_have_text("RUNNING")
        await expect(page.get_by_test_id("header-pnl")).to_have_text(re.compile(r"^[+-]?\d"))
        await expect(page.get_by_test_id("chart")).not_to_have_attribute("data-bars", "0")
        layout = await page.evaluate(OFF_SCREEN, width)
        await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert layout == {"pageWidth": width, "controls": 10, "offScreen": []}, layout
        # Scrolled to the bottom, the kill switch and the P&L are still in view.
        await page.get_by_test_id("risk-events").scroll_into_view_if_needed()
        assert await page.evaluate("() => window.scrollY") > 0
        assert await page.evaluate(IN_VIEW) == [True, True]
        await page.screenshot(path=str(tmp_path / "phone-scrolled.png"))

        row = page.locator("[data-strategy-id='strategy-123']")
        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.proc.wait()
        await expect(execution).to_have_text("UNKNOWN")
        await expect(execution).not_to_have_attribute("data-status", "RUNNING")
        # Every figure the page last heard is greyed, none still looks live.
        await assert_last_known_look(page, live=False)
        await expect(row).to_have_attribute("data-stale", "true")
        await expect(row.get_by_test_id("strategy-status")).to_have_attribute(
            "title", re.compile("last known")
        )
        feed = page.get_by_test_id("feed")
        await expect(feed).to_contain_text("lost the market data connection")
        assert "marketData" not in await feed.inner_text()
        last_update = page.get_by_test_id("last-update")
        await expect(last_update).to_have_text(re.compile(r"^last update [1-9]\d* s ago$"))
        await expect(page.get_by_test_id("kill-switch")).to_be_disabled()
        await expect(row.locator("button")).to_have_count(3)
        for button in await row.locator("button").all():
            await expect(button).to_be_disabled()
        await page.screenshot(path=str(tmp_path / "phone-down.png"), full_page=True)
        async with ready_daemon(config):
            await expect(execution).to_have_text("RUNNING")
            await expect(row).to_have_attribute("data-stale", "false")
            await expect(last_update).to_be_hidden()
            await expect(page.get_by_test_id("kill-switch")).to_be_enabled()
            await assert_last_known_look(page, live=True)
            layout = await page.evaluate(OFF_SCREEN, width)
            assert layout["offScreen"] == [] and layout["pageWidth"] == width, layout
    assert strays == []


REPEATER = """
[risk]
halted_at_start = true

[[strategies]]
id = "repeater"
name = "Repeater"
kind = "tests.scripted_strategies:AlternateBuys"
[strategies.defaults]
symbols = ["AAPL"]
data_resolution = "1s"
"""
# The runtime holds back a refused order asked again as it is (docs/risk.md), so the
# same refusal reaches the views again only once something changed: here the other
# of the strategy's two orders was refused in between.


REPEATED_3_TIMES = re.compile(r"^([3-9]|\d\d+)$")
TIMES_N = re.compile("^\u00d7\\d+$")  # the multiplication sign, then the count


async def test_a_refusal_repeated_bar_after_bar_is_one_line_that_counts(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = dashboard_config(tmp_path, ports)
    config.write_text(config.read_text() + REPEATER, encoding="utf-8")
    async with ready_daemon(config), chromium_page(tmp_path / "profile") as page:
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/")
        row = page.locator("[data-strategy-id='repeater']")
        await row.locator("[data-action=start]").click()
        await page.get_by_test_id("start-ok").click()
        for list_id, kind in (("feed", "rejected"), ("risk-events", "order_rejected")):
            refusals = page.get_by_test_id(list_id).locator(f"li[data-kind={kind}]")
            await expect(refusals.first).to_have_attribute("data-repeat", REPEATED_3_TIMES)
            await expect(refusals).to_have_count(2)  # BUY 10 and BUY 11, each counted
            await expect(refusals.first.locator(".repeat")).to_have_text(TIMES_N)


RECORD_TRADES = """() => {
  window.__trades = [];
  window.__resumes = [];
  const service = window.orchestratorService;
  service.getStrategyTrades().subscribe((trade) => window.__trades.push(trade.id));
  service.getMessages("orchestrator").subscribe((m) => {
    if (m.type === "resumed") window.__resumes.push(m.data);
  });
}"""

STREAM_STATE = """() => ({
  trades: window.__trades,
  resumes: window.__resumes,
  position: window.orchestratorService.connectionStatus().servers.orchestrator.position,
})"""


async def test_after_kill_9_the_feed_gets_the_trades_made_while_the_page_was_away(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page stays open while the daemon trades fast and is killed twice with
    SIGKILL and started again: its service is told every journaled trade once, in
    order (those of the downtime from the journal), and its feed counts each once."""
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(FEED_AND_STRATEGIES)
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    page_errors: list[str] = []
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(spawned(config))
        await first.wait_ready()
        page = await stack.enter_async_context(chromium_page(tmp_path / "profile"))
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        strays = outside_the_daemon(page, ports)
        await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=300")
        connection = page.get_by_test_id("connection")
        await expect(connection).to_have_attribute("data-state", "connected")
        await page.evaluate(RECORD_TRADES)
        await start_strategies(url)  # after the page opened: every trade reaches it live
        await expect(page.get_by_test_id("trade-count")).not_to_have_text("0")
        run = first
        for _ in range(2):
            await asyncio.sleep(0.5)  # trades flow
            await run.kill()
            await expect(connection).to_have_attribute("data-state", "reconnecting")
            run = await stack.enter_async_context(spawned(config))
            await run.wait_ready()
            await expect(connection).to_have_attribute("data-state", "connected")
        await asyncio.sleep(0.5)
        await run.kill()  # the journal as it stands now: what the page must have seen
        seen = await page.evaluate(STREAM_STATE)
        shown = int(await page.get_by_test_id("trade-count").inner_text())
        await page.screenshot(path=str(tmp_path / "after-kills.png"), full_page=True)
    with recovered_journal(tmp_path / "state" / "journal.sqlite3") as journal:
        fills = journal.stream(0, seen["position"], [Topic.STRATEGY_TRADE], 10**6)
        every_fill = len(journal.fills())
    journaled = [trade.fill.id for _, trade in fills]
    assert seen["trades"] == journaled  # once each, in order, the downtime's included
    # The feed counts each trade once: all those, and at most the few the journal had
    # committed past the stream's position when the page asked for recent activity.
    assert len(journaled) <= shown <= every_fill
    assert len(seen["resumes"]) >= 2
    from_journal = sum(r.get("journalReplayed", 0) for r in seen["resumes"])
    assert from_journal > 0
    assert page_errors == []
    assert strays == []
    report(
        capsys,
        "dashboard across kill -9",
        trades=len(journaled),
        from_journal=from_journal,
        resumes=len(seen["resumes"]),
        screenshot=tmp_path / "after-kills.png",
    )


# Fills of one strategy in the chart's symbol, as the orchestrator sends them, each
# taken back to flat by the next (a round trip per pair), handed to the page's
# connection one after another in one task: a resume's journal replay after a
# restart, or a fast strategy, comes as such a burst.
BURST_OF_FILLS = """async (count) => {
  const symbol = document.getElementById("chart").dataset.symbol;
  const renders = { table: 0, markers: 0 };
  const table = new MutationObserver((records) => { renders.table += records.length; });
  table.observe(document.getElementById("closed-rows"), { childList: true });
  const markers = new MutationObserver((records) => { renders.markers += records.length; });
  markers.observe(document.getElementById("chart"), { attributeFilter: ["data-markers"] });
  const connection = window.orchestratorService._connections.orchestrator;
  const start = Date.now() - count * 1000;
  for (let i = 0; i < count; i += 1) {
    const buy = i % 2 === 0;
    const timestamp = new Date(start + i * 1000).toISOString();
    connection.receive(JSON.stringify({ type: "strategy_trade", timestamp, data: {
      id: `burst-${i}`, orderId: `burst-order-${i}`, strategyId: "burst", symbol,
      side: buy ? "BUY" : "SELL", quantity: 1, entryPrice: 100 + (i % 7), status: "FILLED",
      timestamp, positionQuantity: buy ? 1 : 0, realizedPnl: buy ? 0 : 1, partial: false,
    } }));
  }
  // The next frame, after the renders the burst asked for: a bar or the chart's
  // history coming meanwhile joins them, and no later render is counted.
  await new Promise((resolve) => requestAnimationFrame(resolve));
  renders.table += table.takeRecords().length;
  renders.markers += markers.takeRecords().length;
  return { ...renders, rows: document.querySelectorAll("#closed-rows tr").length };
}"""


async def test_a_burst_of_fills_renders_the_closed_trades_and_the_markers_once(
    tmp_path: Path,
) -> None:
    """Each fill re-rendered the whole closed-trades table and the chart's markers: a
    resume's replay of a few thousand trades after kill -9 held the page for seconds
    (and a reconnection with it). A burst now costs one render of each."""
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    async with (
        ready_daemon(dashboard_config(tmp_path, ports)),
        chromium_page(tmp_path / "profile") as page,
    ):
        await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/")
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#chart")).to_have_attribute("data-symbol", re.compile(r"\w"))
        burst = await page.evaluate(BURST_OF_FILLS, 400)
    assert burst == {"table": 1, "markers": 1, "rows": 200}  # 200 round trips, all shown
