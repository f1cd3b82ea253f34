"""Where the CPU of one traded tick goes: ``python -m bench.profile_latency``.

Not a benchmark (no baseline; ``python -m bench`` does not run it): the
``latency`` benchmark's daemon (``latency_bench.daemon_target``: the whole
Daemon, the journal on in its default mode unless ``--synchronous`` says
otherwise, NNG on, ``EveryTick``) with its clients in other processes, ticks
injected at 100 per second as the benchmark does (``--ticks``, default 1,500,
after a 50-tick warm-up; ``--clients``, default 1). It prints:

- the CPU time of each thread of the process per tick (from ``/proc``: the
  event loop, ``journal-writer``, NNG's own threads), with its kernel share and
  context switches; the whole is the figure to compare with the benchmark's
  ``CPU us/tick``;
- the time the cyclic garbage collector took, per generation;
- with ``--profile stages``, the way of each trade from its tick's injection:
  when the journal writer's thread took it, when the commit was done (and the
  CPU time of the commit in that thread), when the event loop ran the commit's
  callback, and when the trade had been written to every client (the
  benchmark's ``in daemon``), each as p50 and p90 in microseconds;
- with ``--profile pyinstrument`` (the default), the event loop's thread
  sampled every millisecond (wall time: ``epoll.poll`` is the idle part); with
  ``--profile cprofile``, cProfile in the event loop's thread and in the journal
  writer's (own and cumulative time per function; the profiler inflates each
  call about threefold, so read the shares and the calls per tick);
  ``--profile none`` for the CPU figures alone, undisturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import get_args

from pyinstrument import Profiler

from bench import latency_bench
from bench.clients import start_clients
from bench.report import percentile
from bench.rig import paced, wait_until
from gateways.config import LoggingConfig
from gateways.logs import configure_logging
from orchestrator.journal.store import Record
from orchestrator.journal.writer import JournalWriter, _Committed, _Logged
from orchestrator.model.events import Event, TradeExecuted

WARMUP = 50
SAMPLE_SECONDS = 0.001
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILES = ("pyinstrument", "cprofile", "stages", "none")


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    """Per thread id: its name, CPU seconds (user + system), of them system, context switches."""

    names: dict[int, str]
    seconds: dict[int, float]
    system: dict[int, float]
    switches: dict[int, int]


def thread_times() -> ThreadTimes:
    """Every thread of this process, Python's and native ones, from ``/proc``."""
    python_names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    times = ThreadTimes({}, {}, {}, {})
    for entry in os.listdir("/proc/self/task"):
        tid = int(entry)
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as comm:
                native_name = comm.read().strip()
            with open(f"/proc/self/task/{tid}/status") as status:
                switches = sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        name = "event loop" if tid == main else python_names.get(tid) or native_name
        times.names[tid] = name
        times.seconds[tid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        times.system[tid] = int(fields[12]) / CLOCK_TICKS
        times.switches[tid] = switches
    return times


def per_thread(before: ThreadTimes, after: ThreadTimes, ticks: int) -> str:
    rows = []
    for tid, seconds in after.seconds.items():
        spent = seconds - before.seconds.get(tid, 0.0)
        kernel = after.system[tid] - before.system.get(tid, 0.0)
        switched = after.switches[tid] - before.switches.get(tid, 0)
        if spent:
            rows.append((spent, kernel, switched, after.names[tid]))
    rows.sort(reverse=True)
    lines = [f"CPU per traded tick, by thread ({ticks} ticks; /proc, 10 ms resolution):"]
    lines += [
        f"  {name:<16} {spent / ticks * 1e6:6.0f} us (kernel {kernel / ticks * 1e6:.0f} us), "
        f"{switched / ticks:.1f} context switches"
        for spent, kernel, switched, name in rows
    ]
    total = sum(row[0] for row in rows)
    lines.append(f"  {'whole process':<16} {total / ticks * 1e6:6.0f} us")
    return "\n".join(lines)


class GcTimes:
    """A ``gc.callbacks`` entry: time in the cyclic collector per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self.heap = (0, 0)
        """Objects the collector tracks, and of them frozen, when it was last read."""
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds[info["generation"]] += time.perf_counter() - self._started
        self.runs[info["generation"]] += 1

    def read_heap(self) -> None:
        self.heap = (len(gc.get_objects()), gc.get_freeze_count())

    def text(self, ticks: int) -> str:
        tracked, frozen = self.heap
        each = "; ".join(
            f"gen{g} {self.runs[g]} runs, {self.seconds[g] / ticks * 1e6:.0f} us per tick"
            f" ({self.seconds[g] * 1e3:.0f} ms in all)"
            for g in range(3)
        )
        return f"cyclic GC, every thread ({tracked:,} objects tracked, {frozen:,} frozen): {each}"


@contextmanager
def profiled_writer_thread(profile: cProfile.Profile) -> Iterator[None]:
    """cProfile in the journal writer's thread, from its start (warm-up included)."""
    original = JournalWriter._write_forever

    def write_forever(writer: JournalWriter) -> None:
        profile.enable()
        try:
            original(writer)
        finally:
            profile.disable()

    setattr(JournalWriter, "_write_forever", write_forever)  # noqa: B010 (a method, for mypy)
    try:
        yield
    finally:
        setattr(JournalWriter, "_write_forever", original)  # noqa: B010


class Stages:
    """Each trade's way through the journal writer, in ns after its tick's injection
    (``target.sent``), keyed by trade id; installed around the writer's own steps."""

    NAMES = (
        "handed to the writer",
        "told (deliver begins)",
        "written to clients",
        "writer took it",
        "committed",
        "loop has the commit",
    )
    """In NORMAL a trade is told from the redo log, inside ``submit``: its commit comes
    after ``written to clients`` and its group has no events left to deliver."""

    def __init__(self, target: latency_bench.Target) -> None:
        self._target = target
        self._seen: list[tuple[str, str, int]] = []
        self.commit_cpu_ns: list[int] = []

    def _mark(self, name: str, records: Iterable[object]) -> None:
        """When ``name`` happened to each trade of ``records``; its injection is looked
        up at the end (a trade is in ``target.sent`` only once the bus has it)."""
        now = time.monotonic_ns()
        for record in records:
            if isinstance(record, TradeExecuted):
                self._seen.append((name, record.fill.id, now))
            elif isinstance(record, _Logged):  # the redo log's rows: a fill row's id is second
                self._seen.extend((name, row[1], now) for row in record.rows.fills)

    @contextmanager
    def installed(self) -> Iterator[None]:
        submit, commit = JournalWriter.submit, JournalWriter._commit
        committed, deliver = JournalWriter._on_committed, JournalWriter._deliver_events

        def timed_submit(writer: JournalWriter, record: Record) -> None:
            self._mark("handed to the writer", (record,))
            submit(writer, record)

        def timed_deliver(
            writer: JournalWriter, events: Sequence[Event], positions: Sequence[int | None]
        ) -> None:
            self._mark("told (deliver begins)", events)
            deliver(writer, events, positions)

        def timed_commit(writer: JournalWriter, group: list[Record | _Logged]) -> _Committed:
            self._mark("writer took it", group)
            started = time.thread_time_ns()
            done = commit(writer, group)
            self.commit_cpu_ns.append(time.thread_time_ns() - started)
            self._mark("committed", group)
            return done

        def timed_committed(writer: JournalWriter, group: _Committed) -> None:
            self._mark("loop has the commit", group.events)
            committed(writer, group)

        setattr(JournalWriter, "submit", timed_submit)  # noqa: B010 (a method, for mypy)
        setattr(JournalWriter, "_commit", timed_commit)  # noqa: B010
        setattr(JournalWriter, "_on_committed", timed_committed)  # noqa: B010
        setattr(JournalWriter, "_deliver_events", timed_deliver)  # noqa: B010
        try:
            yield
        finally:
            setattr(JournalWriter, "submit", submit)  # noqa: B010
            setattr(JournalWriter, "_commit", commit)  # noqa: B010
            setattr(JournalWriter, "_on_committed", committed)  # noqa: B010
            setattr(JournalWriter, "_deliver_events", deliver)  # noqa: B010

    def text(self) -> str:
        sent = self._target.sent
        seen = [*self._seen, *(("written to clients", *w) for w in self._target.written.items())]
        stages: dict[str, list[int]] = {name: [] for name in self.NAMES}
        for name, trade, ns in seen:
            index, injected = sent.get(trade, (-1, 0))
            if index >= WARMUP:
                stages[name].append(ns - injected)
        lines = ["=== each trade's way, from its tick's injection (us) ==="]
        for name, unordered in stages.items():
            values = sorted(unordered)
            lines.append(
                f"  {name:<20} p50 {percentile(values, 0.5) / 1e3:7.0f}   "
                f"p90 {percentile(values, 0.9) / 1e3:7.0f}   ({len(values)} trades)"
            )
        cpu = percentile(sorted(self.commit_cpu_ns), 0.5) / 1e3
        lines.append(f"  the commit's CPU time in the writer's thread: p50 {cpu:.0f} us")
        return "\n".join(lines)


def stats_text(profile: cProfile.Profile, ticks: int, lines: int) -> str:
    if not profile.getstats():
        return "(nothing ran)\n"
    stream = io.StringIO()
    stream.write(f"(times for {ticks} ticks: divide by {ticks} for one)\n")
    stats = pstats.Stats(profile, stream=stream)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return stream.getvalue()


async def profiled_ticks(
    send: Callable[[int], None], ticks: int, profile: str, writer: cProfile.Profile
) -> str:
    """Inject ``ticks`` ticks under the profiler chosen; its report."""

    async def inject() -> None:
        await paced(ticks, latency_bench.TICKS_PER_SECOND, lambda i: send(WARMUP + i))

    if profile in ("none", "stages"):
        await inject()
        return ""
    if profile == "cprofile":
        loop = cProfile.Profile()
        loop.enable()
        await inject()
        loop.disable()
        return (
            f"=== the event loop's thread (cProfile) ===\n{stats_text(loop, ticks, 50)}\n"
            f"=== the journal-writer thread (cProfile) ===\n{stats_text(writer, ticks, 30)}"
        )
    sampler = Profiler(interval=SAMPLE_SECONDS, async_mode="disabled")
    with sampler:
        await inject()
    text = sampler.output_text(unicode=False, color=False)
    return f"=== the event loop's thread (pyinstrument, {ticks} ticks) ===\n{text}"


async def run(
    ticks: int, profile: str, synchronous: latency_bench.Synchronous, clients: int = 1
) -> str:
    writer = cProfile.Profile()
    collector = GcTimes()
    async with AsyncExitStack() as stack:
        if profile == "cprofile":
            stack.enter_context(profiled_writer_thread(writer))
        target = await latency_bench.daemon_target(stack, latency_bench.DAEMON, synchronous)
        stages = Stages(target)
        if profile == "stages":
            stack.enter_context(stages.installed())
        group = await start_clients([target.spec], clients, latency_bench.processes_for(clients))
        stack.push_async_callback(group.close)
        await group.ready()
        await wait_until(lambda: target.has_clients(clients))
        await paced(WARMUP, latency_bench.TICKS_PER_SECOND, target.send)
        gc.callbacks.append(collector)
        before = thread_times()
        try:
            report = await profiled_ticks(target.send, ticks, profile, writer)
            after = thread_times()
        finally:
            gc.callbacks.remove(collector)
        collector.read_heap()
        await group.wait_for(len(target.sent), timeout=60)
    if profile == "stages":
        report = stages.text()
    return f"{per_thread(before, after, ticks)}\n{collector.text(ticks)}\n\n{report}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_latency")
    parser.add_argument("--ticks", type=int, default=1500)
    parser.add_argument("--profile", choices=PROFILES, default="pyinstrument")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument(
        "--synchronous",
        choices=get_args(latency_bench.Synchronous),
        default=latency_bench.DEFAULT_DURABILITY,
    )
    args = parser.parse_args()
    configure_logging(LoggingConfig(level="warning"))
    print(
        f"profile_latency: {args.ticks} traded ticks at {latency_bench.TICKS_PER_SECOND:.0f}/s, "
        f"{args.clients} client(s), journal synchronous = {args.synchronous}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(asyncio.run(run(args.ticks, args.profile, args.synchronous, args.clients)))


if __name__ == "__main__":
    main()
