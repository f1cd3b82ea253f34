"""Loading history: 300,000 minute bars from CSV and from Parquet, side by side.

Data: a seeded random walk of 300,000 one-minute bars (about seven months),
written once to a temporary directory as a CSV file in our header
(``timestamp,open,high,low,close,volume``, epoch seconds, prices as Python
prints floats) and converted to Parquet the way ``orchestrator data import``
does it (:func:`orchestrator.marketdata.history.write_parquet`: UTC
microsecond timestamps, float64 prices). Writing is not timed.

Timed (``perf_counter``): :func:`orchestrator.marketdata.history.load_history`
on each file, which is what a backtest calls; both end with the same checks and
the same list of ``Bar`` objects, and the bench checks the two lists are equal.
Each figure is the best of 3 loads, the two formats taking turns. The CSV load
is the baseline; the target is a Parquet load at least 5x faster.

Then a recording (what ``[recording]`` writes): ``RECORDED_TICKS`` ticks of the
synthetic feed (one a second, about 3.5 days), written by the daemon's
:class:`~orchestrator.marketdata.recording.MarketRecorder`, loaded into one-minute
bars as a backtest over the recording loads them. Timed, best of 3 each, taking
turns: ``load_history`` (its ticks aggregated over whole columns,
:func:`~orchestrator.marketdata.history.aggregated_columns`) against the baseline,
the path it replaces, measured in the same run: every tick read into a ``Tick``
and fed one by one through the live ``BarAggregator``
(``aggregate(recorded_ticks(...))``). The bench checks that both give the same bars.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog
import structlog.testing

from bench.report import Verdict, machine, table
from orchestrator.marketdata.bars import aggregate
from orchestrator.marketdata.config import RecordingConfig, SyntheticFeedConfig
from orchestrator.marketdata.feeds import SyntheticFeed
from orchestrator.marketdata.history import load_history, recorded_ticks, write_parquet
from orchestrator.marketdata.recording import MarketRecorder
from orchestrator.model.clock import ManualClock
from orchestrator.model.market import Bar

BARS = 300_000
REPEATS = 3
TARGET = 5.0
START = 1_704_067_200  # 2024-01-01T00:00:00Z
RECORDED_TICKS = 300_000
RECORDING_TARGET = 3.0
"""The vectorised recording load must be at least this much faster than the loop."""


def random_walk_csv(path: Path) -> None:
    """``BARS`` plausible minute bars, seeded, as our CSV."""
    rng = np.random.default_rng(7)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0005, BARS)))
    opens = np.concatenate(([100.0], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.0003, BARS)) * closes
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    volumes = rng.integers(100, 10_000, BARS)
    starts = START + 60 * np.arange(BARS)
    with path.open("w", encoding="utf-8") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        rows = zip(starts.tolist(), opens.tolist(), highs.tolist(), lows.tolist(),
                   closes.tolist(), volumes.tolist(), strict=True)  # fmt: skip
        out.writelines(f"{t},{o!r},{h!r},{lo!r},{c!r},{v}\n" for t, o, h, lo, c, v in rows)


def timed(load: Callable[[], list[Bar]]) -> tuple[float, list[Bar]]:
    started = time.perf_counter()
    bars = load()
    return time.perf_counter() - started, bars


async def record_synthetic(directory: Path) -> None:
    """RECORDED_TICKS ticks of the seeded synthetic feed through the daemon's recorder."""
    config = SyntheticFeedConfig(symbols={"BENCH": 100.0}, ticks_per_second=1.0, seed=7)
    feed = SyntheticFeed(config, ManualClock(START))
    recorder = MarketRecorder(RecordingConfig(enabled=True), directory, ManualClock(START))
    recorder.open()
    for tick in feed.ticks(START, START + RECORDED_TICKS):
        recorder.record_tick(tick)
    await recorder.close()


def recording_verdict() -> Verdict:
    with tempfile.TemporaryDirectory(prefix="recording-bench-") as scratch:
        directory = Path(scratch)
        with structlog.testing.capture_logs():  # the recorder's line on closing
            asyncio.run(record_synthetic(directory))
        loads: dict[str, Callable[[], list[Bar]]] = {
            "ticks one by one (before)": lambda: aggregate(
                recorded_ticks(directory / "ticks", "BENCH"), "BENCH", "1m"
            ),
            "columns (load_history)": lambda: load_history(directory, "BENCH", "1m"),
        }
        timings: dict[str, list[float]] = {name: [] for name in loads}
        loaded: dict[str, list[Bar]] = {}
        for _ in range(REPEATS):
            for name, load in loads.items():
                seconds, loaded[name] = timed(load)
                timings[name].append(seconds)
    before, after = (min(values) for values in timings.values())
    if len(set(map(tuple, loaded.values()))) != 1:
        raise RuntimeError("the two recording loads do not give the same bars")
    bars = len(next(iter(loaded.values())))
    rows = [(name, RECORDED_TICKS, bars, min(values)) for name, values in timings.items()]
    title = f"Loading a recording of {RECORDED_TICKS:,} ticks into 1m bars"
    print(table(title, ("path", "ticks", "bars", "seconds"), rows))
    ratio = before / after
    verdict = "meets" if ratio >= RECORDING_TARGET else "misses"
    print(
        f"columns / ticks one by one: {ratio:.1f}x faster; "
        f"{verdict} the {RECORDING_TARGET:.0f}x target"
    )
    return Verdict(
        f"recording load, {RECORDED_TICKS:,} ticks",
        f"{ratio:.1f}x faster than the tick loop",
        f">= {RECORDING_TARGET:.0f}x",
        ratio >= RECORDING_TARGET,
    )


def main() -> list[Verdict]:
    with tempfile.TemporaryDirectory(prefix="history-bench-") as scratch:
        csv, parquet = Path(scratch) / "bench.csv", Path(scratch) / "BENCH.parquet"
        random_walk_csv(csv)
        write_parquet(load_history(csv, "BENCH"), parquet)
        sizes = {"CSV": csv.stat().st_size, "Parquet": parquet.stat().st_size}
        timings: dict[str, list[float]] = {"CSV": [], "Parquet": []}
        loaded: dict[str, list[Bar]] = {}
        for _ in range(REPEATS):
            for name, path in (("CSV", csv), ("Parquet", parquet)):
                seconds, loaded[name] = timed(lambda path=path: load_history(path, "BENCH"))
                timings[name].append(seconds)
    if loaded["CSV"] != loaded["Parquet"]:
        raise RuntimeError("the CSV and the Parquet file do not load as the same bars")
    best = {name: min(values) for name, values in timings.items()}
    rows = [
        (name, BARS, sizes[name] / 1e6, best[name], BARS / best[name] / 1e6)
        for name in ("CSV", "Parquet")
    ]
    print(
        table(
            f"Loading {BARS:,} minute bars (load_history, checks and Bar objects included)",
            ("format", "bars", "file MB", "seconds", "M bars/s"),
            rows,
        )
    )
    ratio = best["CSV"] / best["Parquet"]
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"Parquet / CSV: {ratio:.1f}x faster; {verdict} the {TARGET:.0f}x target")
    print(f"({machine()}; the same bars from both; best of {REPEATS})")
    figure = f"Parquet {ratio:.1f}x faster than CSV"
    history = Verdict(f"history load, {BARS:,} bars", figure, f">= {TARGET:.0f}x", ratio >= TARGET)
    return [history, recording_verdict()]


if __name__ == "__main__":
    main()
