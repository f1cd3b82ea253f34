"""What the journal costs the clients: fan-out and tick-to-trade, journal on vs off.

"Journal off" is a real mode of the daemon (``journal.enabled = false``): the
bus hands every event straight to the servers and nothing is written or
restored. "Journal on" is the default: every event goes through the journal's
writer stage (``orchestrator.journal.writer``), which commits it in a batch
(``synchronous = FULL``: the commit waits for the disk) before any client hears
of it. Both daemons are otherwise as in production (real clock, NNG publisher
on, bar clock and order expiry running), in this process, side by side; the
feed does not run: the benchmark injects the ticks. ``bench.journal_bench``
gives the journal's own commits per second.

Fan-out (the method and code of ``bench.fanout_bench``): AAPL quotes from each
daemon's market data gateway (3001) to 100 clients in 4 other processes,
closed-loop pacing, the servers taking turns for ``FANOUT_ROUNDS`` rounds; each figure
is a server's median round, with a bare websockets broadcast of the same frames
for reference. Quotes are not journaled, and the writer stage tells them at
once, never behind a commit: what is left is its check on each event.

Tick-to-trade (the method of ``bench.latency_bench``): each daemon runs
``bench.tick_strategy:EveryTick``, which orders on every AAPL tick and is filled
on the next; ticks injected at ``TICKS_PER_SECOND``, each stamped just before
``MarketData.handle_tick``; latency = the arrival of the ``strategy_trade``
frame at each client (1 client, in another process) - injection.
Here, with the journal on, every trade, signal and order is committed before it
is sent; one daemon per durability mode (``synchronous`` FULL and NORMAL), both
against the journal off. ``in daemon`` = injection -> the trade written to
every client socket.

Ratios are journal on / journal off: below 1 for rates and above 1 for
latencies means the journal costs that much.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from bench import fanout_bench as fanout
from bench.bare_server import BareServer
from bench.clients import Arrivals, ClientSpec, all_arrivals, start_clients
from bench.report import Verdict, machine, percentile, table
from bench.rig import daemon_config, paced, start_background, stop_background, wait_until
from gateways.config import DaemonConfig, LoggingConfig
from gateways.daemon import Daemon
from gateways.logs import configure_logging
from orchestrator.model.events import Event, Topic, TradeExecuted
from orchestrator.model.market import Tick
from orchestrator.model.orders import TradeStatus
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig

ON = "journal on"
OFF = "journal off"
DURABILITY = {"journal FULL": "FULL", "journal NORMAL": "NORMAL"}
"""The tick-to-trade daemons with the journal on, by name: one per ``synchronous`` mode."""
BARE = "bare websockets"

CLIENT_COUNTS = (1,)
"""``bench.latency_bench`` has 10 and 100 clients, with the journal in its default mode."""
FANOUT_ROUNDS = 3
"""Fewer than ``bench.fanout_bench``'s: its verdict is there, these rates are for reading."""
TICKS_PER_SECOND = 100.0
WARMUP_TICKS = 50
ROUNDS = 2
TICKS_PER_ROUND = 150
SYMBOL = "AAPL"
STRATEGY_ID = "every-tick"
TRADE_PREFIX = '{"type":"strategy_trade"'


def journal_config(
    state_dir: str, journal: bool, synchronous: str | None = None, **overrides: object
) -> DaemonConfig:
    """The rig's production-like daemon, with the journal on (the default) or off,
    in the default durability or the ``synchronous`` mode given."""
    section: dict[str, object] = {"state_dir": state_dir, "enabled": journal}
    if synchronous is not None:
        section["synchronous"] = synchronous
    return daemon_config(state_dir, journal=section, **overrides)


# ---------------------------------------------------------------- fan-out


async def quote_gateway(stack: AsyncExitStack, journal: bool) -> fanout.Target:
    """``fanout_bench.gateway`` with the journal on or off."""
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-impact-"))
    daemon = Daemon(journal_config(state_dir, journal))
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    stack.push_async_callback(stop_background, start_background(daemon))
    server = daemon.servers["market_data"]
    market, clock = daemon.core.market, daemon.clock

    def send(seq: int) -> None:
        market.handle_tick(Tick(fanout.SYMBOL, fanout.price(seq), float(seq), clock.now()))

    spec = ClientSpec(
        url=f"ws://127.0.0.1:{server.port}/ws",
        match=fanout.QUOTE_PREFIX,
        key="quote_seq",
        subscribe=fanout.SUBSCRIBE,
    )
    return fanout.Target(ON if journal else OFF, False, spec, send, lambda: server.client_count)


async def bare_quotes(stack: AsyncExitStack) -> fanout.Target:
    server = BareServer()
    await server.start()
    stack.push_async_callback(server.close)
    frames = fanout.bare_frames()
    spec = ClientSpec(url=server.url, match=fanout.QUOTE_PREFIX, key="quote_seq")
    return fanout.Target(
        BARE,
        False,
        spec,
        lambda seq: server.broadcast(frames[seq]),
        lambda: len(server.connections),
    )


async def run_fanout() -> list[fanout.Target]:
    async with AsyncExitStack() as servers:
        targets = [
            await quote_gateway(servers, True),
            await quote_gateway(servers, False),
            await bare_quotes(servers),
        ]
        group = await start_clients([t.spec for t in targets], fanout.CLIENTS, fanout.PROCESSES)
        try:
            await group.ready()
            for target in targets:
                await wait_until(functools.partial(target.has_clients, fanout.CLIENTS))
            for index, target in enumerate(targets):
                await fanout.produce(group, index, target, 0, fanout.WARMUP)
            for number in range(FANOUT_ROUNDS):
                first = fanout.WARMUP + number * fanout.MEASURED
                for index, target in enumerate(targets):
                    await fanout.produce(group, index, target, first, fanout.MEASURED)
            await servers.aclose()  # closes every client, which then report
            arrivals = await group.results()
        finally:
            await group.close()
    for target, received in zip(targets, arrivals, strict=True):
        fanout.summarize(target, received)
    return targets


# ---------------------------------------------------------------- tick to trade


@dataclass(slots=True)
class TradeTarget:
    """One daemon under test: how to inject tick ``i``, and when each trade went."""

    name: str
    spec: ClientSpec
    send: Callable[[int], None]
    client_count: Callable[[], int]
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Trade id -> (tick index, injection ns)."""
    written: dict[str, int] = field(default_factory=dict)
    """Trade id -> when it had been written to every client socket (ns)."""

    def has_clients(self, count: int) -> bool:
        return self.client_count() == count


@dataclass(frozen=True, slots=True)
class Latency:
    name: str
    clients: int
    trades: int
    latencies_ns: list[int]
    in_daemon_ns: list[int]

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies_ns, fraction) / 1e6

    def in_daemon_ms(self, fraction: float) -> float:
        return percentile(self.in_daemon_ns, fraction) / 1e6


def trading_config(state_dir: str, synchronous: str | None) -> DaemonConfig:
    """``latency_bench``'s daemon: one strategy that orders on every AAPL tick."""
    entry = CatalogEntry(
        id=STRATEGY_ID,
        name="Trades every tick",
        kind="bench.tick_strategy:EveryTick",
        defaults=StrategyRunConfig(
            symbols=(SYMBOL,),
            data_resolution="1s",
            max_position_value=1e6,
            max_orders_per_minute=10_000,
            stop_loss_percentage=0.0,
        ),
    )
    # At 100 ticks/s the daemon-wide order limit (50/s by default) would refuse half.
    return journal_config(
        state_dir,
        synchronous is not None,
        synchronous,
        risk={"max_orders_per_second": 10_000},
        strategies=[entry],
    )


async def trading_daemon(stack: AsyncExitStack, name: str) -> TradeTarget:
    """The daemon ``name``: a key of DURABILITY, or OFF."""
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-impact-"))
    daemon = Daemon(trading_config(state_dir, DURABILITY.get(name)))
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    stack.push_async_callback(stop_background, start_background(daemon))
    await daemon.registry.start(STRATEGY_ID)
    server = daemon.servers["orchestrator"]
    market, clock = daemon.core.market, daemon.clock
    spec = ClientSpec(url=f"ws://127.0.0.1:{server.port}/", match=TRADE_PREFIX, key="trade_id")
    target = TradeTarget(name, spec, lambda i: None, lambda: server.client_count)
    injected = [0, 0]  # tick index, injection ns

    def submitted(event: Event) -> None:
        if isinstance(event, TradeExecuted) and event.fill.status is TradeStatus.FILLED:
            target.sent[event.fill.id] = (injected[0], injected[1])

    def delivered(event: Event) -> None:  # an outbox subscriber after the servers
        if isinstance(event, TradeExecuted):
            target.written[event.fill.id] = time.monotonic_ns()

    daemon.bus.subscribe(submitted, (Topic.STRATEGY_TRADE,))
    daemon.outbox.subscribe(delivered, (Topic.STRATEGY_TRADE,))

    def inject(i: int) -> None:
        tick = Tick(SYMBOL, 190.0 + (i % 50) * 0.01, 1.0, clock.now())
        injected[0], injected[1] = i, time.monotonic_ns()
        market.handle_tick(tick)

    target.send = inject
    return target


async def run_ticks(target: TradeTarget, first: int, count: int) -> None:
    await paced(count, TICKS_PER_SECOND, lambda i: target.send(first + i))


def latency(target: TradeTarget, clients: int, arrivals: list[Arrivals]) -> Latency:
    by_trade = all_arrivals(arrivals)
    measured = {t: ns for t, (i, ns) in target.sent.items() if i >= WARMUP_TICKS}
    latencies = sorted(a - ns for t, ns in measured.items() for a in by_trade.get(t, ()))
    in_daemon = sorted(target.written[t] - ns for t, ns in measured.items() if t in target.written)
    return Latency(target.name, clients, len(measured), latencies, in_daemon)


async def run_trades(clients: int) -> list[Latency]:
    async with AsyncExitStack() as servers:
        targets = [await trading_daemon(servers, name) for name in (*DURABILITY, OFF)]
        group = await start_clients([t.spec for t in targets], clients, min(clients, 4))
        try:
            await group.ready()
            for target in targets:
                await wait_until(functools.partial(target.has_clients, clients))
            for target in targets:
                await run_ticks(target, 0, WARMUP_TICKS)
            for number in range(ROUNDS):
                for target in targets:
                    await run_ticks(
                        target, WARMUP_TICKS + number * TICKS_PER_ROUND, TICKS_PER_ROUND
                    )
            for index, target in enumerate(targets):
                await group.wait_for(len(target.sent), timeout=60, spec=index)
            await servers.aclose()  # closes every client, which then report
            arrivals = await group.results()
        finally:
            await group.close()
    return [latency(t, clients, a) for t, a in zip(targets, arrivals, strict=True)]


# ---------------------------------------------------------------- report


def fanout_report(targets: list[fanout.Target]) -> str:
    by = {t.server: t.median for t in targets}
    rows = [
        (
            t.server,
            f"{t.median.deliveries}/{fanout.MEASURED * fanout.CLIENTS}",
            t.median.per_second,
            t.median.ms(0.50),
            t.median.ms(0.99),
            f"{t.median.per_second / by[OFF].per_second:.2f}",
        )
        for t in targets
    ]
    return table(
        f"fan-out: AAPL quotes from the 3001 gateway to {fanout.CLIENTS} clients in "
        f"{fanout.PROCESSES} processes, {fanout.MEASURED} frames a round, median of "
        f"{FANOUT_ROUNDS} interleaved rounds ({machine()})",
        ("server", "deliveries", "deliveries/s", "p50 ms", "p99 ms", "rate vs off"),
        rows,
    )


def latency_report(results: list[Latency]) -> str:
    off = {r.clients: r for r in results if r.name == OFF}
    rows = [
        (
            r.clients,
            r.name,
            f"{len(r.latencies_ns)}/{r.trades * r.clients}",
            r.ms(0.50),
            r.ms(0.99),
            r.in_daemon_ms(0.50),
            r.in_daemon_ms(0.99),
            f"{r.ms(0.50) / off[r.clients].ms(0.50):.2f}",
            f"{r.ms(0.99) / off[r.clients].ms(0.99):.2f}",
        )
        for r in results
    ]
    return table(
        f"tick-to-trade: handle_tick -> strategy_trade frame at clients in other processes, "
        f"{TICKS_PER_SECOND:.0f} ticks/s, {ROUNDS} interleaved rounds of {TICKS_PER_ROUND}",
        (
            "clients",
            "daemon",
            "deliveries",
            "p50 ms",
            "p99 ms",
            "in daemon p50",
            "in daemon p99",
            "p50 vs off",
            "p99 vs off",
        ),
        rows,
    )


def verdict(targets: list[fanout.Target], results: list[Latency]) -> str:
    by = {t.server: t.median for t in targets}
    parts = [f"fan-out {by[ON].per_second / by[OFF].per_second:.2f}x the rate"]
    pairs = {(r.name, r.clients): r for r in results}
    for clients, name in ((c, n) for c in CLIENT_COUNTS for n in DURABILITY):
        on, off = pairs[(name, clients)], pairs[(OFF, clients)]
        parts.append(
            f"{name}, tick-to-trade with {clients} client{'s' if clients > 1 else ''} "
            f"p50 {on.ms(0.50) / off.ms(0.50):.2f}x, p99 {on.ms(0.99) / off.ms(0.99):.2f}x "
            f"({on.ms(0.50):.2f}/{on.ms(0.99):.2f} ms vs {off.ms(0.50):.2f}/{off.ms(0.99):.2f})"
        )
    lost = [
        f"{t.server}" for t in targets if t.median.deliveries != fanout.MEASURED * fanout.CLIENTS
    ]
    lost += [
        f"{r.name}/{r.clients}" for r in results if len(r.latencies_ns) != r.trades * r.clients
    ]
    line = "journal on vs off: " + "; ".join(parts)
    return line + (f"; deliveries missing: {', '.join(lost)}" if lost else "")


async def run_all() -> tuple[list[fanout.Target], list[Latency]]:
    targets = await run_fanout()
    results = [r for clients in CLIENT_COUNTS for r in await run_trades(clients)]
    return targets, results


def main() -> list[Verdict]:
    configure_logging(LoggingConfig(level="error"))  # journal off warns at every start
    targets, results = asyncio.run(run_all())
    print(fanout_report(targets))
    print()
    print(latency_report(results))
    print(verdict(targets, results))
    return summary_verdicts(results)


def summary_verdicts(results: list[Latency]) -> list[Verdict]:
    """Each durability mode's tick-to-trade with one client against the journal off
    (for reading: latency_bench holds the default mode to its targets)."""
    one = {r.name: r for r in results if r.clients == 1}
    off = one[OFF]
    return [
        Verdict(
            f"{name}, tick-to-trade, 1 client",
            f"p50 {one[name].ms(0.5):.2f} / p99 {one[name].ms(0.99):.2f} ms "
            f"(journal off {off.ms(0.5):.2f} / {off.ms(0.99):.2f} ms)",
            "none",
            None,
        )
        for name in DURABILITY
    ]


if __name__ == "__main__":
    main()
