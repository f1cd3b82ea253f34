"""Native resting orders on the loopback exchange (docs/venues.md): a live strategy's
limit order rests on the venue, fills there in parts (told as the paper broker's parts
are), is cancelled and replaced there, is cancelled by the kill switch, survives a
restart; block-all's flatten closes positions on the venue; fees in BNB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from gateways.config import DaemonConfig
from orchestrator.journal.store import Journal
from orchestrator.model.events import OrderReplaced, OrderTriggered, StrategyStatus
from orchestrator.model.orders import FILLED
from tests.gateways.venues.test_live_trading import (
    KEY,
    LIVE,
    SECRET,
    SYMBOL,
    credentials,
    exchange,
    first_bar,
    venue_settings,
)
from tests.support import Client, TestDaemon, running_daemon, test_config
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket, VenueOrder

__all__ = ["credentials", "exchange"]  # the live-trading tests' fixtures

LIMIT_BUYER = "tests.scripted_strategies:RestingLimitBuy"
MARKET_BUYER = "tests.scripted_strategies:BuyThenHold"


def config_for(
    venue: LoopbackExchange,
    kind: str = LIMIT_BUYER,
    params: dict[str, Any] | None = None,
    **overrides: Any,
) -> DaemonConfig:
    return test_config(
        market_data={
            "feed": {"kind": "synthetic", "symbols": {SYMBOL: 30_000.0}, "history_seconds": 0}
        },
        venues={"main": venue_settings(venue)},
        strategies=[
            {
                "id": "buyer",
                "name": "Limit buyer",
                "kind": kind,
                "params": {"quantity": 0.01, **(params or {})},
                "defaults": {"symbols": [SYMBOL], "data_resolution": "1s"},
            }
        ],
        **overrides,
    )


def journal_writable(config: DaemonConfig) -> Journal:
    """The journal of ``config``, opened as a daemon does (none may run on it)."""
    assert config.journal.state_dir is not None
    return Journal.open(config.journal.state_dir / config.journal.file_name, "NORMAL")


async def eventually(
    venue: LoopbackExchange, condition: Callable[[], object], timeout: float = 30.0
) -> None:
    """Until ``condition()`` holds of ``venue``, checked at each request it receives (its
    state changes by them; the daemon's poll keeps asking)."""
    heard = asyncio.Event()
    venue.on_request = lambda method, endpoint: heard.set()
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await heard.wait()
                heard.clear()
    finally:
        venue.on_request = lambda method, endpoint: None


def restored_in_error(daemon: TestDaemon) -> None:
    """The venue is not reconciled: its live strategy is ERROR and rests nothing here."""
    assert daemon.daemon.venues["main"].unreconciled is not None
    [view] = daemon.daemon.registry.catalog()
    assert view.status is StrategyStatus.ERROR
    assert daemon.daemon.core.execution.open_orders("buyer") == []


async def late_start_pass_cancels_the_orphan(daemon: TestDaemon) -> None:
    """The start's pass, late, succeeds and cancels the one order left on the venue."""
    reconciler = daemon.daemon.reconcilers["main"]
    await reconciler.periodic()
    assert daemon.daemon.venues["main"].unreconciled is None
    assert reconciler.last is not None and reconciler.last.orphans_cancelled == 1


async def resting_on_venue(
    daemon: TestDaemon, client: Client, venue: LoopbackExchange
) -> VenueOrder:
    """Start the limit buyer live; its first bar's limit order rests on the venue."""
    reply = await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
    assert reply["type"] == "strategy_started"
    await first_bar(daemon)
    await client.recv_type("order_accepted")
    await eventually(venue, lambda: venue.open_orders())
    [order] = venue.open_orders()
    return order


async def test_a_limit_order_rests_on_the_venue_and_fills_there_in_parts(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.004
    async with running_daemon(config_for(exchange)) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        assert (order.type, order.time_in_force, order.price) == ("LIMIT", "GTC", 29_700.0)
        assert order.client_order_id.startswith("orc-order_")
        order_id = order.client_order_id.removeprefix("orc-")
        seen: list[tuple[float, float]] = []
        for _ in range(3):
            exchange.set_price(SYMBOL, 29_000.0)  # one part per price
            trade = (await client.recv_type("strategy_trade"))["data"]
            assert (trade["orderId"], trade["status"], trade["entryPrice"]) == (
                order_id,
                "FILLED",
                29_700.0,
            )
            seen.append((trade["quantity"], trade.get("remainingQuantity") or 0.0))
        assert seen == [(0.004, 0.006), (0.004, 0.002), (0.002, 0.0)]
        journal = await daemon.committed_journal()
        fills = journal.fills("buyer")
        assert [f.quantity for f in fills] == pytest.approx([0.004, 0.004, 0.002])
        assert daemon.daemon.core.execution.open_orders("buyer") == []
        assert exchange.submissions == 1
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_cancel_order_cancels_it_on_the_venue(exchange: LoopbackExchange) -> None:
    async with running_daemon(config_for(exchange)) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        reply = await client.request({"type": "cancel_order", "orderId": order_id})
        assert reply["type"] == "order_cancelled"
        assert exchange.orders[order.order_id].status == "CANCELED"
        assert exchange.open_orders() == []
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["orderId"], trade["status"]) == (order_id, "REJECTED")


async def test_a_replace_is_a_cancel_and_a_new_order_on_the_venue(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.004
    async with running_daemon(config_for(exchange)) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        exchange.set_price(SYMBOL, 29_000.0)  # a part before the replace
        await client.recv_type("strategy_trade")
        exchange.set_price(SYMBOL, 30_000.0)
        execution = daemon.daemon.core.execution
        assert execution.replace_order("buyer", order_id, limit_price=29_500.0)
        await eventually(
            exchange,
            lambda: [o.client_order_id for o in exchange.open_orders()] == [f"orc-{order_id}.1"],
        )
        [new] = exchange.open_orders()
        assert (new.price, new.orig_qty) == (29_500.0, pytest.approx(0.006))
        assert exchange.orders[order.order_id].status == "CANCELED"
        exchange.part_size = None
        exchange.set_price(SYMBOL, 29_400.0)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["quantity"], trade["entryPrice"]) == (pytest.approx(0.006), 29_500.0)
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_the_kill_switch_cancels_the_entries_resting_on_the_venue(
    exchange: LoopbackExchange,
) -> None:
    async with running_daemon(config_for(exchange)) as daemon, daemon.client() as client:
        await resting_on_venue(daemon, client, exchange)
        async with daemon.client("risk") as risk:
            await risk.send({"type": "halt_trading", "reason": "test"})
            await client.recv_type("order_cancelled")
        assert exchange.open_orders() == []
        assert daemon.daemon.core.execution.open_orders("buyer") == []


async def test_block_all_flatten_closes_the_positions_on_the_venue(
    exchange: LoopbackExchange,
) -> None:
    before = exchange.position("BTC")
    async with running_daemon(config_for(exchange, MARKET_BUYER)) as daemon:
        async with daemon.client() as client:
            await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
            await first_bar(daemon)
            bought = (await client.recv_type("strategy_trade"))["data"]
            assert bought["status"] == "FILLED"
            assert exchange.position("BTC") == pytest.approx(before + 0.01)
            async with daemon.client("risk") as risk:
                await risk.send(
                    {"type": "halt_trading", "reason": "flat", "blockAll": True, "flatten": True}
                )
                sold = (await client.recv_type("strategy_trade"))["data"]
            assert (sold["side"], sold["status"], sold["quantity"]) == ("SELL", "FILLED", 0.01)
        assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == 0.0
        journal = await daemon.committed_journal()
        assert journal.rebuild_book().quantity("buyer", SYMBOL) == 0.0
    assert exchange.position("BTC") == pytest.approx(before)
    assert len(exchange.orders) == 2


async def test_flatten_needs_block_all(exchange: LoopbackExchange) -> None:
    async with running_daemon(config_for(exchange)) as daemon, daemon.client("risk") as risk:
        reply = await risk.request({"type": "halt_trading", "reason": "x", "flatten": True})
        assert reply["type"] == "error"
        assert "flatten needs blockAll" in str(reply["data"])
        assert daemon.daemon.core.execution.halt is None


async def test_a_restart_finds_the_order_resting_on_the_venue_and_settles_its_parts_once(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.004
    config = config_for(exchange)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        exchange.set_price(SYMBOL, 29_000.0)
        await client.recv_type("strategy_trade")
    exchange.set_price(SYMBOL, 29_000.0)  # a part while the daemon is down
    async with running_daemon(config) as daemon, daemon.client() as client:
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["orderId"], trade["quantity"], trade["remainingQuantity"]) == (
            order_id,
            0.004,
            pytest.approx(0.002),
        )
        [resting] = daemon.daemon.core.execution.open_orders("buyer")
        assert (resting.id, resting.quantity) == (order_id, pytest.approx(0.002))
    async with running_daemon(config) as daemon, daemon.client() as client:
        [resting] = daemon.daemon.core.execution.open_orders("buyer")  # nothing settled twice
        assert resting.quantity == pytest.approx(0.002)
        exchange.set_price(SYMBOL, 29_000.0)
        last = (await client.recv_type("strategy_trade"))["data"]
        assert (last["quantity"], last.get("remainingQuantity") or 0.0) == (
            pytest.approx(0.002),
            0.0,
        )
        journal = await daemon.committed_journal()
        fills = journal.fills("buyer")
        assert [f.quantity for f in fills] == pytest.approx([0.004, 0.004, 0.002])
        assert all(f.status is FILLED for f in fills)
    assert exchange.submissions == 1 and len(exchange.orders) == 1
    assert exchange.position("BTC") == pytest.approx(0.01)


async def test_a_fee_in_bnb_is_priced_by_the_venue_and_reconciled_in_bnb() -> None:
    markets = [LoopbackMarket("BTC", "USDT", 30_000.0), LoopbackMarket("BNB", "USDT", 600.0)]
    balances = {"USDT": 100_000.0, "BNB": 10.0}
    async with LoopbackExchange(KEY, SECRET, markets, balances, fee_asset="BNB") as venue:
        config = config_for(venue, MARKET_BUYER)
        async with running_daemon(config) as daemon, daemon.client() as client:
            await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
            await first_bar(daemon)
            trade = (await client.recv_type("strategy_trade"))["data"]
            price = trade["entryPrice"]
            journal = await daemon.committed_journal()
            [fill] = journal.fills("buyer")
            assert fill.commission == pytest.approx(0.01 * price * 0.001)  # in USDT
            [charged] = journal.venue_ledger("main")  # as the venue took it
            assert charged.fee_asset == "BNB"
            assert charged.fee == pytest.approx(0.01 * price * 0.001 / 600.0)
            assert venue.position("BNB") == pytest.approx(10.0 - charged.fee)
            reconciler = daemon.daemon.reconcilers["main"]
            await reconciler.periodic()  # BNB's baseline: what the account held besides
            await reconciler.periodic()
            assert reconciler.last is not None
            assert set(reconciler.last.balances) == {"BTC", "BNB"}
            assert reconciler.mismatches == {}
            venue.balances["BNB"][0] -= 1.0  # spent outside the daemon
            await reconciler.periodic()
            assert list(reconciler.mismatches) == ["BNB"]


async def test_a_replace_after_a_part_places_all_that_rests_not_a_step_less(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.00744  # 0.01 - 0.00744 is 0.0025599999999999998 in floats
    async with running_daemon(config_for(exchange)) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        exchange.set_price(SYMBOL, 29_000.0)
        part = (await client.recv_type("strategy_trade"))["data"]
        assert (part["quantity"], part["remainingQuantity"]) == (0.00744, 0.00256)
        exchange.set_price(SYMBOL, 30_000.0)
        execution = daemon.daemon.core.execution
        assert execution.replace_order("buyer", order_id, limit_price=29_500.0)
        await eventually(
            exchange,
            lambda: [o.client_order_id for o in exchange.open_orders()] == [f"orc-{order_id}.1"],
        )
        [new] = exchange.open_orders()
        assert new.orig_qty == 0.00256  # ccxt truncates an amount to its step: not 0.00255
        [resting] = execution.open_orders("buyer")
        assert resting.quantity == 0.00256


async def test_a_part_after_a_restart_is_charged_its_own_fee_not_the_earlier_parts_again() -> None:
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    balances = {"USDT": 100_000.0}
    async with LoopbackExchange(KEY, SECRET, [market], balances, fee_in_base=True) as venue:
        venue.part_size = 0.004
        config = config_for(venue)
        async with running_daemon(config) as daemon, daemon.client() as client:
            await resting_on_venue(daemon, client, venue)
            venue.set_price(SYMBOL, 29_000.0)
            await client.recv_type("strategy_trade")
        async with running_daemon(config) as daemon, daemon.client() as client:
            venue.set_price(SYMBOL, 29_000.0)  # the order's second part, after the restart
            await client.recv_type("strategy_trade")
            journal = await daemon.committed_journal()
            ledger = journal.venue_ledger("main")
        charged = [trade.commission for trade in venue.trades]
        assert [entry.fee for entry in ledger] == pytest.approx(charged)  # 0.004 BTC, 0.004 BTC
        held = sum(entry.signed_quantity - entry.fee for entry in ledger)
        assert held == pytest.approx(venue.position("BTC"))


async def test_a_kill_between_an_orders_end_and_its_last_parts_fill_settles_the_rest_once(
    exchange: LoopbackExchange,
) -> None:
    exchange.part_size = 0.004
    config = config_for(exchange)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        exchange.set_price(SYMBOL, 29_000.0)
        await client.recv_type("strategy_trade")  # 0.004 of 0.01
    order_id = order.client_order_id.removeprefix("orc-")
    exchange.set_price(SYMBOL, 29_000.0)
    exchange.set_price(SYMBOL, 29_000.0)  # the rest, while the daemon is down
    assert exchange.orders[order.order_id].status == "FILLED"
    # The kill fell after the journal committed the order's trigger, before its last
    # part's fill: the journal holds a part and an ended order (as the pipeline writes
    # them: the trigger first), the venue the rest.
    with journal_writable(config) as journal:
        [(resting, _)] = journal.venue_resting_orders("main")
        journal.write([OrderTriggered(resting, 29_700.0, resting.ts + 1.0)])
        [(_, in_flight)] = journal.unfilled_venue_orders()
        assert (in_flight.id, in_flight.quantity) == (order_id, pytest.approx(0.006))
    for _ in range(2):  # the second start settles nothing again
        async with running_daemon(config) as daemon:
            journal = await daemon.committed_journal()
            fills = journal.fills("buyer")
            assert [(f.quantity, f.status) for f in fills] == [
                (pytest.approx(0.004), FILLED),
                (pytest.approx(0.006), FILLED),
            ]
            assert fills[1].id == f"reconciled-{order_id}"
            assert journal.unfilled_venue_orders() == []
            assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == pytest.approx(
                0.01
            )
    assert exchange.submissions == 1


def venue_filled_by_client_id(venue: LoopbackExchange, order_id: str) -> dict[str, float]:
    """What the venue filled of each revision of the daemon's order ``order_id``."""
    return {
        o.client_order_id: o.executed_qty
        for o in venue.orders.values()
        if o.client_order_id.split(".")[0] == f"orc-{order_id}"
    }


async def assert_journal_matches_venue(
    daemon: TestDaemon, venue: LoopbackExchange, order_id: str
) -> None:
    """Every part journaled once; they sum to what the venue filled across the order's
    revisions; the position is the venue's balance; what rests is the venue's rest."""
    journal = await daemon.committed_journal()
    fills = journal.fills("buyer")
    assert len({f.id for f in fills}) == len(fills)
    assert all(f.order_id == order_id and f.status is FILLED for f in fills)
    filled = sum(venue_filled_by_client_id(venue, order_id).values())
    assert sum(f.quantity for f in fills) == pytest.approx(filled)
    book = daemon.daemon.core.execution.book
    assert book.quantity("buyer", SYMBOL) == pytest.approx(venue.position("BTC"))
    resting = [o.quantity for o in daemon.daemon.core.execution.open_orders("buyer")]
    rests = [o.orig_qty - o.executed_qty for o in venue.open_orders()]
    assert resting == pytest.approx(rests)


@pytest.mark.parametrize("quantity", [0.012, 0.005], ids=["larger", "smaller"])
async def test_a_kill_inside_a_replace_with_a_new_quantity_settles_each_revisions_parts_once(
    exchange: LoopbackExchange, quantity: float
) -> None:
    exchange.part_size = 0.004
    config = config_for(exchange)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        exchange.set_price(SYMBOL, 29_000.0)
        await client.recv_type("strategy_trade")  # 0.004 of 0.01, 0.006 rests
    order_id = order.client_order_id.removeprefix("orc-")
    # The kill fell after the journal committed a replace with a new quantity, before
    # its cancel left: the venue still has the old revision, which fills a part more.
    with journal_writable(config) as journal:
        [(resting, _)] = journal.venue_resting_orders("main")
        new = replace(resting, quantity=quantity, limit_price=29_500.0)
        journal.write([OrderReplaced(new, resting, resting.ts + 1.0)])
    exchange.set_price(SYMBOL, 29_000.0)
    exchange.set_price(SYMBOL, 30_000.0)  # above the new limit: the new revision rests
    rest = quantity - 0.004
    async with running_daemon(config) as daemon, daemon.client() as client:
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert (trade["quantity"], trade["remainingQuantity"]) == (
            pytest.approx(0.004),
            pytest.approx(rest),
        )
        revision = f"orc-{order_id}.1"
        await eventually(
            exchange, lambda: [o.client_order_id for o in exchange.open_orders()] == [revision]
        )
        [placed] = exchange.open_orders()
        assert (placed.price, placed.orig_qty) == (29_500.0, pytest.approx(rest))
        await assert_journal_matches_venue(daemon, exchange, order_id)
    exchange.set_price(SYMBOL, 29_400.0)  # the new revision fills a part while down
    async with running_daemon(config) as daemon, daemon.client() as client:
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert trade["quantity"] == pytest.approx(min(rest, 0.004))
        await assert_journal_matches_venue(daemon, exchange, order_id)
        while exchange.open_orders():
            exchange.set_price(SYMBOL, 29_400.0)
            await client.recv_type("strategy_trade")
        await assert_journal_matches_venue(daemon, exchange, order_id)
    async with running_daemon(config) as daemon:  # nothing settled twice
        await assert_journal_matches_venue(daemon, exchange, order_id)
        assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == pytest.approx(
            0.004 + quantity
        )


async def test_a_stop_inside_a_replace_places_the_new_revision_at_the_next_start(
    exchange: LoopbackExchange,
) -> None:
    config = config_for(exchange)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
        order_id = order.client_order_id.removeprefix("orc-")
        exchange.hold_next_revision()
        assert daemon.daemon.core.execution.replace_order("buyer", order_id, limit_price=29_500.0)
        await asyncio.wait_for(exchange.holding.wait(), 10.0)
        # The old order is cancelled on the venue, the new one not booked: the daemon
        # goes away now (a kill would leave the same).
        assert exchange.orders[order.order_id].status == "CANCELED"
    exchange.release()
    assert exchange.open_orders() == []
    async with running_daemon(config) as daemon:
        await eventually(exchange, lambda: exchange.open_orders())
        [new] = exchange.open_orders()
        assert (new.client_order_id, new.price, new.orig_qty) == (
            f"orc-{order_id}.1",
            29_500.0,
            0.01,
        )
        [resting] = daemon.daemon.core.execution.open_orders("buyer")
        assert (resting.id, resting.limit_price) == (order_id, 29_500.0)


async def test_flatten_closes_an_order_still_on_its_way_to_the_venue_once_it_fills(
    exchange: LoopbackExchange,
) -> None:
    before = exchange.position("BTC")
    async with running_daemon(config_for(exchange, MARKET_BUYER)) as daemon:
        async with daemon.client() as client:
            await client.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
            exchange.hold_next_submit()  # booked and filled there, its answer held
            await first_bar(daemon)
            await asyncio.wait_for(exchange.holding.wait(), 5.0)
            assert exchange.position("BTC") == pytest.approx(before + 0.01)
            assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == 0.0
            try:
                async with daemon.client("risk") as risk:
                    await risk.send(
                        {"type": "halt_trading", "reason": "flat", "blockAll": True,
                         "flatten": True}
                    )  # fmt: skip
                    # The buy's fill comes after the flatten (looked up once the answer
                    # is lost), then the order that closes it.
                    bought = (await client.recv_type("strategy_trade"))["data"]
                    sold = (await client.recv_type("strategy_trade"))["data"]
            finally:
                exchange.release()
            assert (bought["side"], bought["status"]) == ("BUY", "FILLED")
            assert (sold["side"], sold["status"], sold["quantity"]) == ("SELL", "FILLED", 0.01)
        assert daemon.daemon.core.execution.book.quantity("buyer", SYMBOL) == 0.0
        journal = await daemon.committed_journal()
        assert journal.rebuild_book().quantity("buyer", SYMBOL) == 0.0
    assert exchange.position("BTC") == pytest.approx(before)
    assert len(exchange.orders) == 2


async def test_a_part_takes_the_fees_of_its_own_trades_when_the_venue_fills_more_meanwhile() -> (
    None
):
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    balances = {"USDT": 100_000.0}
    async with LoopbackExchange(KEY, SECRET, [market], balances, fee_in_base=True) as venue:
        venue.part_size = 0.004
        async with running_daemon(config_for(venue)) as daemon, daemon.client() as client:
            await resting_on_venue(daemon, client, venue)
            filled_meanwhile: list[bool] = []

            def fill_between_the_reads(method: str, endpoint: str) -> None:
                # The order was read with its first part; its trades are read after the
                # venue filled a second one.
                if endpoint == "myTrades" and not filled_meanwhile:
                    filled_meanwhile.append(True)
                    venue.set_price(SYMBOL, 29_000.0)

            venue.on_request = fill_between_the_reads
            venue.set_price(SYMBOL, 29_000.0)
            first = (await client.recv_type("strategy_trade"))["data"]
            second = (await client.recv_type("strategy_trade"))["data"]
            assert (first["quantity"], second["quantity"]) == (0.004, 0.004)
            journal = await daemon.committed_journal()
            ledger = journal.venue_ledger("main")
        assert filled_meanwhile
        assert [entry.fee for entry in ledger] == pytest.approx([0.004 * 0.001] * 2)


async def test_a_start_whose_reconciliation_fails_once_is_tried_again_before_strategies_resume(
    exchange: LoopbackExchange,
) -> None:
    """A rate limit on the start's first signed request: the pass is tried again before
    the strategies resume, so the order resting on the venue is followed there (the
    daemon's own prices through its limit fill nothing) and its fill is told once."""
    config = config_for(exchange)
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
    exchange.rate_limit_next(1)
    async with running_daemon(config) as daemon, daemon.client() as client:
        assert daemon.daemon.venues["main"].unreconciled is None
        daemon.tick(SYMBOL, 29_000.0)  # through the limit, in the daemon only
        [resting] = daemon.daemon.core.execution.open_orders("buyer")
        assert resting.quantity == pytest.approx(0.01)
        exchange.set_price(SYMBOL, 29_000.0)
        trade = (await client.recv_type("strategy_trade"))["data"]
        assert trade["quantity"] == pytest.approx(0.01)
        journal = await daemon.committed_journal()
        fills = journal.fills("buyer")
        assert [f.quantity for f in fills if f.status is FILLED] == pytest.approx([0.01])
    assert exchange.orders[order.order_id].status == "FILLED"
    assert exchange.submissions == 1 and exchange.position("BTC") == pytest.approx(0.01)


async def test_a_start_whose_reconciliation_keeps_failing_restores_its_strategies_as_error(
    exchange: LoopbackExchange,
) -> None:
    """The venue answers but the start's pass keeps failing: its live strategy is restored
    as ERROR with the reason, as when the venue is unreachable, and the daemon's own
    prices do not fill its order; the order is cancelled on the venue once a pass
    succeeds (nothing rests there that nothing follows), and the venue fills nothing."""
    config = config_for(exchange)
    config = config.model_copy(
        update={
            "venues": {
                "main": config.venues["main"].model_copy(update={"start_reconcile_seconds": 0.0})
            }
        }
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        order = await resting_on_venue(daemon, client, exchange)
    exchange.rate_limit_next(1)
    async with running_daemon(config) as daemon:
        restored_in_error(daemon)
        daemon.tick(SYMBOL, 29_000.0)
        await late_start_pass_cancels_the_orphan(daemon)
    assert exchange.orders[order.order_id].status == "CANCELED"
    exchange.set_price(SYMBOL, 29_000.0)
    assert exchange.submissions == 1 and exchange.position("BTC") == 0.0
