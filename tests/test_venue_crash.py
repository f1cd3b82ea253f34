"""Crash and restart while trading for real: a daemon process whose strategy trades with
``realTrading: true`` on the loopback exchange, killed with SIGKILL again and again.

The loopback exchange runs in this test's process, so it outlives every kill. The
daemon (``python -m gateways run``) trades on almost every tick (``tests.crash_strategy:
Churn`` on BTC/USDT; the venue takes its fees in BTC on buys, and refuses a sell
beyond the balance). It is killed at seeded random moments: while it trades, during
its start-up (reconciliation included) and, in a share of the rounds, between submit
and acknowledgement: the loopback books the order, holds its answer, and the daemon is
killed while it waits. Each time it starts again on the same journal.

What the venue holds is read when the next daemon first calls it (by then every byte
the killed one sent has long been read), and checked against the journal once that
daemon is ready, its start's reconciliation done:

- no duplicate order on the venue: each of its orders carries the client order id of
  exactly one journal order, and no journal order has two fills;
- no venue fill missing from the journal: every order the venue filled has its FILLED
  fill in the journal, of the same quantity;
- the journal's position (its fills, net of the fees the venue took in BTC) equals the
  venue's BTC balance;
- an order the journal had in flight that the venue never received is rejected.

``VENUE_CRASH_KILLS`` sets the number of kills (default 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.journal.store import Journal
from orchestrator.model.orders import FILLED
from tests.gateways.test_daemon_process import SERVERS, clean_env, free_ports, write_config
from tests.test_crash_recovery import REPO, DaemonRun, Recorder, client, wait_for_reply
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

KILLS = int(os.environ.get("VENUE_CRASH_KILLS", "20"))
SEED = 20_250_301
HELD_SHARE = 0.35
"""Share of the rounds killed between submit and acknowledgement."""
EARLY_SHARE = 0.3
"""Share of the rounds killed during start-up (a random moment after the spawn)."""
EARLY_SECONDS = (0.3, 1.5)
TRADING_SECONDS = (0.05, 0.4)
KEY, SECRET = "crash-key", "crash-secret"
PREFIX = "orc-"
STRATEGY = "churn"
SYMBOL = "BTC/USDT"

VENUE_AND_STRATEGY = """
[nng]
enabled = false

[risk]
max_orders_per_second = 10000
max_daily_loss = 1000000000.0
max_gross_exposure = 1000000000.0

[market_data.feed]
kind = "synthetic"
ticks_per_second = 20.0
history_seconds = 0.0
seed = 5
symbols = {{ "BTC/USDT" = 30000.0 }}

[venues.main]
exchange = "binance"
enable_rate_limit = false
poll_interval_seconds = 0.05
timeout_seconds = 0.5
recv_window_ms = 1000
reconcile_interval_seconds = 0.5
api_urls = {{ public = "{url}", private = "{url}", v1 = "{url}" }}

[[strategies]]
id = "churn"
name = "Churn"
kind = "tests.crash_strategy:Churn"
params = {{ seed = 3, max_order = 3, max_units = 6 }}
[strategies.defaults]
symbols = ["BTC/USDT"]
data_resolution = "1s"
max_position_value = 1000000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0
"""


@contextlib.asynccontextmanager
async def spawned(config: Path) -> AsyncIterator[DaemonRun]:
    environment = {
        **clean_env(),
        "PYTHONPATH": str(REPO),
        "ORCHESTRATOR_VENUE_MAIN_API_KEY": KEY,
        "ORCHESTRATOR_VENUE_MAIN_SECRET": SECRET,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
        cwd=REPO,
    )
    run = DaemonRun(proc)
    try:
        yield run
    finally:
        await run.kill()


@dataclass
class VenueSnapshot:
    """The venue's side, read before a new daemon could change it."""

    executed: dict[str, float] = field(default_factory=dict)
    """journal order id -> quantity the venue executed (0: it has the order, unfilled)."""
    btc: float = 0.0


def snapshot(exchange: LoopbackExchange) -> VenueSnapshot:
    ids = [order.client_order_id for order in exchange.orders.values()]
    assert len(ids) == len(set(ids)), "two venue orders with one client order id"
    assert all(i.startswith(PREFIX) for i in ids), ids
    executed = {
        order.client_order_id[len(PREFIX) :]: order.executed_qty
        for order in exchange.orders.values()
    }
    return VenueSnapshot(executed, exchange.position("BTC"))


@dataclass
class Figures:
    kills: int = 0
    held: int = 0
    early: int = 0
    recovered: int = 0
    never_received: int = 0
    checks: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def check(journal: Journal, venue: VenueSnapshot, figures: Figures) -> None:
    """The journal after a restart's reconciliation against the venue before it."""
    fills = journal.fills()
    per_order = Counter(f.order_id for f in fills)
    assert [o for o, n in per_order.items() if n > 1] == [], "an order has two fills"
    orders = {o.id for o in journal.orders()}
    assert set(venue.executed) <= orders, "the venue has an order the journal never made"
    by_order = {f.order_id: f for f in fills}
    for order_id, executed in venue.executed.items():
        fill = by_order.get(order_id)
        assert fill is not None, f"order {order_id} has no outcome after the restart"
        if executed > 0:
            assert fill.status is FILLED, f"the venue filled {order_id}, the journal: {fill}"
            assert math.isclose(fill.quantity, executed), (order_id, fill.quantity, executed)
        else:
            assert fill.status is not FILLED, (order_id, fill)
    for fill in fills:
        if fill.id.startswith("reconciled-") and fill.status is FILLED:
            # Recovered at a start from what the venue said: the venue has it.
            assert fill.order_id in venue.executed, fill
    ledger = [e for e in journal.venue_ledger("main") if e.order_id in venue.executed]
    position = sum(e.signed_quantity for e in ledger)
    fees = sum(e.fee for e in ledger if e.fee_asset == "BTC")
    assert math.isclose(position - fees, venue.btc, abs_tol=1e-9), (position, fees, venue.btc)
    figures.checks += 1


async def test_a_live_daemon_killed_again_and_again_never_doubles_nor_loses_a_venue_order(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    exchange = LoopbackExchange(
        KEY, SECRET, [market], {"USDT": 100_000_000.0}, seed=9, fee_in_base=True
    )
    await exchange.start()
    try:
        await crash_rounds(tmp_path, exchange, started)
    finally:
        await exchange.close()


async def crash_rounds(tmp_path: Path, exchange: LoopbackExchange, started: float) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write('synchronous = "NORMAL"\n')
        handle.write(VENUE_AND_STRATEGY.format(url=exchange.url))
    journal_file = tmp_path / "state" / "journal.sqlite3"
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    rng = random.Random(SEED)
    recorder, figures = Recorder(), Figures()

    for number in range(KILLS + 1):
        last = number == KILLS
        seen = asyncio.get_running_loop().create_future()

        def first_call(
            method: str, endpoint: str, seen: asyncio.Future[VenueSnapshot] = seen
        ) -> None:
            if not seen.done():
                seen.set_result(snapshot(exchange))

        exchange.on_request = first_call
        async with spawned(config) as run:
            held = not last and number > 0 and rng.random() < HELD_SHARE
            early = not last and not held and number > 0 and rng.random() < EARLY_SHARE
            if early:
                await asyncio.sleep(rng.uniform(*EARLY_SECONDS))
                figures.early += not run.ready.is_set()
            else:
                await run.wait_ready()
                venue = await asyncio.wait_for(seen, 5.0)
                if number > 0:
                    with Journal.open_readonly(journal_file) as journal:
                        check(journal, venue, figures)
                request = (
                    {"type": "start_strategy", "id": STRATEGY, "requestId": "start",
                     "config": {"realTrading": True, "venue": "main"}}
                    if number == 0
                    else {"type": "get_active_strategies", "requestId": "active"}
                )  # fmt: skip
                watcher = asyncio.create_task(client(url, recorder, [request]))
                reply = await wait_for_reply(recorder, request["requestId"])
                assert reply["type"] in ("strategy_started", "strategy_status_list"), reply
                if held:
                    exchange.hold_next_submit()
                    await asyncio.wait_for(exchange.holding.wait(), 10.0)
                    figures.held += 1
                else:
                    await asyncio.sleep(rng.uniform(*TRADING_SECONDS))
            if last:
                assert await run.stop() == 0
            else:
                assert await run.kill() == -signal.SIGKILL, run.last_words()
                figures.kills += 1
            exchange.release()
            if not early:
                await watcher
            assert run.errors() == [], run.errors()
            figures.reasons.update(
                str(e.get("reason")) for e in run.logs if e.get("event") == "order_rejected"
            )
            figures.never_received += sum(
                "never received" in str(e.get("reason"))
                for e in run.logs
                if e.get("event") == "venue_order_reconciled"
            )

    final = snapshot(exchange)
    with Journal.open_readonly(journal_file) as journal:
        check(journal, final, figures)
        assert journal.unfilled_venue_orders() == [], "a clean stop leaves nothing in flight"
        fills = journal.fills()
        filled = sum(f.status is FILLED for f in fills)
        figures.recovered = sum(
            f.id.startswith("reconciled-") and f.status is FILLED for f in fills
        )
    elapsed = time.monotonic() - started
    print(
        f"\nvenue crash: {figures.kills} SIGKILLs ({figures.held} between submit and "
        f"acknowledgement, {figures.early} before ready) in {elapsed:.1f} s; venue orders "
        f"{len(final.executed)}, journal fills FILLED {filled}, recovered at start "
        f"{figures.recovered}, never received {figures.never_received}; checks {figures.checks}"
    )
    assert figures.kills >= min(KILLS, 20)
    assert figures.held > 0 and figures.recovered > 0, "no kill fell between submit and ack"
    # How many depends on the machine's load (the rounds are short); at least one a kill.
    assert filled >= KILLS, "too few fills to say much"
