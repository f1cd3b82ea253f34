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
from typing import Any

from bench import throughput_bench

SYMBOLS = 10
TOP = 20


async def profiled_daemon(ticks: int) -> tuple[throughput_bench.Run, pstats.Stats]:
    profile = cProfile.Profile()
    measure = throughput_bench.measure

    async def measured(*args: Any, **kwargs: Any) -> throughput_bench.Run:
        profile.enable()
        try:
            return await measure(*args, **kwargs)
        finally:
            profile.disable()

    throughput_bench.measure = measured  # the daemon case as the benchmark runs it
    try:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as state_dir:
            config = throughput_bench.bench_config(SYMBOLS, state_dir)
            run = await throughput_bench.run_daemon(
                config, throughput_bench.generate_ticks(SYMBOLS, ticks)
            )
    finally:
        throughput_bench.measure = measure
    return run, pstats.Stats(profile)


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    run, stats = asyncio.run(profiled_daemon(ticks))
    print(f"daemon, {SYMBOLS} symbols, under cProfile: {run.ticks_per_second:,.0f} ticks/s")
    stats.sort_stats("tottime").print_stats(TOP)


if __name__ == "__main__":
    main()
