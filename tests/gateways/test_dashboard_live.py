"""The live page's P&L, account line, closed trades and indicator lines, in Chromium.

The daemon runs in-process on a ManualClock (``running_daemon``) and the test
pushes its prices, so every trade is known: the Moving Average Crossover
(SMA 3 / 8 on 1 s bars) buys on a rising AAPL and MSFT and sells when they
fall, one round trip per symbol. What the page shows is checked against what
the daemon says on the wire (``get_account``, ``get_risk_status``,
``get_indicators``) and, for the closed trades, against round trips paired here
from the journal's fills (``get_recent_activity``). At a desktop width, 390 px
and 360 px; the page requests nothing outside the daemon. Then: a strategy stopped
from the page keeps its P&L, the Bollinger bands are drawn, and from 360 to 1,920 px
no card's content runs out of it.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.gateways.test_dashboard import (
    DESKTOP,
    NARROW_PHONE,
    PHONE,
    TIMEOUT_MS,
    chromium_page,
    expect,
    outside_the_daemon,
    poll,
)
from tests.support import Client, TestDaemon, running_daemon, test_config

STRATEGY = "strategy-123"

IN_VIEW = """(ids) => ids.map((id) => {
  const box = document.getElementById(id).getBoundingClientRect();
  return box.top >= 0 && box.bottom <= window.innerHeight && box.left >= 0
    && box.right <= window.innerWidth && box.width > 0;
})"""

ACCOUNT_IDS = [
    "account-equity",
    "account-cash",
    "account-exposure",
    "account-realized-today",
    "account-realized-since-start",
    "account-unrealized",
]


def drive_round_trip(test: TestDaemon) -> None:
    """AAPL and MSFT rise for 12 bars (the averages cross up: buy), then fall for 12
    (they cross down: sell), one tick per symbol per second."""
    for step in range(24):
        move = step if step < 12 else 22 - step
        test.advance(1.0)
        test.tick("AAPL", 100.0 + move)
        test.tick("MSFT", 200.0 + 2 * move)


def paired_round_trips(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round trips from the journal's fills: flat to flat, P&L summed over their fills."""
    trips, fills = [], defaultdict(list)
    for trade in trades:
        if trade["status"] != "FILLED":
            continue
        key = (trade["strategyId"], trade["symbol"])
        fills[key].append(trade)
        if trade["positionQuantity"] == 0:
            trips.append(
                {
                    "exitId": trade["id"],
                    "pnl": sum(t["realizedPnl"] for t in fills.pop(key)),
                    "reason": trade["purpose"],
                }
            )
    return trips


async def shown_trips(page: Any) -> list[dict[str, Any]]:
    rows = page.get_by_test_id("closed-trades").locator("tbody tr")
    return await rows.evaluate_all(
        """(rows) => rows.map((r) => ({exitId: r.dataset.exitId, pnl: Number(r.dataset.pnl),
          reason: r.querySelector("[data-testid=closed-reason]").textContent}))"""
    )


ACCOUNT_VALUES = f"""() => Object.fromEntries({ACCOUNT_IDS!r}.map((id) =>
  [id, Number(document.getElementById(id).dataset.value)]))"""


WIRE_FIELDS = ["equity", "cash", "exposure", "realizedPnlToday", "realizedPnlSinceStart"]
WIRE_FIELDS += ["unrealizedPnl"]


def wire_account(account: dict[str, Any]) -> dict[str, float]:
    """The ``account`` reply keyed as the page's account line."""
    return {
        page_id: account[field] for page_id, field in zip(ACCOUNT_IDS, WIRE_FIELDS, strict=True)
    }


async def lines_count(client: Client) -> int:
    reply = await client.request(
        {"type": "get_indicators", "strategyId": STRATEGY, "symbol": "AAPL", "limit": 1000}
    )
    return len(reply["data"]["points"])


@pytest.mark.parametrize(
    "viewport", [DESKTOP, PHONE, NARROW_PHONE], ids=["desktop", "390px", "360px"]
)
async def test_pnl_account_closed_trades_and_indicator_lines(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    config = test_config(journal={"state_dir": str(tmp_path / "state"), "synchronous": "NORMAL"})
    async with (
        running_daemon(config) as test,
        test.client() as client,
        chromium_page(tmp_path / "profile", viewport) as page,
    ):
        ports = {name: server.port for name, server in test.daemon.servers.items()}
        strays = outside_the_daemon(page, ports)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        base = f"http://127.0.0.1:{ports['orchestrator']}/?symbol=AAPL&resolution=1s"
        await page.goto(base)
        await expect(page.get_by_test_id("strategy-row")).to_have_count(3)
        # Each P&L figure says which period it covers.
        head = page.get_by_test_id("strategies").locator("thead")
        for label in ("Realized today", "Realized since start", "Unrealized"):
            await expect(head).to_contain_text(label)
        account = page.get_by_test_id("account")
        await expect(account).to_have_attribute("data-stale", "false")
        await expect(page.get_by_test_id("account-equity")).to_have_text("100,000.00")

        await client.request({"type": "start_strategy", "id": STRATEGY})
        row = page.locator(f"[data-strategy-id='{STRATEGY}']")
        await expect(row).to_have_attribute("data-status", "ACTIVE")
        drive_round_trip(test)

        # Closed trades: one row per round trip, with the P&L of its fills.
        activity = await client.request({"type": "get_recent_activity", "limit": 100})
        expected = paired_round_trips(activity["data"]["trades"])
        assert len(expected) == 2, activity  # AAPL and MSFT, each bought then sold
        trips = page.get_by_test_id("closed-trades").locator("tbody tr")
        await expect(trips).to_have_count(2)
        shown = await shown_trips(page)
        by_exit = {trip["exitId"]: trip for trip in shown}
        assert set(by_exit) == {trip["exitId"] for trip in expected}
        for trip in expected:
            assert by_exit[trip["exitId"]]["pnl"] == pytest.approx(trip["pnl"])
            assert by_exit[trip["exitId"]]["reason"] == trip["reason"] == "signal"
        await expect(trips.first.get_by_test_id("closed-pnl")).to_have_text(
            re.compile(r"^[+-][\d,]+\.\d\d$")
        )

        # The account line and the strategy's three figures are the daemon's.
        wanted = wire_account((await client.request({"type": "get_account"}))["data"])
        assert wanted["account-realized-since-start"] == pytest.approx(
            sum(trip["pnl"] for trip in expected)
        )
        # The page asks every 2 s and after each trade: wait for the figures to arrive.
        await poll(page, ACCOUNT_VALUES, lambda shown: shown == pytest.approx(wanted))
        async with test.client("risk") as risk:
            status = (await risk.request({"type": "get_risk_status"}))["data"]
        [mine] = [s for s in status["strategies"] if s["strategyId"] == STRATEGY]
        since_start = row.get_by_test_id("strategy-pnl-since-start")
        await expect(since_start).to_have_attribute(
            "data-value", str(mine["realizedPnlSinceStart"])
        )
        await expect(row.get_by_test_id("strategy-pnl-today")).to_have_attribute(
            "data-value", str(mine["realizedPnlToday"])
        )

        # The strategy's SMAs drawn on the chart: every point the daemon keeps.
        chart = page.get_by_test_id("chart")
        await expect(chart).to_have_attribute("data-lines-of", STRATEGY)
        await expect(chart).to_have_attribute("data-lines", "SMA 3,SMA 8")
        await expect(chart).to_have_attribute("data-line-points", str(await lines_count(client)))
        series = await page.evaluate("() => document.getElementById('chart-lines').value")
        assert series == STRATEGY

        # Always in view, however far the page scrolls, and never wider than the screen.
        await page.get_by_test_id("risk-events").scroll_into_view_if_needed()
        assert await page.evaluate(IN_VIEW, ["kill-switch", *ACCOUNT_IDS]) == [True] * 7
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width == viewport["width"]
        await page.screenshot(path=str(tmp_path / "live-page.png"))

        # A page opened now pairs the same round trips from the journal.
        fresh = await page.context.new_page()
        strays += outside_the_daemon(fresh, ports)
        await fresh.goto(base)
        await expect(fresh.get_by_test_id("closed-trades").locator("tbody tr")).to_have_count(2)
        assert await shown_trips(fresh) == shown
    assert errors == []
    assert strays == []


BANDS = "bollinger-breakout"
BANDS_START = {"symbols": ["AAPL"], "dataResolution": "1s", "params": {"period": 5}}
ROW_PNL_FIELDS = ("realizedPnlToday", "realizedPnlSinceStart", "unrealizedPnl")
ROW_PNL = f"""() => ["today", "since-start", "unrealized"].map((period) => document
  .querySelector(`[data-strategy-id='{STRATEGY}'] [data-testid=strategy-pnl-${{period}}]`)
  .dataset.value).map((value) => (value === "" ? null : Number(value)))"""


async def stop_from_the_page(test: TestDaemon, page: Any, row: Any) -> None:
    """Stop, confirmed; its closing orders fill at market on the next ticks, sent here
    until the row says STOPPED."""
    await row.locator("[data-action=stop]").click()
    await page.get_by_test_id("confirm-ok").click()
    async with asyncio.timeout(TIMEOUT_MS / 1000):
        while await row.get_attribute("data-status") != "STOPPED":
            test.tick("AAPL", 111.0)
            test.tick("MSFT", 222.0)
            await asyncio.sleep(0.05)  # the closing orders fill on a tick: send the next


async def test_a_stopped_strategy_keeps_its_pnl_and_the_bollinger_bands_are_drawn(
    tmp_path: Path,
) -> None:
    """The issue's complaint: a stopped strategy's realized P&L vanished from the totals.
    Stopped from the page while it holds AAPL and MSFT, its close realized, its three
    figures stay in its row, in the account line and in a page opened afterwards; the
    Bollinger strategy's three bands are drawn over the candles, every point the daemon
    keeps."""
    config = test_config(journal={"state_dir": str(tmp_path / "state"), "synchronous": "NORMAL"})
    async with (
        running_daemon(config) as test,
        test.client() as client,
        chromium_page(tmp_path / "profile") as page,
    ):
        ports = {name: server.port for name, server in test.daemon.servers.items()}
        strays = outside_the_daemon(page, ports)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        base = f"http://127.0.0.1:{ports['orchestrator']}/?symbol=AAPL&resolution=1s&lines={BANDS}"
        await page.goto(base)
        await expect(page.get_by_test_id("strategy-row")).to_have_count(3)
        await client.request({"type": "start_strategy", "id": STRATEGY})
        await client.request({"type": "start_strategy", "id": BANDS, "config": BANDS_START})
        row = page.locator(f"[data-strategy-id='{STRATEGY}']")
        await expect(row).to_have_attribute("data-status", "ACTIVE")
        for step in range(12):  # the rise: the averages cross up, it buys both
            test.advance(1.0)
            test.tick("AAPL", 100.0 + step)
            test.tick("MSFT", 200.0 + 2 * step)

        chart = page.get_by_test_id("chart")
        await expect(chart).to_have_attribute("data-lines-of", BANDS)
        await expect(chart).to_have_attribute("data-lines", "upper,middle,lower")
        bands = await client.request(
            {"type": "get_indicators", "strategyId": BANDS, "symbol": "AAPL", "limit": 1000}
        )
        assert len(bands["data"]["points"]) >= 12 - BANDS_START["params"]["period"]
        await expect(chart).to_have_attribute("data-line-points", str(len(bands["data"]["points"])))
        await page.screenshot(path=str(tmp_path / "bollinger-bands.png"))

        await expect(row.get_by_test_id("strategy-positions")).to_contain_text("MSFT")
        await stop_from_the_page(test, page, row)
        await expect(row.get_by_test_id("strategy-positions")).to_have_text("—")
        async with test.client("risk") as risk:
            status = (await risk.request({"type": "get_risk_status"}))["data"]
        [mine] = [s for s in status["strategies"] if s["strategyId"] == STRATEGY]
        assert mine["status"] == "STOPPED" and mine["realizedPnlSinceStart"] != 0, mine
        figures = [mine[field] for field in ROW_PNL_FIELDS]
        await poll(page, ROW_PNL, lambda shown: shown == pytest.approx(figures))
        wanted = wire_account((await client.request({"type": "get_account"}))["data"])
        assert wanted["account-realized-since-start"] == pytest.approx(
            sum(s["realizedPnlSinceStart"] for s in status["strategies"])
        )
        await poll(page, ACCOUNT_VALUES, lambda shown: shown == pytest.approx(wanted))

        # A page opened after the stop has the stopped strategy's P&L too.
        fresh = await page.context.new_page()
        strays += outside_the_daemon(fresh, ports)
        await fresh.goto(base)
        stopped = fresh.locator(f"[data-strategy-id='{STRATEGY}']")
        await expect(stopped).to_have_attribute("data-status", "STOPPED")
        await poll(fresh, ROW_PNL, lambda shown: shown == pytest.approx(figures))
        await poll(fresh, ACCOUNT_VALUES, lambda shown: shown == pytest.approx(wanted))
        await page.screenshot(path=str(tmp_path / "after-stop.png"))
    assert errors == []
    assert strays == []


# Phones, a tablet's portrait and landscape, the one- and two-column layouts' edges, screens.
WIDTHS = [360, 480, 641, 768, 820, 901, 1024, 1280, 1400, 1920]

SPILLS = """() => {
  const onScreen = (element) => {
    const box = element.getBoundingClientRect();
    return box.left >= 0 && box.right <= innerWidth && box.top >= 0 && box.bottom <= innerHeight;
  };
  const beyond = (element, card) => {
    const box = element.getBoundingClientRect();
    const edge = card.getBoundingClientRect();
    return box.left < edge.left || box.right > edge.right;
  };
  const panels = [...document.querySelectorAll("#live-view .panel")];
  const buttons = [...document.querySelectorAll("[data-testid=strategy-row] button")];
  return {
    pageWidth: document.documentElement.scrollWidth,
    spilling: panels.filter((panel) => panel.scrollWidth > panel.clientWidth)
      .map((panel) => panel.className),
    buttonsOutsideTheirCard: buttons.filter((b) => beyond(b, b.closest(".panel"))).length,
    buttonsOffScreen: buttons.filter((b) => {
      const box = b.getBoundingClientRect();
      return box.left < 0 || box.right > innerWidth;
    }).length,
    header: ["kill-switch", "header-pnl", "account-realized-since-start"]
      .map((id) => onScreen(document.getElementById(id))),
  };
}"""


async def test_from_360_px_to_a_wide_screen_nothing_spills_out_of_its_card(
    tmp_path: Path,
) -> None:
    """At every width the page is no wider than the screen, no card's content runs out
    of it (over its neighbour), each strategy's buttons are in its card and on screen,
    and the kill switch and the P&L are in view; with trades in every table."""
    config = test_config(journal={"state_dir": str(tmp_path / "state"), "synchronous": "NORMAL"})
    async with (
        running_daemon(config) as test,
        test.client() as client,
        chromium_page(tmp_path / "profile") as page,
    ):
        page.set_default_timeout(TIMEOUT_MS)
        port = test.daemon.servers["orchestrator"].port
        await page.goto(f"http://127.0.0.1:{port}/?symbol=AAPL&resolution=1s")
        await client.request({"type": "start_strategy", "id": STRATEGY})
        drive_round_trip(test)
        await expect(page.get_by_test_id("closed-trades").locator("tbody tr")).to_have_count(2)
        layouts = {}
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": 800})
            layouts[width] = await page.evaluate(SPILLS)
            await page.screenshot(path=str(tmp_path / f"width-{width}.png"))
    fits = {
        "spilling": [],
        "buttonsOutsideTheirCard": 0,
        "buttonsOffScreen": 0,
        "header": [True, True, True],
    }
    assert layouts == {width: {"pageWidth": width, **fits} for width in WIDTHS}
