"""Tick to trade: from a tick entering the core to the strategy_trade frame at a client.

A Daemon as in production (real clock, servers on ephemeral ports, the SQLite
journal and the NNG publisher on, bar clock and order expiry running; the feed
not running: ticks come from here) runs one strategy,
``bench.tick_strategy:EveryTick``, which sends an order on every AAPL tick; the
paper broker fills it on the next tick. Ticks are injected through
``MarketData.handle_tick`` at a steady rate, each stamped with
``time.monotonic_ns()`` just before the call. From the second tick on, each
tick produces one ``strategy_trade`` (the fill of the previous tick's order)
and one ``strategy_signal`` on the orchestrator server (8082); the journal, in
its default durability mode (``journal.synchronous``, ``NORMAL``: survives a
crash of the daemon, kill -9 included; docs/journal.md), commits them before
any client hears of them.

(``bench/journal_impact_bench.py`` runs the same in each durability mode,
``FULL`` included, whose commits wait for the disk's flush, and with the
journal off, to show what each costs.)

Baseline, in the same run and to the same clients: a bare websockets server
broadcasting, at the same rate, the same two frames per tick (encoded
beforehand by the daemon's encoder); latency = arrival - the instant before
``broadcast``.

1, 10 and 100 clients per server run in other processes (``bench.clients``),
each process holding its share of the connections to both servers; each
client stamps every strategy_trade frame on arrival with the same system-wide
monotonic clock. Latency = arrival - injection, for every delivery (trade x
client) after a warm-up. The servers take turns (``ROUNDS`` turns each) so that
load from elsewhere on the machine falls on all alike.

Also per daemon: ``in daemon`` = injection -> the trade leaves the journal and
has been written to every client's socket (an outbox subscriber after the
servers); ``CPU us/tick`` = CPU time of this whole process during the turns
divided by the ticks (for the daemon: core, risk, journal thread, encoding,
writes; for the baseline: the two broadcasts), which load elsewhere does not
inflate.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Literal

from bench.bare_server import BareServer
from bench.clients import Arrivals, ClientSpec, all_arrivals, start_clients
from bench.report import Verdict, machine, percentile, table
from bench.rig import daemon_config, paced, start_background, stop_background, wait_until
from gateways.api import outbound
from gateways.config import DaemonConfig, LoggingConfig
from gateways.daemon import Daemon
from gateways.logs import configure_logging
from orchestrator.journal.config import JournalConfig
from orchestrator.model.events import Event, SignalEmitted, Topic, TradeExecuted
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Side, Signal, TradeStatus
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig

CLIENT_COUNTS = (1, 10, 100)
TICKS_PER_SECOND = 100.0
WARMUP_TICKS = 50
ROUNDS = 2
TICKS_PER_ROUND = 200
TOTAL_TICKS = WARMUP_TICKS + ROUNDS * TICKS_PER_ROUND
SYMBOL = "AAPL"
STRATEGY_ID = "every-tick"
STRATEGY_NAME = "Trades every tick"
TRADE_PREFIX = '{"type":"strategy_trade"'


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    """One of issue #15's targets: a percentile of the daemon's latency, with
    ``clients`` clients, held against a bound or against bare websockets' same one."""

    clients: int
    fraction: float
    text: str
    met: Callable[[float, float], bool]
    """(daemon ms, bare websockets ms) -> whether the target holds."""


TARGETS = (
    LatencyTarget(1, 0.99, "< 1 ms", lambda ours, bare: ours < 1.0),
    LatencyTarget(1, 0.50, "within 0.3 ms of bare", lambda ours, bare: ours - bare <= 0.3),
    LatencyTarget(10, 0.99, "< 2x bare", lambda ours, bare: ours < 2 * bare),
    LatencyTarget(100, 0.99, "< 1.3x bare", lambda ours, bare: ours < 1.3 * bare),
)
Synchronous = Literal["FULL", "NORMAL"]
DAEMON = "daemon"
BARE = "bare websockets"


@dataclass(slots=True)
class Target:
    """One server under test: how to send tick ``i``, and what happened."""

    name: str
    spec: ClientSpec
    send: Callable[[int], None]
    client_count: Callable[[], int]
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Trade id -> (tick index, injection ns)."""
    written: dict[str, int] = field(default_factory=dict)
    """Trade id -> when the daemon had written it to every client (ns)."""
    cpu_seconds: float = 0.0

    def has_clients(self, count: int) -> bool:
        return self.client_count() == count


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    clients: int
    trades: int
    latencies_ns: list[int]
    in_daemon_ns: list[int]
    cpu_micros_per_tick: float

    @property
    def expected(self) -> int:
        return self.trades * self.clients

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies_ns, fraction) / 1e6

    def in_daemon_ms(self, fraction: float) -> float:
        return percentile(self.in_daemon_ns, fraction) / 1e6


def processes_for(clients: int) -> int:
    return min(clients, 4)


DEFAULT_DURABILITY: Synchronous = JournalConfig.model_fields["synchronous"].default
"""What the issue's targets are set in: the journal on, in its default mode."""


def bench_config(state_dir: str, synchronous: Synchronous) -> DaemonConfig:
    entry = CatalogEntry(
        id=STRATEGY_ID,
        name=STRATEGY_NAME,
        kind="bench.tick_strategy:EveryTick",
        defaults=StrategyRunConfig(
            symbols=(SYMBOL,),
            data_resolution="1s",
            max_position_value=1e6,
            max_orders_per_minute=10_000,
            stop_loss_percentage=0.0,
        ),
    )
    # The daemon-wide order rate limit (50/s by default) would refuse half the
    # orders at 100 ticks/s: the checks still run, they just never trip.
    return daemon_config(
        state_dir,
        risk={"max_orders_per_second": 10_000},
        strategies=[entry],
        journal={"state_dir": state_dir, "synchronous": synchronous},
    )


def price(i: int) -> float:
    return 190.0 + (i % 50) * 0.01


class Stamps:
    """Bus subscriber: which injection each fill came from; outbox subscriber
    (after the servers): when it had been written to the clients."""

    def __init__(self, target: Target) -> None:
        self.injected_ns = 0
        self.index = 0
        self._target = target

    def submitted(self, event: Event) -> None:
        if isinstance(event, TradeExecuted) and event.fill.status is TradeStatus.FILLED:
            self._target.sent[event.fill.id] = (self.index, self.injected_ns)

    def delivered(self, event: Event) -> None:
        if isinstance(event, TradeExecuted):
            self._target.written[event.fill.id] = time.monotonic_ns()


async def daemon_target(stack: AsyncExitStack, name: str, synchronous: Synchronous) -> Target:
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-latency-"))
    daemon = Daemon(bench_config(state_dir, synchronous))
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    tasks = start_background(daemon)
    stack.push_async_callback(stop_background, tasks)
    await daemon.registry.start(STRATEGY_ID)
    server = daemon.servers["orchestrator"]
    market, clock = daemon.core.market, daemon.clock
    spec = ClientSpec(url=f"ws://127.0.0.1:{server.port}/", match=TRADE_PREFIX, key="trade_id")
    target = Target(name, spec, lambda i: None, lambda: server.client_count)
    stamps = Stamps(target)
    daemon.bus.subscribe(stamps.submitted, (Topic.STRATEGY_TRADE,))
    daemon.outbox.subscribe(stamps.delivered, (Topic.STRATEGY_TRADE,))

    def inject(i: int) -> None:
        tick = Tick(SYMBOL, price(i), 1.0, clock.now())
        stamps.index = i
        stamps.injected_ns = time.monotonic_ns()
        market.handle_tick(tick)

    target.send = inject
    return target


def bare_frames(i: int, now: float) -> tuple[bytes, bytes]:
    """What the daemon sends for tick ``i``: the previous order's fill, then a signal."""
    fill = Fill(
        id=f"trade_{i:06d}",
        order_id=f"order_{i:06d}",
        strategy_id=STRATEGY_ID,
        symbol=SYMBOL,
        side=Side.BUY if i % 2 else Side.SELL,
        quantity=1.0,
        price=price(i) * 1.0001,
        commission=0.0,
        ts=now,
        status=TradeStatus.FILLED,
    )
    signal = Signal(
        id=f"sig_{i + 1:06d}",
        strategy_id=STRATEGY_ID,
        strategy_name=STRATEGY_NAME,
        symbol=SYMBOL,
        action=Side.SELL if i % 2 else Side.BUY,
        price=price(i),
        quantity=1.0,
        confidence=1.0,
        ts=now,
        metadata={"orderType": "MARKET"},
    )
    trade_kind, trade_data = outbound.trade(TradeExecuted(fill, None))
    signal_kind, signal_data = outbound.signal(SignalEmitted(signal))
    # The daemon's servers stamp each broadcast with its place in the stream.
    trade_at = outbound.StreamPosition(2 * i + 1, 1_700_000_000)
    signal_at = outbound.StreamPosition(2 * i + 2, 1_700_000_000)
    return (
        outbound.encode(trade_kind, trade_data, now, position=trade_at),
        outbound.encode(signal_kind, signal_data, now, position=signal_at),
    )


async def bare_target(stack: AsyncExitStack) -> Target:
    server = BareServer()
    await server.start()
    stack.push_async_callback(server.close)
    frames = [bare_frames(i, time.time()) for i in range(TOTAL_TICKS)]
    spec = ClientSpec(url=server.url, match=TRADE_PREFIX, key="trade_id")
    target = Target(BARE, spec, lambda i: None, lambda: len(server.connections))

    def send(i: int) -> None:
        trade, signal = frames[i]
        target.sent[f"trade_{i:06d}"] = (i, time.monotonic_ns())
        server.broadcast(trade)
        server.broadcast(signal)

    target.send = send
    return target


async def run_ticks(target: Target, first: int, count: int) -> None:
    started = time.process_time()
    await paced(count, TICKS_PER_SECOND, lambda i: target.send(first + i))
    if first >= WARMUP_TICKS:
        target.cpu_seconds += time.process_time() - started


def result(target: Target, clients: int, arrivals: list[Arrivals]) -> Result:
    by_trade = all_arrivals(arrivals)
    measured = {t: ns for t, (i, ns) in target.sent.items() if i >= WARMUP_TICKS}
    latencies = sorted(a - ns for t, ns in measured.items() for a in by_trade.get(t, ()))
    in_daemon = sorted(target.written[t] - ns for t, ns in measured.items() if t in target.written)
    cpu = target.cpu_seconds / (ROUNDS * TICKS_PER_ROUND) * 1e6
    return Result(target.name, clients, len(measured), latencies, in_daemon, cpu)


async def run_clients(clients: int) -> list[Result]:
    async with AsyncExitStack() as servers:
        targets = [
            await daemon_target(servers, DAEMON, DEFAULT_DURABILITY),
            await bare_target(servers),
        ]
        group = await start_clients([t.spec for t in targets], clients, processes_for(clients))
        try:
            await group.ready()
            for target in targets:
                await wait_until(functools.partial(target.has_clients, clients))
            for target in targets:
                await run_ticks(target, 0, WARMUP_TICKS)
            for number in range(ROUNDS):
                for target in targets:
                    first = WARMUP_TICKS + number * TICKS_PER_ROUND
                    await run_ticks(target, first, TICKS_PER_ROUND)
            for index, target in enumerate(targets):
                await group.wait_for(len(target.sent), timeout=60, spec=index)
            await servers.aclose()  # closes every client, which then report
            arrivals = await group.results()
        finally:
            await group.close()
    return [result(t, clients, a) for t, a in zip(targets, arrivals, strict=True)]


async def run_all() -> list[Result]:
    return [r for clients in CLIENT_COUNTS for r in await run_clients(clients)]


def main() -> list[Verdict]:
    configure_logging(LoggingConfig(level="warning"))
    results = asyncio.run(run_all())
    rows = [
        (
            r.clients,
            r.name,
            f"{len(r.latencies_ns)}/{r.expected}",
            r.ms(0.50),
            r.ms(0.90),
            r.ms(0.99),
            r.ms(1.0),
            r.in_daemon_ms(0.50),
            r.in_daemon_ms(0.99),
            r.cpu_micros_per_tick,
        )
        for r in results
    ]
    print(
        table(
            f"tick-to-trade: MarketData.handle_tick -> strategy_trade frame at clients in "
            f"other processes, journal synchronous = {DEFAULT_DURABILITY} (the default), "
            f"{TICKS_PER_SECOND:.0f} ticks/s, 1 trade + 1 signal per tick, "
            f"{ROUNDS} interleaved rounds ({machine()})",
            (
                "clients",
                "server",
                "deliveries",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "in daemon p50",
                "in daemon p99",
                "CPU us/tick",
            ),
            rows,
        )
    )
    made = verdicts(results)
    print(report_lines(made, results))
    return made


def verdicts(results: list[Result]) -> list[Verdict]:
    by = {(r.name, r.clients): r for r in results}
    made = []
    for target in TARGETS:
        daemon, bare = by[(DAEMON, target.clients)], by[(BARE, target.clients)]
        ours, theirs = daemon.ms(target.fraction), bare.ms(target.fraction)
        whole = len(daemon.latencies_ns) == daemon.expected
        figure = f"{ours:.2f} ms (bare websockets {theirs:.2f} ms)"
        plural = "s" if target.clients > 1 else ""
        name = f"tick-to-trade p{target.fraction * 100:.0f}, {target.clients} client{plural}"
        passed = whole and target.met(ours, theirs)
        made.append(Verdict(name, figure + ("" if whole else ", lost"), target.text, passed))
    return made


def report_lines(made: list[Verdict], results: list[Result]) -> str:
    lines = [v.line() for v in made]
    lost = [f"{r.name}/{r.clients}" for r in results if len(r.latencies_ns) != r.expected]
    if lost:
        lines.append(f"deliveries missing: {', '.join(lost)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
