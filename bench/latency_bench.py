"""Tick to trade: from a tick entering the core to the strategy_trade frame at a client.

A Daemon as in production (real clock, servers on ephemeral ports, journal and
NNG publisher on, bar clock and order expiry running; the feed not running,
ticks come from here) runs one strategy, ``bench.tick_strategy:EveryTick``,
which sends an order on every AAPL tick; the paper broker fills it on the next
tick. Ticks are injected through ``MarketData.handle_tick`` at a steady rate,
each stamped with ``time.monotonic_ns()`` just before the call. From the second
tick on, each tick produces one ``strategy_trade`` (the fill of the previous
tick's order) and one ``strategy_signal`` on the orchestrator server (8082).

1, 10 and 100 clients of 8082 run in other processes (``bench.clients``); each
stamps every strategy_trade frame on arrival with the same system-wide
monotonic clock. Latency = arrival - injection, for every delivery (trade x
client) after a warm-up.

Baseline, in the same run and to the same clients (each client process holds a
connection to both servers): a bare websockets server broadcasting, at the same
rate, the same two frames per tick (a strategy_trade and a strategy_signal,
encoded beforehand by the daemon's encoder); latency = arrival - the instant
before ``broadcast``. The daemon and the baseline take turns (``ROUNDS`` turns
each) so that load from elsewhere on the machine falls on both alike.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from bench.bare_server import BareServer
from bench.clients import Arrivals, ClientSpec, all_arrivals, start_clients
from bench.report import machine, percentile, table
from bench.rig import daemon_config, paced, start_background, stop_background, wait_until
from gateways import wire
from gateways.daemon import Daemon
from orchestrator.config import CatalogEntry, DaemonConfig, LoggingConfig, StrategyRunConfig
from orchestrator.events import Event, SignalEmitted, Topic, TradeExecuted
from orchestrator.logs import configure_logging
from orchestrator.market import Tick
from orchestrator.orders import Fill, Side, Signal, TradeStatus

CLIENT_COUNTS = (1, 10, 100)
TICKS_PER_SECOND = 100.0
WARMUP_TICKS = 50
ROUNDS = 2
TICKS_PER_ROUND = 250
TOTAL_TICKS = WARMUP_TICKS + ROUNDS * TICKS_PER_ROUND
SYMBOL = "AAPL"
STRATEGY_ID = "every-tick"
STRATEGY_NAME = "Trades every tick"
TRADE_PREFIX = '{"type":"strategy_trade"'
TARGET_P99_MS = {1: 1.0, 100: 5.0}


@dataclass(slots=True)
class Target:
    """One server under test: how to send tick ``i``, and when each trade left."""

    spec: ClientSpec
    send: Callable[[int], None]
    client_count: Callable[[], int]
    trades: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Trade id -> (tick index, injection ns)."""

    def has_clients(self, count: int) -> bool:
        return self.client_count() == count


@dataclass(frozen=True, slots=True)
class Result:
    clients: int
    processes: int
    trades: int
    expected: int
    latencies_ns: list[int]

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies_ns, fraction) / 1e6


def processes_for(clients: int) -> int:
    return min(clients, 4)


def bench_config(state_dir: str) -> DaemonConfig:
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
    return daemon_config(state_dir, risk={"max_orders_per_second": 10_000}, strategies=[entry])


def price(i: int) -> float:
    return 190.0 + (i % 50) * 0.01


class TradeStamps:
    """Bus subscriber after the servers: which injection each fill came from."""

    def __init__(self, trades: dict[str, tuple[int, int]]) -> None:
        self.injected_ns = 0
        self.index = 0
        self._trades = trades

    def __call__(self, event: Event) -> None:
        if isinstance(event, TradeExecuted) and event.fill.status is TradeStatus.FILLED:
            self._trades[event.fill.id] = (self.index, self.injected_ns)


async def daemon_target(stack: AsyncExitStack) -> Target:
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-latency-"))
    daemon = Daemon(bench_config(state_dir))
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    tasks = start_background(daemon)
    stack.push_async_callback(stop_background, tasks)
    await daemon.registry.start(STRATEGY_ID)
    server = daemon.servers["orchestrator"]
    market, clock = daemon.core.market, daemon.clock
    spec = ClientSpec(url=f"ws://127.0.0.1:{server.port}/", match=TRADE_PREFIX, key="trade_id")
    target = Target(spec, lambda i: None, lambda: server.client_count)
    stamps = TradeStamps(target.trades)
    daemon.bus.subscribe(stamps, (Topic.STRATEGY_TRADE,))  # after the servers

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
    trade_kind, trade_data = wire.trade(TradeExecuted(fill, None))
    signal_kind, signal_data = wire.signal(SignalEmitted(signal))
    # The daemon's servers stamp each broadcast with its place in the stream.
    trade_at = wire.StreamPosition(2 * i + 1, 1_700_000_000)
    signal_at = wire.StreamPosition(2 * i + 2, 1_700_000_000)
    return (
        wire.encode(trade_kind, trade_data, now, position=trade_at),
        wire.encode(signal_kind, signal_data, now, position=signal_at),
    )


async def bare_target(stack: AsyncExitStack) -> Target:
    server = BareServer()
    await server.start()
    stack.push_async_callback(server.close)
    frames = [bare_frames(i, time.time()) for i in range(TOTAL_TICKS)]
    spec = ClientSpec(url=server.url, match=TRADE_PREFIX, key="trade_id")
    target = Target(spec, lambda i: None, lambda: len(server.connections))

    def send(i: int) -> None:
        trade, signal = frames[i]
        target.trades[f"trade_{i:06d}"] = (i, time.monotonic_ns())
        server.broadcast(trade)
        server.broadcast(signal)

    target.send = send
    return target


async def run_ticks(target: Target, first: int, count: int) -> None:
    await paced(count, TICKS_PER_SECOND, lambda i: target.send(first + i))


def result(target: Target, clients: int, arrivals: list[Arrivals]) -> Result:
    by_trade = all_arrivals(arrivals)
    measured = {t: ns for t, (i, ns) in target.trades.items() if i >= WARMUP_TICKS}
    latencies = sorted(a - ns for t, ns in measured.items() for a in by_trade.get(t, ()))
    return Result(
        clients, processes_for(clients), len(measured), len(measured) * clients, latencies
    )


async def run_clients(clients: int) -> tuple[Result, Result]:
    async with AsyncExitStack() as servers:
        targets = [await daemon_target(servers), await bare_target(servers)]
        group = await start_clients([s.spec for s in targets], clients, processes_for(clients))
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
                await group.wait_for(len(target.trades), timeout=30, spec=index)
            await servers.aclose()  # closes every client, which then report
            arrivals = await group.results()
        finally:
            await group.close()
    daemon, bare = (result(s, clients, a) for s, a in zip(targets, arrivals, strict=True))
    return daemon, bare


async def run_all() -> list[tuple[Result, Result]]:
    return [await run_clients(clients) for clients in CLIENT_COUNTS]


def main() -> None:
    configure_logging(LoggingConfig(level="warning"))
    results = asyncio.run(run_all())
    rows = []
    for daemon, bare in results:
        rows.append(
            (
                daemon.clients,
                daemon.processes,
                daemon.trades,
                f"{len(daemon.latencies_ns)}/{daemon.expected}",
                daemon.ms(0.50),
                daemon.ms(0.90),
                daemon.ms(0.99),
                daemon.ms(1.0),
                bare.ms(0.50),
                bare.ms(0.99),
                bare.ms(1.0),
            )
        )
    print(
        table(
            f"tick-to-trade: MarketData.handle_tick -> strategy_trade frame at clients in other "
            f"processes, {TICKS_PER_SECOND:.0f} ticks/s, 1 trade + 1 signal per tick, ms; "
            f"{ROUNDS} rounds interleaved with the bare baseline ({machine()})",
            (
                "clients",
                "procs",
                "trades",
                "deliveries",
                "p50",
                "p90",
                "p99",
                "max",
                "bare p50",
                "bare p99",
                "bare max",
            ),
            rows,
        )
    )
    print(verdict(results))


def verdict(results: list[tuple[Result, Result]]) -> str:
    parts = []
    for daemon, bare in results:
        target = TARGET_P99_MS.get(daemon.clients)
        if target is None:
            continue
        p99 = daemon.ms(0.99)
        mark = "ok" if p99 < target else "MISSED"
        plural = "s" if daemon.clients > 1 else ""
        parts.append(
            f"p99 {p99:.2f} ms with {daemon.clients} client{plural} "
            f"(target < {target:g} ms: {mark}; bare websockets {bare.ms(0.99):.2f} ms)"
        )
    lost = [d.clients for d, _ in results if len(d.latencies_ns) != d.expected]
    if lost:
        parts.append(f"frames missing with {lost} clients")
    return "tick-to-trade: " + "; ".join(parts)


if __name__ == "__main__":
    main()
