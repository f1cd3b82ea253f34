"""Where the time of one tick goes in the whole daemon: cProfile around the timed part of
``throughput_bench``'s daemon case (10 symbols, no client), functions by own time.

Run: ``.venv/bin/python -m bench.profile_throughput [ticks]`` (default 40,000; the
first 15,000 are the benchmark's warm-up). cProfile slows every call about
threefold, so read the shares, not the rate; bench/README.md keeps the figures.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
from contextlib import AsyncExitStack

from bench import throughput_bench

SYMBOLS = 10
TOP = 20


async def profiled_daemon(ticks: int) -> tuple[throughput_bench.Run, pstats.Stats]:
    """The daemon lane as the benchmark builds it, warmed up unprofiled, then profiled."""
    profile = cProfile.Profile()
    feed = throughput_bench.generate_ticks(SYMBOLS, ticks)
    warmup, measured = feed[: throughput_bench.WARMUP_TICKS], feed[throughput_bench.WARMUP_TICKS :]
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as state_dir:
        config = throughput_bench.bench_config(SYMBOLS, state_dir)
        async with AsyncExitStack() as stack:
            lane = await throughput_bench.daemon_lane(stack, config)
            await lane.feed(warmup)
            lane.seconds = 0.0
            profile.enable()
            try:
                await lane.feed(measured)
            finally:
                profile.disable()
    return throughput_bench.Run(len(measured), lane.seconds, 0, 0, 0, 0), pstats.Stats(profile)


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    run, stats = asyncio.run(profiled_daemon(ticks))
    print(f"daemon, {SYMBOLS} symbols, under cProfile: {run.ticks_per_second:,.0f} ticks/s")
    stats.sort_stats("tottime").print_stats(TOP)


if __name__ == "__main__":
    main()
