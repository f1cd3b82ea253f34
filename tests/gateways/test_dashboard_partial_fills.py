"""Partial fills on the live page, in Chromium, against a daemon with
``broker.partial_fills`` on (docs/orders.md#partial-fills).

``RestingBracket`` rests a limit buy of 10 at 99 (a 94.05 / 100.98 bracket). A tick of
size 4 at 98.5 fills 4 of it: the open orders card keeps the entry, showing 6 of 10
left with 4 filled, beside the exits armed for the 4; the feed and the trades table
show the trade as a part ("partial, 4 of 10"). The daemon stops and starts again on
the same journal and ports: the card still shows 6 of 10 (from get_open_orders, its
``filled`` from the journal's fills). A tick of size 10 fills the last 6: the entry
leaves the card, the feed says "last part, 10 of 10", and the exits show 10. At a
desktop width and 390 px; the page requests nothing outside the daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateways.api.test_order_commands import next_second
from tests.gateways.test_daemon_process import PATHS, SERVERS, free_ports
from tests.gateways.test_dashboard import (
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    chromium_page,
    expect,
    outside_the_daemon,
)
from tests.gateways.test_dashboard_orders import ROW_TEXTS, check_layout, open_orders
from tests.gateways.test_strategy_runtime import config_with
from tests.support import running_daemon

REST = {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]}


def partial_config(tmp_path: Path, ports: dict[str, int]) -> Any:
    servers = {name: {"port": ports[name], "path": PATHS[name]} for name in SERVERS}
    journal = {"state_dir": str(tmp_path / "state"), "synchronous": "NORMAL"}
    broker = {"partial_fills": True, "slippage_bps": 0.0}
    return config_with(REST, servers=servers, journal=journal, broker=broker)


async def quantities(rows: Any) -> dict[str, str]:
    """Each shown order's type and its quantity cell."""
    texts = await rows.evaluate_all(ROW_TEXTS)
    return {text["type"]: text["quantity"] for text in texts}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
async def test_a_partly_filled_order_shows_its_rest_and_its_parts_across_a_restart(
    tmp_path: Path, viewport: dict[str, int]
) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = partial_config(tmp_path, ports)
    errors: list[str] = []
    async with chromium_page(tmp_path / "profile", viewport) as page:
        strays = outside_the_daemon(page, ports)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        card = page.get_by_test_id("open-orders")
        rows = page.get_by_test_id("open-order")
        feed = page.get_by_test_id("feed")
        async with running_daemon(config) as test, test.client() as client:
            await page.goto(f"http://127.0.0.1:{ports['orchestrator']}/?backoffMaxMs=300")
            await expect(card).to_have_attribute("data-stale", "false")
            await client.request({"type": "start_strategy", "id": "rest"})
            test.tick("AAPL", 100.0)
            await next_second(test, {"AAPL": 100.0})
            entry = (await client.recv_type("order_accepted"))["data"]
            await expect(rows).to_have_count(1)
            assert await quantities(rows) == {"LIMIT · entry": "10"}

            # A tick of 4 fills 4: the entry stays, 6 of 10 left; its exits arm for 4.
            test.tick("AAPL", 98.5, size=4.0)
            await client.recv_type("order_partially_filled")
            entry_row = page.locator(f"[data-order-id={entry['orderId']}]")
            await expect(entry_row).to_have_attribute("data-filled", "4")
            await expect(rows).to_have_count(3)
            assert await quantities(rows) == {
                "LIMIT · entry": "6 of 10 (4 filled)",
                "STOP · stop-loss": "4",
                "LIMIT · take-profit": "4",
            }
            assert [(o["quantity"], o["filled"]) for o in await open_orders(client)] == [
                (6.0, 4.0),
                (4.0, 0.0),
                (4.0, 0.0),
            ]
            part = feed.locator("li[data-kind=trade]").first
            await expect(part).to_contain_text("FILLED BUY 4 AAPL @ 98.50 · partial, 4 of 10")
            trade_row = page.locator("#trade-rows tr").first
            await expect(trade_row).to_have_attribute("data-part", "partial, 4 of 10")
            await check_layout(page, viewport["width"], buttons=3)
            await page.screenshot(path=str(tmp_path / "partly-filled.png"), full_page=True)

        # Down: the card is the last known one, stale.
        await expect(card).to_have_attribute("data-stale", "true")
        await expect(entry_row).to_have_attribute("data-remaining", "6")

        # Back on the same journal: the rest, and what its part filled, from the daemon.
        async with running_daemon(config) as test, test.client() as client:
            await expect(card).to_have_attribute("data-stale", "false")
            assert [(o["quantity"], o["filled"]) for o in await open_orders(client)] == [
                (6.0, 4.0),
                (4.0, 0.0),
                (4.0, 0.0),
            ]
            await expect(rows).to_have_count(3)
            assert await quantities(rows) == {
                "LIMIT · entry": "6 of 10 (4 filled)",
                "STOP · stop-loss": "4",
                "LIMIT · take-profit": "4",
            }
            await page.screenshot(path=str(tmp_path / "restored.png"), full_page=True)

            # The last part: the entry leaves, its exits grow to the 10 it opened.
            test.tick("AAPL", 98.7, size=10.0)
            await client.recv_type("order_triggered")
            await expect(rows).to_have_count(2)
            # (Each daemon run's clock starts at the same moment: found by its text.)
            last = feed.locator("li[data-kind=trade]", has_text="FILLED BUY 6 AAPL")
            await expect(last).to_contain_text("FILLED BUY 6 AAPL @ 98.70 · last part, 10 of 10")
            await expect(rows.first.get_by_test_id("order-quantity")).to_have_text("10")
            assert await quantities(rows) == {"STOP · stop-loss": "10", "LIMIT · take-profit": "10"}
    assert errors == []
    assert strays == []
