"""Resting orders survive a crash: the daemon as a process, killed with SIGKILL.

A strategy (``tests.scripted_strategies:RestingLadder``) holds, in each of two
symbols, a bracket entry's two armed exits, a resting limit entry and a resting
stop entry with its bracket, all far from the synthetic feed's prices; the crash
test's ``Churn`` keeps sending market orders meanwhile, so that order ids keep
being taken. The daemon is killed with SIGKILL at seeded random moments and
started again on the same journal, a few times, then stopped with SIGTERM and
started once more. Each time:

- ``get_open_orders`` lists exactly the orders the clients were told were
  accepted (``order_accepted``), with the same terms, after every restart;
- none of them filled, and the journal holds them as resting;
- no order id was taken twice: no resting order's id is any order's sent to the
  broker after it, no fill id appears twice, no order has two fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from orchestrator.journal.store import Journal
from tests.gateways.test_daemon_process import SERVERS, free_ports, write_config
from tests.test_crash_recovery import spawned

SEED = 20_261_203
KILLS = 3
TRADING_SECONDS = (0.05, 0.5)
LADDER = "ladder"
SYMBOLS = ("AAPL", "MSFT")
ORDERS_PER_SYMBOL = 4
"""The two exits of the market entry's bracket, the limit entry and the stop entry."""

CONFIG = f"""
[nng]
enabled = false

[risk]
max_orders_per_second = 10000
max_daily_loss = 1000000.0

[market_data.feed]
kind = "synthetic"
ticks_per_second = 50.0
history_seconds = 0.0
seed = 5

[[strategies]]
id = "{LADDER}"
name = "Ladder"
kind = "tests.scripted_strategies:RestingLadder"
params = {{ quantity = 1 }}
[strategies.defaults]
symbols = {list(SYMBOLS)!r}
data_resolution = "1s"
max_position_value = 100000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0

[[strategies]]
id = "churn"
name = "Churn"
kind = "tests.crash_strategy:Churn"
params = {{ seed = 3, max_order = 3, max_units = 10 }}
[strategies.defaults]
symbols = ["GOOG"]
data_resolution = "1s"
max_position_value = 100000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0
"""


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` with a requestId; the reply that carries it."""
    request_id = f"r{random.random()}"
    await ws.send(orjson.dumps({**message, "requestId": request_id}).decode())
    async with asyncio.timeout(5.0):
        while True:
            reply: dict[str, Any] = orjson.loads(await ws.recv())
            if reply.get("requestId") == request_id:
                return reply


async def accepted_ladder(ws: ClientConnection) -> dict[str, dict[str, Any]]:
    """Start both strategies and read the ladder's order_accepted messages until every
    order of every symbol is told (so journaled): their data by order id."""
    for strategy in (LADDER, "churn"):
        reply = await request(ws, {"type": "start_strategy", "id": strategy})
        assert reply["type"] == "strategy_started", reply
    told: dict[str, dict[str, Any]] = {}
    gone: set[str] = set()
    async with asyncio.timeout(15.0):
        while len(told) - len(gone) < ORDERS_PER_SYMBOL * len(SYMBOLS):
            message = orjson.loads(await ws.recv())
            data = message.get("data") or {}
            if data.get("strategyId") != LADDER:
                continue
            if message["type"] == "order_accepted":
                # As open_orders lists it: with what its parts filled (none: whole fills).
                shown = {k: v for k, v in data.items() if k != "timestamp"}
                told[data["orderId"]] = shown | {"filled": 0.0}
            elif message["type"] in ("order_triggered", "order_cancelled", "order_expired"):
                gone.add(data["orderId"])
    assert not gone, f"a far order moved: {gone}"
    return told


async def open_orders(url: str) -> dict[str, dict[str, Any]]:
    async with connect(url, open_timeout=5) as ws:
        reply = await request(ws, {"type": "get_open_orders", "strategyId": LADDER})
    assert reply["type"] == "open_orders", reply
    return {order["orderId"]: order for order in reply["data"]["orders"]}


def check_journal(journal_file: Path, resting: dict[str, dict[str, Any]]) -> None:
    with Journal.open_readonly(journal_file) as journal:
        assert {o.id for o in journal.resting_orders() if o.strategy_id == LADDER} == set(resting)
        fills = journal.fills()
        sent = {order.id for order in journal.orders()}
    assert not {f.order_id for f in fills} & set(resting), "a resting order filled"
    assert len({f.id for f in fills}) == len(fills), "a fill id was taken twice"
    filled = Counter(f.order_id for f in fills if f.status.value == "FILLED")
    assert max(filled.values(), default=0) <= 1, "an order filled twice"
    # The exits' and the resting entries' ids were never taken again by a later order.
    assert not sent & set(resting), "a resting order's id was reused"
    assert len(sent) > 10  # churn traded meanwhile: ids were taken after every restart


async def test_resting_orders_and_armed_brackets_survive_kill_9(tmp_path: Path) -> None:
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(CONFIG)
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    journal_file = tmp_path / "state" / "journal.sqlite3"
    rng = random.Random(SEED)
    async with spawned(config) as run:
        await run.wait_ready()
        async with connect(url, open_timeout=5) as ws:
            told = await accepted_ladder(ws)
        purposes = Counter(order["purpose"] for order in told.values())
        assert purposes == {"signal": 4, "stop_loss": 2, "take_profit": 2}
        await asyncio.sleep(rng.uniform(*TRADING_SECONDS))  # churn trades meanwhile
        await run.kill()
    check_journal(journal_file, told)
    for _ in range(KILLS):
        async with spawned(config) as run:
            await run.wait_ready()
            assert await open_orders(url) == told
            await asyncio.sleep(rng.uniform(*TRADING_SECONDS))
            await run.kill()
        check_journal(journal_file, told)
    # A clean stop keeps them too: only the broker's orders are cancelled at shutdown.
    async with spawned(config) as run:
        await run.wait_ready()
        assert await open_orders(url) == told
        assert await run.stop() == 0
        assert run.errors() == []
    check_journal(journal_file, told)
    async with spawned(config) as run:
        await run.wait_ready()
        assert await open_orders(url) == told
        with contextlib.suppress(Exception):
            await run.stop()
