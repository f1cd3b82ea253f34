"""Fan-out: quote deliveries per second from the market data gateway to 100 clients.

Four servers run in this process at once: the market data gateway of a real
Daemon (system clock, journal and NNG publisher on, as in production), the same
with permessage-deflate (``connections.compression = true``), and as the
baseline a bare websockets server (``serve`` + ``broadcast`` of bytes encoded
before the clock starts), without and with ``compression="deflate"``.

100 clients per server, in 4 other processes (``bench.clients``), connect to
all four; on the gateways they subscribe to AAPL quotes (3001 protocol:
``subscribe``, then ``subscribed``). The gateway is driven by AAPL ticks
injected through ``MarketData.handle_tick``; each becomes one ``quote`` frame
that the gateway encodes once and broadcasts. The bare server broadcasts the
frames the gateway would send for the same ticks (same encoder, same size). The
tick's ``size`` carries its sequence number, so every delivery is matched to
its send.

After a warm-up on each, the servers take turns, ``ROUNDS`` times, each turn
``MEASURED`` frames, so that load from elsewhere on the machine falls on all of
them alike; each figure is that of the server's median round, and each ratio
the median of the ratios of rounds run one after the other (round ``r`` of the
gateway against round ``r`` of its baseline). Pacing is the same
for all and closed-loop: the producer sends while the slowest client is fewer
than ``WINDOW_HIGH`` frames behind, else sleeps until it is back to
``WINDOW_LOW`` (clients publish their counts in shared memory, not on the wire),
and yields to the event loop after every frame.

Per round: deliveries per second = frames x clients / (last arrival - first
send); latency per delivery = arrival - the instant before the send call
(``handle_tick`` or ``broadcast``); CPU per frame = CPU time of this process
during the round / frames (for the gateway: core, journal writer stage,
encoding, writes to 100 sockets; for the baseline: the broadcasts; for both the
same pacing loop), which load elsewhere on the machine does not inflate.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from bench.bare_server import BareServer
from bench.clients import Arrivals, ClientGroup, ClientSpec, all_arrivals, start_clients
from bench.report import Verdict, machine, percentile, table
from bench.rig import daemon_config, start_background, stop_background, wait_until
from gateways.api import outbound
from gateways.config import LoggingConfig
from gateways.daemon import Daemon
from gateways.logs import configure_logging
from orchestrator.model.market import Tick

CLIENTS = 100
PROCESSES = 4
WARMUP = 200
MEASURED = 600
ROUNDS = 5
WINDOW_HIGH = 8
WINDOW_LOW = 4
SYMBOL = "AAPL"
QUOTE_PREFIX = '{"type":"quote"'
SUBSCRIBE = '{"type":"subscribe","symbols":["AAPL"]}'
TARGET_RATIO = 0.95
GATEWAY = "market gateway"
BARE = "bare websockets"
TOTAL = WARMUP + ROUNDS * MEASURED


@dataclass(frozen=True, slots=True)
class Round:
    deliveries: int
    seconds: float
    cpu_seconds: float
    latencies_ns: list[int]

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    @property
    def cpu_micros_per_frame(self) -> float:
        return self.cpu_seconds / MEASURED * 1e6

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies_ns, fraction) / 1e6


@dataclass(slots=True)
class Target:
    """One server under test, how to make it send frame ``seq``, and what it did."""

    server: str
    compression: bool
    spec: ClientSpec
    send: Callable[[int], None]
    client_count: Callable[[], int]
    sent_ns: list[int] = field(default_factory=lambda: [0] * TOTAL)
    cpu_seconds: list[float] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    frame_bytes: float = 0.0

    @property
    def median(self) -> Round:
        ordered = sorted(self.rounds, key=lambda r: r.per_second)
        return ordered[len(ordered) // 2]

    def has_clients(self, count: int) -> bool:
        return self.client_count() == count


def price(seq: int) -> float:
    return 190.0 + (seq % 100) * 0.01


async def produce(group: ClientGroup, index: int, target: Target, first: int, count: int) -> None:
    """Send frames ``first`` .. ``first + count - 1`` and wait until every client has them."""
    started = time.process_time()
    for seq in range(first, first + count):
        if seq - min(group.received(index)) >= WINDOW_HIGH:
            await group.wait_for(seq - WINDOW_LOW, timeout=30, spec=index, poll=0.0005)
        target.sent_ns[seq] = time.monotonic_ns()
        target.send(seq)
        await asyncio.sleep(0)
    await group.wait_for(first + count, timeout=60, spec=index)
    target.cpu_seconds.append(time.process_time() - started)


def summarize(target: Target, arrivals: list[Arrivals]) -> None:
    by_seq = all_arrivals(arrivals)
    sizes = [size for connection in arrivals for _, _, size in connection]
    target.frame_bytes = sum(sizes) / len(sizes)
    for number, cpu_seconds in enumerate(target.cpu_seconds[1:]):
        first = WARMUP + number * MEASURED
        latencies, last = [], 0
        for seq in range(first, first + MEASURED):
            for ns in by_seq.get(seq, ()):
                latencies.append(ns - target.sent_ns[seq])
                last = max(last, ns)
        latencies.sort()
        seconds = (last - target.sent_ns[first]) / 1e9
        target.rounds.append(Round(len(latencies), seconds, cpu_seconds, latencies))


def bare_frames() -> list[bytes]:
    """The quote frames of the gateway for the same ticks, encoded before timing."""
    now = time.time()
    frames = []
    for seq in range(TOTAL):
        tick = Tick(SYMBOL, price(seq), float(seq), now)
        position = outbound.StreamPosition(seq + 1, 1_700_000_000)
        frames.append(outbound.encode("quote", outbound.quote_data(tick), now, position=position))
    return frames


async def gateway(stack: AsyncExitStack, compression: bool) -> Target:
    state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fanout-"))
    daemon = Daemon(daemon_config(state_dir, connections={"compression": compression}))
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    tasks = start_background(daemon)
    stack.push_async_callback(stop_background, tasks)
    server = daemon.servers["market_data"]
    market, clock = daemon.core.market, daemon.clock

    def send(seq: int) -> None:
        market.handle_tick(Tick(SYMBOL, price(seq), float(seq), clock.now()))

    spec = ClientSpec(
        url=f"ws://127.0.0.1:{server.port}/ws",
        match=QUOTE_PREFIX,
        key="quote_seq",
        subscribe=SUBSCRIBE,
        compression="deflate" if compression else None,
    )
    return Target(GATEWAY, compression, spec, send, lambda: server.client_count)


async def bare(stack: AsyncExitStack, compression: bool, frames: list[bytes]) -> Target:
    server = BareServer("deflate" if compression else None)
    await server.start()
    stack.push_async_callback(server.close)

    def send(seq: int) -> None:
        server.broadcast(frames[seq])

    spec = ClientSpec(
        url=server.url,
        match=QUOTE_PREFIX,
        key="quote_seq",
        compression="deflate" if compression else None,
    )
    return Target(BARE, compression, spec, send, lambda: len(server.connections))


async def run_all() -> list[Target]:
    frames = bare_frames()
    async with AsyncExitStack() as servers:
        targets = [
            await bare(servers, False, frames),
            await gateway(servers, False),
            await bare(servers, True, frames),
            await gateway(servers, True),
        ]
        group = await start_clients([t.spec for t in targets], CLIENTS, PROCESSES)
        try:
            await group.ready()
            for target in targets:
                await wait_until(functools.partial(target.has_clients, CLIENTS))
            for index, target in enumerate(targets):
                await produce(group, index, target, 0, WARMUP)
            for number in range(ROUNDS):
                for index, target in enumerate(targets):
                    await produce(group, index, target, WARMUP + number * MEASURED, MEASURED)
            await servers.aclose()  # closes every client, which then report
            arrivals = await group.results()
        finally:
            await group.close()
    for target, received in zip(targets, arrivals, strict=True):
        summarize(target, received)
    return targets


def paired_ratio(numerator: Target, denominator: Target) -> float:
    """Median over rounds of the ratio of rates of two targets' rounds of the same number."""
    pairs = zip(numerator.rounds, denominator.rounds, strict=True)
    return statistics.median(a.per_second / b.per_second for a, b in pairs)


def main() -> list[Verdict]:
    configure_logging(LoggingConfig(level="warning"))
    targets = asyncio.run(run_all())
    baseline = {t.compression: t for t in targets if t.server == BARE}
    rows = []
    for t in targets:
        median = t.median
        rates = [r.per_second for r in t.rounds]
        rows.append(
            (
                t.server,
                "deflate" if t.compression else "off",
                t.frame_bytes,
                f"{median.deliveries}/{MEASURED * CLIENTS}",
                median.per_second,
                f"{min(rates) / 1000:.0f}k-{max(rates) / 1000:.0f}k",
                median.ms(0.50),
                median.ms(0.99),
                median.cpu_micros_per_frame,
                f"{paired_ratio(t, baseline[t.compression]):.0%}",
            )
        )
    print(
        table(
            f"fan-out: AAPL quotes to {CLIENTS} clients in {PROCESSES} processes, "
            f"{MEASURED} frames a round, median of {ROUNDS} interleaved rounds (ratios: "
            f"median of round by round ratios), "
            f"at most {WINDOW_HIGH} frames in flight ({machine()})",
            (
                "server",
                "compression",
                "frame B",
                "deliveries",
                "deliveries/s",
                "range",
                "p50 ms",
                "p99 ms",
                "CPU us/frame",
                "vs bare",
            ),
            rows,
        )
    )
    print(verdict(targets))
    return [summary_verdict(targets)]


def summary_verdict(targets: list[Target]) -> Verdict:
    ratio = paired_ratio(target_of(targets, GATEWAY), target_of(targets, BARE))
    whole = all(r.deliveries == MEASURED * CLIENTS for t in targets for r in t.rounds)
    figure = f"{ratio:.1%} of bare websockets" + ("" if whole else ", deliveries missing")
    name = f"fan-out, {CLIENTS} clients, no compression"
    return Verdict(name, figure, f">= {TARGET_RATIO:.0%}", whole and ratio >= TARGET_RATIO)


def target_of(targets: list[Target], server: str) -> Target:
    return next(t for t in targets if t.server == server and not t.compression)


def verdict(targets: list[Target]) -> str:
    every = {(t.server, t.compression): t for t in targets}
    by = {key: t.median for key, t in every.items()}
    ratio = paired_ratio(every[(GATEWAY, False)], every[(BARE, False)])
    mark = "ok" if ratio >= TARGET_RATIO else "MISSED"
    cost = {
        name: 1 - paired_ratio(every[(name, True)], every[(name, False)])
        for name in (GATEWAY, BARE)
    }
    lost = [
        f"{t.server}/{'deflate' if t.compression else 'off'}"
        for t in targets
        if any(r.deliveries != MEASURED * CLIENTS for r in t.rounds)
    ]
    cpu = {name: by[(name, False)].cpu_micros_per_frame for name in (GATEWAY, BARE)}
    line = (
        f"fan-out: {ratio:.0%} of bare websockets (target >= {TARGET_RATIO:.0%}: {mark}); "
        f"CPU per frame {cpu[GATEWAY] / cpu[BARE]:.2f}x bare's; "
        f"permessage-deflate costs {cost[GATEWAY]:.0%} of the rate on the gateway, "
        f"{cost[BARE]:.0%} on bare websockets"
    )
    return line + (f"; deliveries missing in {', '.join(lost)}" if lost else "")


if __name__ == "__main__":
    main()
