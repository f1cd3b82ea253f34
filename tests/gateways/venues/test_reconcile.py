"""Reconciliation with the loopback exchange: what the venue did while the daemon was
down is journaled and told once, orders it never had are resolved, orphans are
cancelled, and a balance that is not the journal's makes the strategies trading it
reduce-only until an operator acknowledges it (3002, 8082 and the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.client.commands import main_async
from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from orchestrator.journal.store import Journal
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import Event, OrderSubmitted, PositionMismatch, TradeExecuted
from orchestrator.model.orders import BUY, FILLED, Order, OrderPurpose, TradeStatus
from tests.gateways.venues.test_live_trading import (
    KEY,
    LIVE,
    SECRET,
    SYMBOL,
    credentials,
    exchange,
    first_bar,
    live_config,
    start_live,
)
from tests.support import START, Client, TestDaemon
from tests.venues.loopback_exchange import LoopbackExchange
from tests.venues.test_loopback_exchange import plain_binance

__all__ = ["credentials", "exchange"]  # the live-trading tests' fixtures


@contextlib.asynccontextmanager
async def daemon_watched(
    config: DaemonConfig, told: list[Event] | None = None
) -> AsyncIterator[TestDaemon]:
    """A daemon whose committed events (what clients are told) are kept in ``told``,
    from before its start: reconciliation happens during the start."""
    clock = ManualClock(START)
    daemon = Daemon(config, clock=clock)
    if told is not None:
        daemon.outbox.subscribe(told.append)
    await daemon.start()
    try:
        yield TestDaemon(daemon, clock)
    finally:
        await daemon.stop()


async def reply_and_event(
    client: Client, request_id: str, kind: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reply to ``request_id`` and the next ``kind`` message, whichever comes first."""
    reply = event = None
    async with asyncio.timeout(5.0):
        while reply is None or event is None:
            message = await client.recv()
            if message.get("requestId") == request_id:
                reply = message
            elif message["type"] == kind:
                event = message
    return reply, event


def trades(told: list[Event]) -> list[TradeExecuted]:
    return [event for event in told if isinstance(event, TradeExecuted)]


def journal_of(config: DaemonConfig) -> Journal:
    assert config.journal.state_dir is not None
    return Journal.open_readonly(config.journal.state_dir / config.journal.file_name)


def journal_order(config: DaemonConfig, order: Order, venue: str = "main") -> None:
    """An order the journal sent to ``venue`` and holds no outcome for: as a crash
    between the journal's commit and the venue's answer leaves it."""
    assert config.journal.state_dir is not None
    path = config.journal.state_dir / config.journal.file_name
    with Journal.open(path, "NORMAL") as journal:
        journal.write([OrderSubmitted(order, venue)])


def an_order(order_id: str = "order_000001", ts: float = START - 100.0) -> Order:
    return Order(order_id, "buyer", SYMBOL, BUY, 0.01, ts, OrderPurpose.SIGNAL)


async def test_a_fill_made_while_the_daemon_was_down_is_journaled_and_told_once(
    exchange: LoopbackExchange,
) -> None:
    config = live_config(exchange)
    async with daemon_watched(config) as daemon, daemon.client() as client:
        await start_live(client)
        exchange.hold_next_submit()
        await first_bar(daemon)
        # The venue has the order and filled it; its answer never reaches the daemon,
        # and the venue goes away before the stop could look it up (as after a crash).
        await asyncio.wait_for(exchange.holding.wait(), 5.0)
        await exchange.go_down()
    exchange.release()
    await exchange.come_back()
    [venue_order] = exchange.orders.values()
    assert venue_order.status == "FILLED"
    with journal_of(config) as journal:
        assert [o.id for o in journal.unfilled_orders()] == []  # not resolved as paper
        [(venue, pending)] = journal.unfilled_venue_orders()
        assert (venue, pending.id) == ("main", "order_000001")

    told: list[Event] = []
    async with daemon_watched(config, told) as daemon, daemon.client() as client:
        [trade] = trades(told)
        fill = trade.fill
        assert (fill.id, fill.order_id, fill.status) == (
            "reconciled-order_000001",
            "order_000001",
            FILLED,
        )
        assert (fill.quantity, fill.price) == (0.01, float(venue_order.fills[0]["price"]))
        assert trade.change is not None and trade.change.quantity_after == 0.01
        [status] = client.snapshot[1]["data"]
        assert status["positions"][0]["quantity"] == 0.01
        reply = await client.request({"type": "get_venue_status"})
        [venue_status] = reply["data"]["venues"]
        last = venue_status["lastReconciliation"]
        assert (last["ordersChecked"], last["fillsRecovered"], last["atStart"]) == (1, 1, True)
        assert venue_status["mismatches"] == [] and venue_status["takesOrders"] is True
        assert venue_status["positions"] == {"BTC": 0.01}
    told.clear()
    async with daemon_watched(config, told):
        assert trades(told) == []  # a second start finds nothing left to tell
    with journal_of(config) as journal:
        assert [(f.order_id, f.status) for f in journal.fills()] == [("order_000001", FILLED)]
    assert exchange.submissions == 1


async def test_an_order_the_venue_never_received_is_rejected(exchange: LoopbackExchange) -> None:
    config = live_config(exchange)
    journal_order(config, an_order())
    told: list[Event] = []
    async with daemon_watched(config, told):
        [trade] = trades(told)
    assert trade.fill.status is TradeStatus.REJECTED
    assert trade.fill.reason is not None and "never received the order" in trade.fill.reason
    assert exchange.orders == {}


async def test_an_order_still_open_on_the_venue_is_cancelled_then_resolved(
    exchange: LoopbackExchange,
) -> None:
    config = live_config(exchange)
    journal_order(config, an_order())
    binance = plain_binance(exchange, KEY, SECRET)
    try:  # resting far below the price: open when the daemon starts
        await binance.create_order(
            SYMBOL, "limit", "buy", 0.01, 20_000.0, {"clientOrderId": "orc-order_000001"}
        )
        await binance.create_order(
            SYMBOL, "limit", "buy", 0.01, 20_000.0, {"clientOrderId": "orc-order_000999"}
        )
    finally:
        await binance.close()
    told: list[Event] = []
    async with daemon_watched(config, told) as daemon:
        [trade] = trades(told)
        report = daemon.daemon.reconcilers["main"].last
    assert trade.fill.status is TradeStatus.REJECTED
    assert trade.fill.reason is not None and "the order was canceled" in trade.fill.reason
    assert exchange.open_orders() == []  # the orphan (no such order in the journal) too
    assert report is not None and report.orphans_cancelled == 1


async def test_a_position_mismatch_makes_the_strategy_reduce_only_until_acknowledged(
    exchange: LoopbackExchange,
) -> None:
    config = live_config(exchange)
    async with (
        daemon_watched(config) as daemon,
        daemon.client() as client,
        daemon.client("risk") as risk,
    ):
        await start_live(client)
        await first_bar(daemon)
        assert (await client.recv_type("strategy_trade"))["data"]["status"] == "FILLED"
        reconciler = daemon.daemon.reconcilers["main"]
        await reconciler.periodic()
        assert reconciler.mismatches == {}
        exchange.balances["BTC"][0] += 0.5  # someone traded on the account
        await reconciler.periodic()
        mismatch = (await risk.recv_type("position_mismatch"))["data"]
        assert (mismatch["asset"], mismatch["expected"], mismatch["action"]) == (
            "BTC",
            pytest.approx(0.01),
            "REDUCE_ONLY",
        )
        assert mismatch["actual"] == pytest.approx(0.51) and mismatch["strategies"] == ["buyer"]
        status = await risk.recv_type("execution_service_status")
        assert status["data"]["venues"][0]["mismatches"] == ["BTC"]
        assert daemon.daemon.core.risk.restriction("buyer") is not None
        await reconciler.periodic()  # the same mismatch again: not told twice
        await risk.send({"type": "acknowledge_mismatch", "venue": "main", "requestId": "ack"})
        ack, told = await reply_and_event(risk, "ack", "position_mismatch")
        assert ack["type"] == "mismatch_acknowledged"
        assert ack["data"]["acknowledged"][0]["asset"] == "BTC"
        assert told["data"]["action"] == "ACKNOWLEDGED"
        assert daemon.daemon.core.risk.restriction("buyer") is None
        again = await risk.request({"type": "acknowledge_mismatch", "venue": "main"})
        assert again["data"]["code"] == "no_mismatch"
        await reconciler.periodic()
        assert reconciler.mismatches == {}  # the venue's balance is the truth now
    async with daemon_watched(config) as daemon:  # and stays so after a restart
        assert daemon.daemon.reconcilers["main"].mismatches == {}
        assert daemon.daemon.reconcilers["main"].baselines == {"BTC": pytest.approx(0.5)}


async def test_a_reduce_only_strategy_has_its_entries_refused(
    exchange: LoopbackExchange,
) -> None:
    config = live_config(exchange)
    async with daemon_watched(config) as daemon, daemon.client("risk") as risk:
        await risk.request({"type": "start_strategy", "id": "buyer", "config": LIVE})
        reconciler = daemon.daemon.reconcilers["main"]
        await reconciler.periodic()  # the baseline: 0 BTC
        exchange.balances["BTC"] = [0.2, 0.0]
        await reconciler.periodic()
        await risk.recv_type("position_mismatch")
        await first_bar(daemon)
        refused = (await risk.recv_type("order_rejected"))["data"]
        assert refused["limit"] == "positionMismatch"
        assert "only orders that reduce a position pass" in refused["reason"]
    assert exchange.submissions == 0


async def test_a_mismatch_found_by_the_periodic_check_is_told(exchange: LoopbackExchange) -> None:
    config = live_config(exchange, reconcile_interval_seconds=0.05)
    assert config.journal.state_dir is not None
    with Journal.open(config.journal.state_dir / config.journal.file_name, "NORMAL") as journal:
        journal.add_venue_baselines("main", {"BTC": 0.0}, "an earlier run", START - 10)
    exchange.balances["BTC"] = [0.4, 0.0]
    async with daemon_watched(config) as daemon, daemon.client() as client:
        await start_live(client)
        event = await daemon.next_event(lambda e: isinstance(e, PositionMismatch))
    assert isinstance(event, PositionMismatch)
    assert (event.asset, event.expected, event.actual) == ("BTC", 0.0, pytest.approx(0.4))
    assert event.strategies == ("buyer",)


async def test_venue_status_from_the_command_line(
    exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    config = live_config(exchange)
    async with daemon_watched(config) as daemon, daemon.client() as client:
        await start_live(client)
        await first_bar(daemon)
        await client.recv_type("strategy_trade")
        reconciler = daemon.daemon.reconcilers["main"]
        await reconciler.periodic()
        exchange.balances["BTC"][0] += 0.25
        await reconciler.periodic()
        url = daemon.url()
        assert await main_async(["venue", "status", "--url", url]) == 0
        shown = capsys.readouterr().out
        assert "venue main (binance): connected, takes orders" in shown
        assert "reconciled" in shown and "MISMATCH BTC" in shown and "reduce-only: buyer" in shown
        assert await main_async(["venue", "acknowledge", "main", "--url", url]) == 0
        assert "acknowledged main BTC" in capsys.readouterr().out
        assert await main_async(["venue", "status", "--url", url, "--json"]) == 0
        assert '"mismatches": []' in capsys.readouterr().out
        assert await main_async(["venue", "acknowledge", "main", "--url", url]) == 1
        assert "no_mismatch" in capsys.readouterr().err
