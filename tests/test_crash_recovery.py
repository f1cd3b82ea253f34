"""Crash and restart, for real: the daemon as a process, killed with SIGKILL.

The daemon (``python -m gateways run``) trades fast on a synthetic feed: a
strategy that sends an order on almost every tick of three symbols
(``tests.crash_strategy:Churn``) and one that enters or exits on every 1-second
bar (``tests.scripted_strategies:AlwaysEnter``). A WebSocket client starts both
once and records every ``strategy_trade`` it is told. The daemon is then killed
with SIGKILL at seeded random moments (some during its start-up: imports,
journal recovery, restore; most while it trades) and started again with the
same config, each time; the client reconnects and keeps recording, but never
starts anything again: the journal brings the strategies back ACTIVE.

After every kill the journal is read (read-only) as the crash left it, and at
the end, after a clean SIGTERM:

- every trade a client was told of is in the journal, with the same content;
- no fill id appears twice, and no order has more than one fill;
- the orders left without a fill at a kill, and only they, get one REJECTED
  ``restart-<order id>`` fill at the next start, all at once, never twice;
- the positions rebuilt from the journal equal the signed sum of its FILLED
  fills, with average entry prices and realized P&L recomputed here
  independently, and equal the position snapshots the daemon journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from orchestrator.journal.store import RESTART_FILL_PREFIX, Journal
from orchestrator.model.orders import Fill, TradeStatus
from tests.gateways.test_daemon_process import SERVERS, clean_env, free_ports, write_config
from tests.support import recovered_journal

SEED = 20_240_611
KILLS = {"FULL": 20, "NORMAL": 20}
"""SIGKILLs per durability mode (``journal.synchronous``); both claim to survive a
process crash. NORMAL tells trades once they are in the redo log, before SQLite
commits them, so its kills test the redo at the next open too."""
EARLY_KILL_SHARE = 0.3
"""Share of kills aimed at start-up: a random moment after the process is spawned."""
EARLY_KILL_SECONDS = (0.1, 1.2)
TRADING_KILL_SECONDS = (0.05, 0.7)
"""After the daemon is ready and the client connected."""
FINAL_RUN_SECONDS = 1.0
STARTUP_TIMEOUT = 15.0
REPO = Path(__file__).resolve().parent.parent
RESTART_REASON = "daemon restarted before the order filled"
CHURN, FLIPPER = "churn", "flipper"
STRATEGIES = (CHURN, FLIPPER)

FEED_AND_STRATEGIES = f"""
[nng]
enabled = false

[risk]
max_orders_per_second = 10000     # the checks run; the daemon-wide rate never trips
max_daily_loss = 1000000.0

[market_data.feed]
kind = "synthetic"
ticks_per_second = 50.0
history_seconds = 0.0
seed = 11

[[strategies]]
id = "{CHURN}"
name = "Churn"
kind = "tests.crash_strategy:Churn"
params = {{ seed = 3, max_order = 3, max_units = 10 }}
[strategies.defaults]
symbols = ["AAPL", "MSFT", "GOOG"]
data_resolution = "1s"
max_position_value = 100000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0

[[strategies]]
id = "{FLIPPER}"
name = "Flipper"
kind = "tests.scripted_strategies:AlwaysEnter"
[strategies.defaults]
symbols = ["AAPL", "GOOG"]
data_resolution = "1s"
max_position_value = 10000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0
"""


# ---------------------------------------------------------------- the daemon process


class DaemonRun:
    """One daemon process; its JSON log lines are read as they come (so that a
    full stderr pipe never stalls it)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.logs: list[dict[str, Any]] = []
        self.other: list[bytes] = []
        """stderr lines that are not JSON log lines (a traceback)."""
        self.ready = asyncio.Event()
        self.reader = asyncio.create_task(self._read(), name="daemon-log-reader")

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.strip()
            if not line.startswith(b"{"):
                self.other.append(line)
                continue
            entry = orjson.loads(line)
            self.logs.append(entry)
            if entry.get("event") == "daemon_ready":
                self.ready.set()

    async def wait_ready(self) -> None:
        waiter = asyncio.create_task(self.ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        async with asyncio.timeout(STARTUP_TIMEOUT):
            await asyncio.wait((waiter, exited), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        exited.cancel()
        assert self.ready.is_set(), f"daemon exited before it was ready: {self.last_words()}"

    async def kill(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        code = await self.proc.wait()
        await self.reader
        return code

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15.0):
            code = await self.proc.wait()
            await self.reader
        return code

    def last_words(self) -> str:
        return f"{self.logs[-5:]} {b' '.join(self.other[-20:]).decode(errors='replace')}"

    def resolved_orders(self) -> list[str]:
        return [e["order_id"] for e in self.logs if e.get("event") == "journal_order_resolved"]

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("level") in ("error", "critical")]


@contextlib.asynccontextmanager
async def spawned(config: Path) -> AsyncIterator[DaemonRun]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**clean_env(), "PYTHONPATH": str(REPO)},  # tests.* strategies importable
        cwd=REPO,
    )
    run = DaemonRun(proc)
    try:
        yield run
    finally:
        await run.kill()


# ---------------------------------------------------------------- the client


@dataclass
class Recorder:
    """Every strategy_trade a client was told of, by trade id."""

    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: int = 0
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    replied: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, message: dict[str, Any]) -> None:
        self.messages += 1
        if "requestId" in message:
            self.replies[message["requestId"]] = message
            self.replied.set()
        if message["type"] != "strategy_trade":
            return
        data = message["data"]
        seen = self.trades.setdefault(data["id"], data)
        assert seen == data, f"trade {data['id']} told twice with different content"


async def client(url: str, recorder: Recorder, requests: list[dict[str, Any]]) -> None:
    """Send ``requests``, then record everything until the daemon goes away (a kill
    during the opening handshake cuts it short: InvalidHandshake)."""
    with contextlib.suppress(ConnectionClosed, InvalidHandshake, OSError):
        async with connect(url, open_timeout=5) as ws:
            for request in requests:
                await ws.send(orjson.dumps(request).decode())
            async for raw in ws:
                recorder.record(orjson.loads(raw))


async def wait_for_reply(recorder: Recorder, request_id: str) -> dict[str, Any]:
    async with asyncio.timeout(5.0):
        while request_id not in recorder.replies:
            recorder.replied.clear()
            await recorder.replied.wait()
    return recorder.replies[request_id]


# ---------------------------------------------------------------- the journal


@dataclass
class Resolutions:
    """Orders left unfilled at each kill, and their restart fills."""

    pending: set[str] = field(default_factory=set)
    """Orders the journal had no fill for at the last kill."""
    resolved: set[str] = field(default_factory=set)
    """Orders with a restart fill so far."""
    resolved_at_start: list[int] = field(default_factory=list)

    def check(self, journal: Journal) -> None:
        """After a run: its restart fills resolve exactly the orders pending before it."""
        fills = journal.fills()
        restart = [f for f in fills if f.id.startswith(RESTART_FILL_PREFIX)]
        by_order = {f.order_id: f for f in restart}
        assert len(by_order) == len(restart), "an order was resolved twice"
        new = set(by_order) - self.resolved
        assert new <= self.pending, f"resolved orders that were not pending: {new - self.pending}"
        # One transaction: all of them or (killed before it committed) none.
        assert new in (set(), self.pending), f"only {len(new)} of {len(self.pending)} resolved"
        orders = {o.id: o for o in journal.orders()}
        for order_id in new:
            fill, order = by_order[order_id], orders[order_id]
            assert fill.id == RESTART_FILL_PREFIX + order_id
            assert fill.status is TradeStatus.REJECTED and fill.reason == RESTART_REASON
            assert (fill.strategy_id, fill.symbol, fill.side, fill.quantity) == (
                order.strategy_id,
                order.symbol,
                order.side,
                order.quantity,
            )
        if new:
            self.resolved_at_start.append(len(new))
        self.resolved |= new
        self.pending = {o.id for o in journal.unfilled_orders()}


def check_told_trades_are_journaled(journal: Journal, recorder: Recorder) -> None:
    fills = {f.id: f for f in journal.fills()}
    missing = sorted(set(recorder.trades) - set(fills))
    assert not missing, f"{len(missing)} trades told to the client are not journaled: {missing}"
    for trade_id, told in recorder.trades.items():
        fill = fills[trade_id]
        assert (
            told["strategyId"],
            told["orderId"],
            told["symbol"],
            told["side"],
            told["quantity"],
            told["entryPrice"],
            told["status"],
        ) == (
            fill.strategy_id,
            fill.order_id,
            fill.symbol,
            fill.side.value,
            fill.quantity,
            fill.price,
            fill.status.value,
        ), trade_id


def check_no_fill_twice(journal: Journal) -> None:
    fills = journal.fills()
    ids = Counter(f.id for f in fills)
    assert [i for i, n in ids.items() if n > 1] == []
    per_order = Counter(f.order_id for f in fills)
    assert [o for o, n in per_order.items() if n > 1] == [], "an order has two fills"


@dataclass
class Expected:
    """One position recomputed from the fills, independently of PortfolioBook."""

    quantity: float = 0.0
    entry_price: float = 0.0
    realized_pnl: float = 0.0

    def apply(self, fill: Fill) -> None:
        signed = fill.quantity if fill.side.value == "BUY" else -fill.quantity
        held = self.quantity
        if held == 0 or (held > 0) == (signed > 0):  # open, or add at the average cost
            cost = abs(held) * self.entry_price + abs(signed) * fill.price
            self.quantity = held + signed
            self.entry_price = cost / abs(self.quantity)
        else:
            closed = min(abs(signed), abs(held))
            direction = 1.0 if held > 0 else -1.0
            self.realized_pnl += closed * (fill.price - self.entry_price) * direction
            self.quantity = held + signed
            if self.quantity == 0:
                self.entry_price = 0.0
            elif (self.quantity > 0) != (held > 0):  # reversed: the rest opens at the fill
                self.entry_price = fill.price
        self.realized_pnl -= fill.commission


def check_positions(journal: Journal) -> dict[tuple[str, str], Expected]:
    expected: dict[tuple[str, str], Expected] = defaultdict(Expected)
    for fill in journal.fills():
        if fill.status is TradeStatus.FILLED:
            expected[(fill.strategy_id, fill.symbol)].apply(fill)
    book = journal.rebuild_book()
    rebuilt = {
        (strategy_id, position.symbol): position
        for strategy_id in book.strategy_ids()
        for position in book.portfolio(strategy_id)
    }
    assert set(rebuilt) == set(expected)
    snapshots = {(s.strategy_id, s.symbol): s for s in journal.positions()}
    assert set(snapshots) == set(expected)
    for key, want in expected.items():
        got, snapshot = rebuilt[key], snapshots[key]
        assert got.quantity == want.quantity == snapshot.quantity, key
        assert math.isclose(got.entry_price, want.entry_price, rel_tol=1e-9), key
        assert math.isclose(snapshot.entry_price, want.entry_price, rel_tol=1e-9), key
        assert math.isclose(got.realized_pnl, want.realized_pnl, rel_tol=1e-9, abs_tol=1e-6), key
        assert math.isclose(snapshot.realized_pnl, want.realized_pnl, rel_tol=1e-9, abs_tol=1e-6), (
            key
        )
    return expected


# ---------------------------------------------------------------- the test


@dataclass
class Figures:
    kills: int = 0
    kills_in_startup: int = 0
    runs: int = 0
    redone_fills: int = 0
    """Fills a kill left in the redo log only, which the next open wrote into SQLite."""


def committed_fills(journal_file: Path) -> int:
    """Fills SQLite has, before the next start redoes the redo log."""
    with Journal.open_readonly(journal_file) as journal:
        return journal.counts()["fills"]


async def run_and_kill(
    config: Path, url: str, recorder: Recorder, rng: random.Random, first: bool, figures: Figures
) -> DaemonRun:
    """Start the daemon, trade for a random while (or not even reach ready), SIGKILL it."""
    async with spawned(config) as run:
        figures.runs += 1
        early = not first and rng.random() < EARLY_KILL_SHARE
        if early:
            await asyncio.sleep(rng.uniform(*EARLY_KILL_SECONDS))
            figures.kills_in_startup += not run.ready.is_set()
        else:
            await run.wait_ready()
            requests = (
                [
                    {"type": "start_strategy", "id": sid, "requestId": f"start-{sid}"}
                    for sid in STRATEGIES
                ]
                if first
                else [{"type": "get_active_strategies", "requestId": "active"}]
            )
            watcher = asyncio.create_task(client(url, recorder, requests))
            if first:
                for sid in STRATEGIES:
                    reply = await wait_for_reply(recorder, f"start-{sid}")
                    assert reply["type"] == "strategy_started", reply
            await asyncio.sleep(rng.uniform(*TRADING_KILL_SECONDS))
        code = await run.kill()
        if not early:
            await watcher
        assert code == -signal.SIGKILL, f"the daemon exited by itself ({code}): {run.last_words()}"
        figures.kills += 1
        assert run.errors() == []
        if "active" in recorder.replies:  # the client asked before the kill
            check_restored(recorder.replies.pop("active"))
        return run


def check_restored(reply: dict[str, Any]) -> None:
    """Both strategies run again after a restart, started by nobody."""
    assert reply["type"] == "strategy_status_list", reply
    statuses = {s["id"]: s["status"] for s in reply["data"]}
    assert statuses == dict.fromkeys(STRATEGIES, "ACTIVE"), reply


@pytest.mark.parametrize("synchronous", sorted(KILLS))
async def test_every_told_trade_survives_sigkill_and_positions_are_the_fills(
    tmp_path: Path, synchronous: str
) -> None:
    started = time.monotonic()
    ports = dict(zip(SERVERS, free_ports(3), strict=True))
    config = write_config(tmp_path, ports)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'synchronous = "{synchronous}"\n')  # write_config ends in [journal]
        handle.write(FEED_AND_STRATEGIES)
    journal_file = tmp_path / "state" / "journal.sqlite3"
    url = f"ws://127.0.0.1:{ports['orchestrator']}/"
    rng = random.Random(SEED)
    recorder, resolutions, figures = Recorder(), Resolutions(), Figures()
    logged_resolutions: Counter[str] = Counter()

    for number in range(KILLS[synchronous]):
        run = await run_and_kill(config, url, recorder, rng, number == 0, figures)
        logged_resolutions.update(run.resolved_orders())
        before = committed_fills(journal_file)
        with recovered_journal(journal_file) as journal:
            figures.redone_fills += journal.counts()["fills"] - before
            resolutions.check(journal)
            check_told_trades_are_journaled(journal, recorder)
            check_no_fill_twice(journal)
        if number == 0:
            assert recorder.trades, "the first run traded nothing before the kill"

    # The last start: the strategies are back without anyone starting them.
    async with spawned(config) as run:
        figures.runs += 1
        await run.wait_ready()
        watcher = asyncio.create_task(
            client(url, recorder, [{"type": "get_active_strategies", "requestId": "last"}])
        )
        reply = await wait_for_reply(recorder, "last")
        check_restored(reply)
        told_before = len(recorder.trades)
        await asyncio.sleep(FINAL_RUN_SECONDS)
        assert len(recorder.trades) > told_before, "the restored strategies do not trade"
        assert await run.stop() == 0
        await watcher
        logged_resolutions.update(run.resolved_orders())
        assert run.errors() == []

    with Journal.open_readonly(journal_file) as journal:
        resolutions.check(journal)
        assert resolutions.pending == set(), "a clean stop leaves no order without a fill"
        check_told_trades_are_journaled(journal, recorder)
        check_no_fill_twice(journal)
        positions = check_positions(journal)
        fills = journal.fills()
        orders = journal.orders()
    assert {f.order_id for f in fills} >= {o.id for o in orders}
    assert [o for o, n in logged_resolutions.items() if n > 1] == [], "resolved twice"
    assert set(logged_resolutions) <= resolutions.resolved
    assert resolutions.resolved, "no kill left an order unfilled: the rule went untested"

    told = Counter(t["status"] for t in recorder.trades.values())
    journaled = Counter(f.status.value for f in fills)
    elapsed = time.monotonic() - started
    print(
        f"\ncrash recovery ({synchronous}): {figures.kills} SIGKILLs "
        f"({figures.kills_in_startup} before the daemon was ready) over {figures.runs} runs "
        f"in {elapsed:.1f} s; trades told to the client {len(recorder.trades)} "
        f"({told['FILLED']} FILLED); fills journaled "
        f"{len(fills)} ({journaled['FILLED']} FILLED, {journaled['REJECTED']} REJECTED) for "
        f"{len(orders)} orders; orders resolved as restart- rejections "
        f"{len(resolutions.resolved)} (at {len(resolutions.resolved_at_start)} starts); "
        f"positions checked {len(positions)}; fills only in the redo log at a kill, "
        f"redone at the next open {figures.redone_fills}"
    )
    assert told["FILLED"] >= 100, "too few trades to say much"
