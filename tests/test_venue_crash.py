"""Crash and restart while trading for real: a daemon process whose strategy trades with
``realTrading: true`` on the loopback exchange, killed with SIGKILL again and again.

The loopback exchange runs in this test's process, so it outlives every kill. Each
time the daemon (``python -m gateways run``) starts again on the same journal. Two
scenarios share the rounds (:func:`crash_rounds`): in a share of the rounds it is
killed during its start-up (reconciliation included), else once it trades, at a moment
its scenario picks (:class:`Scenario`).

**Market orders** (:class:`MarketOrders`): ``tests.crash_strategy:Churn`` trades on
almost every tick of a synthetic feed (the venue takes its fees in BTC on buys, and
refuses a sell beyond the balance), killed while it trades or, in a share of the
rounds, between submit and acknowledgement: the loopback books the order, holds its
answer, and the daemon is killed while it waits. What the venue holds is read when the
next daemon first calls it (by then every byte the killed one sent has long been
read), and checked against the journal once that daemon is ready, its start's
reconciliation done:

- no duplicate order on the venue: each of its orders carries the client order id of
  exactly one journal order, and no journal order has two fills;
- no venue fill missing from the journal: every order the venue filled has its FILLED
  fill in the journal, of the same quantity;
- the journal's position (its fills, net of the fees the venue took in BTC) equals the
  venue's BTC balance;
- an order the journal had in flight that the venue never received is rejected.

**Resting orders** (:class:`RestingOrders`): ``tests.crash_strategy:RestingChurn``
trades on the venue's own tape (a ``ccxt`` feed; the loopback prints a trade every
``TAPE_SECONDS`` while the daemon trades): market orders, GTC limit orders that rest
on the venue and fill there in parts of seeded sizes as the price moves through them,
marketable IOC limits (a part at once, the rest expires), cancels and replaces (a
cancel and a new revision, ``….1``; half of them with a new quantity, larger or
smaller). It is killed
at seeded moments: between submit and acknowledgement, inside a replace (the new
revision held before the venue books it: the old one is cancelled, the new one not
there), while an order is partly filled, while several rest, or at a random moment.
While it is down the tape prints a few trades (resting orders fill further). After
each restart, with the tape still, the journal is read and then the venue (the venue
can only be ahead), and these hold at every read:

- each venue order carries the client order id of one journal order, and a revision no
  later than the journal's replaces of it (so each maps to one order and revision);
- no order's journaled fills, nor their fees, exceed what the venue filled of it (over
  its revisions) and charged for it, and none has two final fills: nothing filled or
  counted twice;
- no order has two revisions open on the venue;

and these once the daemon has settled what it found (it is given time):

- every venue fill is in the journal: per order, the sum of its journaled parts equals
  what the venue filled of it, their fees what it charged;
- the journal's position net of its BTC fees equals the venue's BTC balance;
- the orders open on the venue are exactly the journal's resting orders on it, each
  with the journal's remaining quantity, and no other order is in flight.

``VENUE_CRASH_KILLS`` sets the number of kills of each scenario (default 20);
``VENUE_CRASH_NEW_QUANTITY_SHARE`` the share of replaces that change the quantity
(default 0.5).
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
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from orchestrator.journal.store import Journal
from orchestrator.model.orders import FILLED
from tests.gateways.test_daemon_process import SERVERS, clean_env, free_ports, write_config
from tests.test_crash_recovery import REPO, DaemonRun, Recorder, client, wait_for_reply
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

KILLS = int(os.environ.get("VENUE_CRASH_KILLS", "20"))
NEW_QUANTITY_SHARE = float(os.environ.get("VENUE_CRASH_NEW_QUANTITY_SHARE", "0.5"))
"""Share of the resting round's replaces that change the quantity (larger or smaller)."""
SEED = 20_250_301
HELD_SHARE = 0.35
"""Share of the rounds killed between submit and acknowledgement (market orders)."""
EARLY_SHARE = 0.3
"""Share of the rounds killed during start-up (a random moment after the spawn)."""
EARLY_SECONDS = (0.3, 1.5)
TRADING_SECONDS = (0.05, 0.4)
KEY, SECRET = "crash-key", "crash-secret"
PREFIX = "orc-"
STRATEGY = "churn"
SYMBOL = "BTC/USDT"
VENUE = "main"

RISK_AND_VENUE = """
[nng]
enabled = false

[risk]
max_orders_per_second = 10000
max_daily_loss = 1000000000.0
max_gross_exposure = 1000000000.0

[venues.main]
exchange = "binance"
enable_rate_limit = false
poll_interval_seconds = 0.05
timeout_seconds = 0.5
recv_window_ms = 1000
reconcile_interval_seconds = 0.5
api_urls = {{ public = "{url}", private = "{url}", v1 = "{url}" }}
"""

STRATEGY_TEMPLATE = """
[[strategies]]
id = "churn"
name = "Churn"
kind = "tests.crash_strategy:{kind}"
params = {{ {params} }}
[strategies.defaults]
symbols = ["BTC/USDT"]
data_resolution = "1s"
max_position_value = 1000000.0
max_orders_per_minute = 10000
stop_loss_percentage = 0.0
"""

SYNTHETIC_FEED = """
[market_data.feed]
kind = "synthetic"
ticks_per_second = 20.0
history_seconds = 0.0
seed = 5
symbols = { "BTC/USDT" = 30000.0 }
"""

VENUE_FEED = """
[market_data.feed]
kind = "ccxt"
venue = "main"
symbols = ["BTC/USDT"]
interval_seconds = 0.05
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
    except BaseException:
        kept = config.parent / f"daemon-{proc.pid}.jsonl"
        kept.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in run.logs))
        print(f"\nthe failing round's daemon log: {kept}")
        raise
    finally:
        await run.kill()


@dataclass
class Figures:
    kills: int = 0
    held: int = 0
    early: int = 0
    recovered: int = 0
    never_received: int = 0
    reconcile_failures: int = 0
    """Start or periodic passes that failed (each is tried again)."""
    checks: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    moments: Counter[str] = field(default_factory=Counter)
    """How many kills fell at each moment a scenario waits for."""
    missed: Counter[str] = field(default_factory=Counter)
    """Moments waited for in vain (killed at the deadline instead)."""


EARLY = "start-up"


class Scenario:
    """What a crash test trades, when it kills, and what it checks after a restart."""

    config = ""
    """The TOML of the feed and the strategy."""
    params = ""

    def __init__(self, exchange: LoopbackExchange, journal_file: Path) -> None:
        self.exchange = exchange
        self.journal_file = journal_file

    def moment(self, rng: random.Random, number: int, last: bool) -> str:
        """When round ``number`` kills (:data:`EARLY`: during the start-up)."""
        raise NotImplementedError

    def before_spawn(self) -> None:
        """Just before the daemon starts."""

    async def after_restart(self, figures: Figures) -> None:
        """Once the daemon is ready again: check the journal against the venue."""
        raise NotImplementedError

    async def until_kill(self, moment: str, rng: random.Random, figures: Figures) -> None:
        """While the daemon trades: return when it is to be killed."""
        raise NotImplementedError

    def after_kill(self, rng: random.Random, last: bool) -> None:
        """Once the daemon is gone (``last``: stopped for good; else what the venue does
        while it is down)."""
        self.exchange.release()

    def finish(self, figures: Figures, elapsed: float) -> None:
        """After the last, clean stop: the last checks and the figures."""
        raise NotImplementedError


async def crash_rounds(tmp_path: Path, scenario_type: type[Scenario]) -> None:
    """``KILLS`` rounds of a spawned daemon killed at its scenario's moments, and a last
    one stopped cleanly; the scenario checks the journal after each restart."""
    started = time.monotonic()
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    exchange = LoopbackExchange(
        KEY, SECRET, [market], {"USDT": 100_000_000.0}, seed=9, fee_in_base=True
    )
    await exchange.start()
    try:
        ports = dict(zip(SERVERS, free_ports(3), strict=True))
        config = write_config(tmp_path, ports)
        with config.open("a", encoding="utf-8") as handle:
            handle.write('synchronous = "NORMAL"\n')
            handle.write(RISK_AND_VENUE.format(url=exchange.url))
            handle.write(scenario_type.config)
        scenario = scenario_type(exchange, tmp_path / "state" / "journal.sqlite3")
        url = f"ws://127.0.0.1:{ports['orchestrator']}/"
        figures = Figures()
        rng = random.Random(SEED)
        for number in range(KILLS + 1):
            await one_round(scenario, config, url, number, rng, figures)
        scenario.finish(figures, time.monotonic() - started)
    finally:
        await exchange.close()


async def one_round(
    scenario: Scenario, config: Path, url: str, number: int, rng: random.Random, figures: Figures
) -> None:
    last = number == KILLS
    scenario.before_spawn()
    recorder = Recorder()
    async with spawned(config) as run:
        moment = scenario.moment(rng, number, last)
        watcher: asyncio.Task[None] | None = None
        if moment == EARLY:
            await asyncio.sleep(rng.uniform(*EARLY_SECONDS))
            figures.early += not run.ready.is_set()
        else:
            await run.wait_ready()
            if number > 0:
                await scenario.after_restart(figures)
            request = (
                {"type": "start_strategy", "id": STRATEGY, "requestId": "start",
                 "config": {"realTrading": True, "venue": VENUE}}
                if number == 0
                else {"type": "get_active_strategies", "requestId": "active"}
            )  # fmt: skip
            watcher = asyncio.create_task(client(url, recorder, [request]))
            reply = await wait_for_reply(recorder, request["requestId"])
            assert reply["type"] in ("strategy_started", "strategy_status_list"), reply
            await scenario.until_kill(moment, rng, figures)
        if last:
            assert await run.stop() == 0
        else:
            assert await run.kill() == -signal.SIGKILL, run.last_words()
            figures.kills += 1
            figures.moments[moment] += 1
        scenario.after_kill(rng, last)
        if watcher is not None:
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
        figures.reconcile_failures += sum(
            e.get("event") == "venue_reconciliation_failed" for e in run.logs
        )


# ---------------------------------------------------------------- market orders


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
    ledger = [e for e in journal.venue_ledger(VENUE) if e.order_id in venue.executed]
    position = sum(e.signed_quantity for e in ledger)
    fees = sum(e.fee for e in ledger if e.fee_asset == "BTC")
    assert math.isclose(position - fees, venue.btc, abs_tol=1e-9), (position, fees, venue.btc)
    figures.checks += 1


class MarketOrders(Scenario):
    config = SYNTHETIC_FEED + STRATEGY_TEMPLATE.format(
        kind="Churn", params="seed = 3, max_order = 3, max_units = 6"
    )

    def __init__(self, exchange: LoopbackExchange, journal_file: Path) -> None:
        super().__init__(exchange, journal_file)
        self._seen: asyncio.Future[VenueSnapshot] | None = None

    def moment(self, rng: random.Random, number: int, last: bool) -> str:
        held = not last and number > 0 and rng.random() < HELD_SHARE
        early = not last and not held and number > 0 and rng.random() < EARLY_SHARE
        return "held" if held else EARLY if early else "trading"

    def before_spawn(self) -> None:
        seen = self._seen = asyncio.get_running_loop().create_future()

        def first_call(method: str, endpoint: str) -> None:
            if not seen.done():
                seen.set_result(snapshot(self.exchange))

        self.exchange.on_request = first_call

    async def after_restart(self, figures: Figures) -> None:
        assert self._seen is not None
        venue = await asyncio.wait_for(self._seen, 5.0)
        with Journal.open_readonly(self.journal_file) as journal:
            check(journal, venue, figures)

    async def until_kill(self, moment: str, rng: random.Random, figures: Figures) -> None:
        if moment == "held":
            self.exchange.hold_next_submit()
            await asyncio.wait_for(self.exchange.holding.wait(), 10.0)
            figures.held += 1
        else:
            await asyncio.sleep(rng.uniform(*TRADING_SECONDS))

    def finish(self, figures: Figures, elapsed: float) -> None:
        final = snapshot(self.exchange)
        with Journal.open_readonly(self.journal_file) as journal:
            check(journal, final, figures)
            assert journal.unfilled_venue_orders() == [], "a clean stop leaves nothing in flight"
            fills = journal.fills()
            filled = sum(f.status is FILLED for f in fills)
            figures.recovered = sum(
                f.id.startswith("reconciled-") and f.status is FILLED for f in fills
            )
        print(
            f"\nvenue crash: {figures.kills} SIGKILLs ({figures.held} between submit and "
            f"acknowledgement, {figures.early} before ready) in {elapsed:.1f} s; venue orders "
            f"{len(final.executed)}, journal fills FILLED {filled}, recovered at start "
            f"{figures.recovered}, never received {figures.never_received}; checks "
            f"{figures.checks}"
        )
        assert figures.kills >= min(KILLS, 20)
        assert figures.held > 0 and figures.recovered > 0, "no kill fell between submit and ack"
        # How many depends on the machine's load (the rounds are short); at least one a kill.
        assert filled >= KILLS, "too few fills to say much"


async def test_a_live_daemon_killed_again_and_again_never_doubles_nor_loses_a_venue_order(
    tmp_path: Path,
) -> None:
    await crash_rounds(tmp_path, MarketOrders)


# ---------------------------------------------------------------- resting orders

TAPE_SECONDS = 0.05
PART_SIZE = 0.8
"""The largest part a resting order fills at one price (BTC; orders are 1 to 3)."""
MOMENTS = (("held", 0.2), ("replace", 0.25), ("partial", 0.25), ("resting", 0.15))
"""The moments a resting-orders round kills at once trading, with their shares (the
rest: a random moment)."""
MOMENT_SECONDS = 8.0
"""How long a round waits for its moment before it kills anyway (counted as missed)."""
SETTLE_SECONDS = 30.0
"""How long a restarted daemon is given to settle what it found on the venue."""
LAST = "stopped cleanly"
"""The last round's moment: the tape stopped, all settled, then a clean stop."""
DOWN_TRADES = (0, 4)
"""Trades the tape prints while the daemon is down (resting orders fill meanwhile)."""


class NotSettled(AssertionError):
    """The journal and the venue do not agree yet: the daemon may still be settling."""


@dataclass
class VenueOrders:
    """The venue's orders of the daemon, by the journal's order id."""

    executed: dict[str, float]
    """What the venue filled of each order, over its revisions."""
    open: dict[str, list[tuple[int, float]]]
    """Each order's open revisions and what is left of each."""
    revisions: dict[str, int]
    """The latest revision the venue has of each order."""
    fees: dict[str, float]
    """The fees the venue took of each order in BTC, over its revisions."""
    btc: float


def venue_orders(exchange: LoopbackExchange) -> VenueOrders:
    executed: dict[str, float] = defaultdict(float)
    open_: dict[str, list[tuple[int, float]]] = defaultdict(list)
    revisions: dict[str, int] = {}
    fees: dict[str, float] = defaultdict(float)
    ids = [order.client_order_id for order in exchange.orders.values()]
    assert len(ids) == len(set(ids)), "two venue orders with one client order id"
    for order in exchange.orders.values():
        assert order.client_order_id.startswith(PREFIX), order
        order_id, _, revision = order.client_order_id[len(PREFIX) :].partition(".")
        executed[order_id] += order.executed_qty
        number = int(revision or 0)
        revisions[order_id] = max(number, revisions.get(order_id, 0))
        if order.is_open:
            open_[order_id].append((number, order.orig_qty - order.executed_qty))
        fees[order_id] += sum(
            float(f["commission"]) for f in order.fills if f["commissionAsset"] == "BTC"
        )
    return VenueOrders(dict(executed), dict(open_), revisions, dict(fees), exchange.position("BTC"))


def check_resting(journal: Journal, venue: VenueOrders) -> None:
    """The journal (read first) against the venue (read after it): the first checks hold
    at every read, the rest (:class:`NotSettled`) once the daemon settled what it found."""
    orders = {o.id for o in journal.orders()}
    assert set(venue.executed) <= orders, "the venue has an order the journal never made"
    replaces = journal.replace_counts()
    for order_id, revision in venue.revisions.items():
        assert revision <= replaces.get(order_id, 0), (order_id, revision, "not replaced so often")
    fills = [f for f in journal.fills() if f.status is FILLED]
    filled: dict[str, float] = defaultdict(float)
    for fill in fills:
        filled[fill.order_id] += fill.quantity
    for order_id, quantity in filled.items():
        assert quantity <= venue.executed.get(order_id, 0.0) + 1e-9, (order_id, "filled twice")
    ledger = journal.venue_ledger(VENUE)
    fees: dict[str, float] = defaultdict(float)
    for entry in ledger:
        fees[entry.order_id] += entry.fee if entry.fee_asset == "BTC" else 0.0
    for order_id, fee in fees.items():
        assert fee <= venue.fees.get(order_id, 0.0) + 1e-12, (order_id, fee, "a fee twice")
    finals = Counter(f.order_id for f in journal.fills() if f.remaining == 0.0)
    assert [o for o, n in finals.items() if n > 1] == [], "an order settled twice"
    assert [o for o, revs in venue.open.items() if len(revs) > 1] == [], "two revisions open"

    for order_id, executed in venue.executed.items():
        if not math.isclose(filled.get(order_id, 0.0), executed, abs_tol=1e-9):
            raise NotSettled(f"order {order_id}: venue filled {executed}, journal {filled}")
    for order_id, fee in venue.fees.items():
        if not math.isclose(fees.get(order_id, 0.0), fee, abs_tol=1e-12):
            raise NotSettled(f"order {order_id}: venue fees {fee} BTC, journal {fees}")
    position = sum(e.signed_quantity for e in ledger)
    if not math.isclose(position - sum(fees.values()), venue.btc, abs_tol=1e-9):
        raise NotSettled(f"journal position {position} - fees {fees} != venue {venue.btc}")
    resting = {order.id: order for order, _ in journal.venue_resting_orders(VENUE)}
    if set(resting) != set(venue.open):
        raise NotSettled(f"resting in the journal {sorted(resting)}, open {sorted(venue.open)}")
    for order_id, [(_, left)] in venue.open.items():
        if not math.isclose(resting[order_id].quantity, left, abs_tol=1e-9):
            raise NotSettled(f"order {order_id}: {left} open, the journal {resting[order_id]}")
    in_flight = {order.id for _, order in journal.unfilled_venue_orders()}
    if not in_flight <= set(resting):
        raise NotSettled(f"in flight without an outcome: {sorted(in_flight - set(resting))}")


def new_quantity_revisions(exchange: LoopbackExchange) -> int:
    """The replace revisions on the venue whose quantity is not what the revision
    before left (a replace with a new quantity)."""
    by_client = {o.client_order_id: o for o in exchange.orders.values()}
    count = 0
    for client_id, order in by_client.items():
        base, _, revision = client_id.partition(".")
        if not revision:
            continue
        number = int(revision) - 1
        before = by_client.get(base if number == 0 else f"{base}.{number}")
        if before is not None:
            left = before.orig_qty - before.executed_qty
            count += not math.isclose(order.orig_qty, left, abs_tol=1e-9)
    return count


class RestingOrders(Scenario):
    config = VENUE_FEED + STRATEGY_TEMPLATE.format(
        kind="RestingChurn",
        params=(
            "seed = 4, max_order = 3, max_units = 8, most_resting = 4, "
            f"new_quantity_share = {NEW_QUANTITY_SHARE}"
        ),
    )

    def __init__(self, exchange: LoopbackExchange, journal_file: Path) -> None:
        super().__init__(exchange, journal_file)
        exchange.seeded_parts(PART_SIZE, SEED)

    def moment(self, rng: random.Random, number: int, last: bool) -> str:
        if last:
            return LAST
        if number > 0 and rng.random() < EARLY_SHARE * 0.6:
            return EARLY
        draw = rng.random()
        for moment, share in MOMENTS:
            if draw < share:
                return moment
            draw -= share
        return "trading"

    async def after_restart(self, figures: Figures) -> None:
        """With the tape still, until the journal and the venue agree (or the deadline)."""
        problem: NotSettled | None = None
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                while True:
                    with Journal.open_readonly(self.journal_file) as journal:
                        try:
                            check_resting(journal, venue_orders(self.exchange))
                            break
                        except NotSettled as exc:
                            problem = exc
                    await self.heard(lambda: True)
        except TimeoutError:
            raise AssertionError(f"not settled after the restart: {problem}") from None
        figures.checks += 1

    async def heard(self, condition: Callable[[], bool]) -> None:
        """Until the venue hears a request and ``condition()`` holds then."""
        heard = asyncio.Event()

        def on_request(method: str, endpoint: str) -> None:
            if condition():
                heard.set()

        self.exchange.on_request = on_request
        try:
            await heard.wait()
        finally:
            self.exchange.on_request = lambda method, endpoint: None

    async def until_kill(self, moment: str, rng: random.Random, figures: Figures) -> None:
        self.exchange.start_tape(TAPE_SECONDS)
        await asyncio.sleep(rng.uniform(*TRADING_SECONDS))
        if moment == LAST:
            # Stopped once all is settled: a fill after the stop would be the next start's.
            self.exchange.stop_tape()
            await self.after_restart(figures)
            return
        if moment == "trading":
            return
        if moment == "held":
            self.exchange.hold_next_submit()
        elif moment == "replace":
            self.exchange.hold_next_revision()
        waits = {
            "held": self.exchange.holding.wait,
            "replace": self.exchange.holding.wait,
            "partial": lambda: self.heard(self._partly_filled),
            "resting": lambda: self.heard(lambda: len(self.exchange.open_orders()) >= 2),
        }
        try:
            await asyncio.wait_for(waits[moment](), MOMENT_SECONDS)
        except TimeoutError:
            figures.missed[moment] += 1
        else:
            figures.moments[f"{moment} (caught)"] += 1

    def _partly_filled(self) -> bool:
        return any(order.executed_qty > 0 for order in self.exchange.open_orders())

    def after_kill(self, rng: random.Random, last: bool) -> None:
        self.exchange.stop_tape()
        super().after_kill(rng, last)
        if not last:
            self.exchange.print_trades(rng.randint(*DOWN_TRADES))

    def finish(self, figures: Figures, elapsed: float) -> None:
        exchange = self.exchange
        venue = venue_orders(exchange)
        with Journal.open_readonly(self.journal_file) as journal:
            check_resting(journal, venue)  # after a clean stop: all settled
            fills = journal.fills()
        filled: dict[str, float] = defaultdict(float)
        for fill in fills:
            filled[fill.order_id] += fill.quantity if fill.status is FILLED else 0.0
        missing = sum(abs(filled[o] - q) > 1e-9 for o, q in venue.executed.items())
        ids = Counter(o.client_order_id for o in exchange.orders.values())
        duplicates = sum(n - 1 for n in ids.values())
        limits = [o for o in exchange.orders.values() if o.type == "LIMIT"]
        parts = sum(len(o.fills) for o in limits)
        in_parts = sum(len(o.fills) > 1 for o in limits)
        revisions = sum("." in o.client_order_id for o in exchange.orders.values())
        requantified = new_quantity_revisions(exchange)
        expired = sum(o.status == "EXPIRED" and o.executed_qty > 0 for o in limits)
        journal_parts = sum(f.status is FILLED and f.remaining > 0 for f in fills)
        print(
            f"\nvenue crash, resting orders: {figures.kills} SIGKILLs in {elapsed:.1f} s, at "
            f"{dict(figures.moments)} (missed {dict(figures.missed)}, {figures.early} before "
            f"ready); venue orders {len(exchange.orders)} ({len(limits)} limit, {revisions} "
            f"replace revisions, {requantified} of a new quantity, {expired} IOC "
            f"part-filled then expired), venue fills of "
            f"limit orders {parts} ({in_parts} orders in parts), journal fills "
            f"{sum(f.status is FILLED for f in fills)} ({journal_parts} parts), never received "
            f"{figures.never_received}, failed reconciliations {figures.reconcile_failures}; "
            f"checks {figures.checks}, duplicate venue orders "
            f"{duplicates}, orders with a fill missing {missing}"
        )
        assert figures.kills >= min(KILLS, 20)
        assert figures.checks >= figures.kills - figures.moments[EARLY]
        if KILLS >= 20:
            for moment in ("held", "replace", "partial", "resting"):
                assert figures.moments[f"{moment} (caught)"] > 0, f"no kill {moment}"
        assert in_parts > 0 and revisions > 0 and expired > 0, "too little happened"
        # How many replaces changed the quantity is up to the kills' timing (a few in a
        # run); tests/gateways/venues/test_resting_on_venue.py covers that case for sure.


async def test_a_live_daemon_killed_while_orders_rest_and_fill_in_parts_settles_each_part_once(
    tmp_path: Path,
) -> None:
    await crash_rounds(tmp_path, RestingOrders)
