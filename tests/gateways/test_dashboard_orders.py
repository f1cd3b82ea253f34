"""The live page's open orders card, in Chromium, against a daemon on a ManualClock.

The strategy (``ChasingBracket``) rests a limit buy 1 % under each 1 s bar's close
with a stop-loss and a take-profit, and moves it to the new close's 1 % while it
rests; the test prints the prices, so every order is known. The card must show
what ``get_open_orders`` says: an entry placed, replaced (same id, new limit),
cancelled from the page (asked first), triggered (gone, its two exits in its
place), an exit filled while its Cancel is being confirmed (the daemon's
``order_not_found`` shown), and, across a stop and a restart of the daemon on the
same journal and ports, the order it restored. At a desktop width, 390 px and
360 px; the page requests nothing outside the daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.trading.execution import CANCELLED_BY_HAND
from tests.gateways.test_daemon_process import PATHS, SERVERS, free_ports
from tests.gateways.test_dashboard import (
    DESKTOP,
    NARROW_PHONE,
    PHONE,
    TIMEOUT_MS,
    chromium_page,
    expect,
    outside_the_daemon,
)
from tests.gateways.test_strategy_runtime import config_with
from tests.support import Client, TestDaemon, running_daemon

CHASER = {"id": "chaser", "kind": "tests.scripted_strategies:ChasingBracket", "symbols": ["AAPL"]}

# How far the card (and its Cancel buttons) lie inside the screen, and the page's width.
LAYOUT = """() => {
  const inside = (element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.left >= 0 && box.right <= window.innerWidth;
  };
  const buttons = [...document.querySelectorAll("[data-testid=cancel-order]")];
  return {
    pageWidth: document.documentElement.scrollWidth,
    card: inside(document.getElementById("open-orders")),
    buttons: buttons.length,
    buttonsInside: buttons.filter(inside).length,
  };
}"""

ROW_TEXTS = """(rows) => rows.map((row) => Object.fromEntries(
  [...row.querySelectorAll("td[data-testid]")].map((cell) =>
    [cell.dataset.testid.replace("order-", ""), cell.textContent])))"""


def orders_config(tmp_path: Path, ports: dict[str, int]) -> Any:
    servers = {name: {"port": ports[name], "path": PATHS[name]} for name in SERVERS}
    journal = {"state_dir": str(tmp_path / "state"), "synchronous": "NORMAL"}
    return config_with(CHASER, servers=servers, journal=journal)


def bar(test: TestDaemon, close: float) -> None:
    """One tick at ``close``, then the 1 s bar it is in closes: the strategy's on_bar."""
    test.tick("AAPL", close)
    test.advance(1.0)


async def open_orders(client: Client) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = (await client.request({"type": "get_open_orders"}))["data"][
        "orders"
    ]
    return orders


async def shown_ids(page: Any) -> list[str]:
    rows = page.get_by_test_id("open-order")
    ids: list[str] = await rows.evaluate_all("(rows) => rows.map((r) => r.dataset.orderId)")
    return ids


async def check_layout(page: Any, width: int, buttons: int) -> None:
    await page.get_by_test_id("open-orders").scroll_into_view_if_needed()
    layout = await page.evaluate(LAYOUT)
    assert layout == {
        "pageWidth": width,
        "card": True,
        "buttons": buttons,
        "buttonsInside": buttons,
    }, layout


@pytest.mark.parametrize(
    "viewport", [DESKTOP, PHONE, NARROW_PHONE], ids=["desktop", "390px", "360px"]
)
async def test_the_open_orders_card_follows_the_daemon_and_cancels(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = orders_config(tmp_path, ports)
    width = viewport["width"]
    errors: list[str] = []
    async with chromium_page(tmp_path / "profile", viewport) as page:
        strays = outside_the_daemon(page, ports)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        card = page.get_by_test_id("open-orders")
        rows = page.get_by_test_id("open-order")
        confirm = page.get_by_test_id("confirm")
        async with running_daemon(config) as test, test.client() as client:
            await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=300")
            await expect(card).to_have_attribute("data-stale", "false")
            await expect(page.get_by_test_id("orders-empty")).to_be_visible()
            await client.request({"type": "start_strategy", "id": "chaser"})
            await expect(page.locator("[data-strategy-id=chaser]")).to_have_attribute(
                "data-status", "ACTIVE"
            )

            # Placed: the entry with its bracket, as get_open_orders has it.
            bar(test, 100.0)
            entry = (await client.recv_type("order_accepted"))["data"]
            await expect(rows).to_have_count(1)
            [shown] = await rows.evaluate_all(ROW_TEXTS)
            assert {k: v for k, v in shown.items() if k != "placed"} == {
                "strategy": "chaser",
                "symbol": "AAPL",
                "type": "LIMIT · entry",
                "side": "BUY",
                "quantity": "10",
                "limit": "99.00",
                "stop": "—",
                "stop-loss": "94.05",
                "take-profit": "100.98",
                "tif": "GTC",
            }
            assert await shown_ids(page) == [o["orderId"] for o in await open_orders(client)]
            await expect(page.get_by_test_id("order-count")).to_have_text("1")

            # Replaced: the same row, the new limit.
            bar(test, 101.0)
            await client.recv_type("order_replaced")
            await expect(rows.first.get_by_test_id("order-limit")).to_have_text("99.99")
            assert await shown_ids(page) == [entry["orderId"]]
            await check_layout(page, width, buttons=1)
            await page.screenshot(path=str(tmp_path / "open-orders.png"), full_page=True)

            # Cancel asks first; its Cancel changes nothing, its OK cancels.
            await rows.first.get_by_test_id("cancel-order").click()
            await expect(confirm).to_be_visible()
            await expect(confirm).to_contain_text(entry["orderId"])
            await expect(confirm).to_contain_text("LIMIT BUY 10 AAPL (limit 99.99)")
            await page.screenshot(path=str(tmp_path / "cancel-confirm.png"))
            await page.get_by_test_id("confirm-cancel").click()
            await expect(confirm).to_be_hidden()
            await expect(rows).to_have_count(1)
            assert [o["orderId"] for o in await open_orders(client)] == [entry["orderId"]]
            await rows.first.get_by_test_id("cancel-order").click()
            await page.get_by_test_id("confirm-ok").click()
            cancelled = (await client.recv_type("order_cancelled"))["data"]
            assert (cancelled["orderId"], cancelled["reason"]) == (
                entry["orderId"],
                CANCELLED_BY_HAND,
            )
            await expect(rows).to_have_count(0)
            await expect(page.get_by_test_id("orders-empty")).to_be_visible()
            assert await open_orders(client) == []

            # Triggered: the entry leaves, its fill arms the stop-loss and the take-profit.
            bar(test, 100.0)
            second = (await client.recv_type("order_accepted"))["data"]
            await expect(rows).to_have_count(1)
            test.tick("AAPL", 98.5)
            await client.recv_type("order_triggered")
            stop = (await client.recv_type("order_accepted"))["data"]
            target = (await client.recv_type("order_accepted"))["data"]
            assert stop["parentId"] == target["parentId"] == second["orderId"]
            await expect(rows).to_have_count(2)
            assert await shown_ids(page) == [stop["orderId"], target["orderId"]]
            texts = await rows.evaluate_all(ROW_TEXTS)
            assert [(t["type"], t["side"], t["limit"], t["stop"]) for t in texts] == [
                ("STOP · stop-loss", "SELL", "—", "94.05"),
                ("LIMIT · take-profit", "SELL", "100.98", "—"),
            ]
            await check_layout(page, width, buttons=2)

            # The take-profit fills while its Cancel is being confirmed: the daemon's error.
            target_row = page.locator(f"[data-order-id={target['orderId']}]")
            await target_row.get_by_test_id("cancel-order").click()
            await expect(confirm).to_be_visible()
            test.tick("AAPL", 101.5)
            await client.recv_type("order_cancelled")  # the stop: its sibling filled
            await expect(rows).to_have_count(0)
            await page.get_by_test_id("confirm-ok").click()
            await expect(page.get_by_test_id("orders-error")).to_contain_text("order_not_found")
            assert await open_orders(client) == []

            # Flat again: a new entry rests, and the daemon stops with it resting.
            bar(test, 100.0)
            resting = (await client.recv_type("order_accepted"))["data"]
            await expect(rows).to_have_count(1)

        # Away: the card is the last known one, stale, its Cancel disabled.
        await expect(card).to_have_attribute("data-stale", "true")
        await expect(rows).to_have_count(1)
        await expect(rows.first.get_by_test_id("cancel-order")).to_be_disabled()
        await page.screenshot(path=str(tmp_path / "open-orders-down.png"), full_page=True)

        # Back on the same journal: the order it restored, Cancel enabled again.
        async with running_daemon(config) as test, test.client() as client:
            await expect(card).to_have_attribute("data-stale", "false")
            assert [o["orderId"] for o in await open_orders(client)] == [resting["orderId"]]
            await expect(rows).to_have_count(1)
            assert await shown_ids(page) == [resting["orderId"]]
            await expect(rows.first.get_by_test_id("order-limit")).to_have_text("99.00")
            await expect(rows.first.get_by_test_id("cancel-order")).to_be_enabled()
            await check_layout(page, width, buttons=1)
            await page.screenshot(path=str(tmp_path / "open-orders-restored.png"), full_page=True)
    assert errors == []
    assert strays == []
