"""Recording in the daemon: a live run replays in a backtest with the same trades, and a
killed daemon leaves only complete files.

The daemon runs on ephemeral ports with ``[recording]`` on, on a manual clock,
fed scripted ticks (each seeded bar's four ticks, the way a replay makes them);
a catalog strategy trades them live. A backtest over the recording directory
then has exactly the live run's fills.
"""

from __future__ import annotations

import bisect
import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from orchestrator.backtest.engine import (
    BacktestEngine,
    BacktestSpec,
    FileSource,
    SyntheticSource,
    load_bars,
    load_strategy,
    run_backtest,
)
from orchestrator.marketdata.feeds import ohlcv_ticks
from orchestrator.marketdata.history import recorded_ticks
from orchestrator.model.events import Event, TradeExecuted
from orchestrator.model.market import Bar
from orchestrator.model.orders import Fill
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from tests.gateways.nng.nng_support import until
from tests.gateways.test_daemon_process import SERVERS, daemon_process, free_ports, write_config
from tests.support import TestDaemon, running_daemon, test_config
from tests.test_crash_recovery import STARTUP_TIMEOUT, spawned

SYMBOL = "AAPL"
CATALOG = CatalogEntry(
    id="sma-aapl",
    name="SMA crossover on AAPL",
    kind="sma_crossover",
    params={"fast": 3, "slow": 8, "allow_short": True},
    defaults=StrategyRunConfig(symbols=(SYMBOL,), data_resolution="1m"),
)


def seeded_bars() -> list[Bar]:
    """Six hours of minute bars of a seeded random walk: crossovers both ways."""
    source = SyntheticSource(duration_seconds=6 * 3600, ticks_per_second=0.2, seed=5)
    return load_bars(source, SYMBOL, "1m")


async def drive(daemon: TestDaemon, bars: Sequence[Bar]) -> None:
    """Each bar's four ticks at their moments, then the bar clock closes it on time."""
    market = daemon.daemon.core.market
    for bar in bars:
        for tick in ohlcv_ticks(bar):
            daemon.clock.set(tick.ts)
            market.handle_tick(tick)
        daemon.clock.set(bar.end)
        market.close_due_bars()


def comparable(fills: Sequence[Fill]) -> list[tuple[Any, ...]]:
    return [(f.status, f.side, f.quantity, f.price, f.commission, f.ts) for f in fills]


def bounded(fills: Sequence[Fill], bars: Sequence[Bar]) -> list[Fill]:
    """Live fills as a backtest makes them: no slipped fill outside the range of the bar
    it filled in (docs/orders.md); live has no bar to bound it."""
    starts = [bar.start for bar in bars]
    clamped = []
    for fill in fills:
        bar = bars[bisect.bisect_right(starts, fill.ts) - 1]
        clamped.append(replace(fill, price=min(max(fill.price, bar.low), bar.high)))
    return clamped


async def test_a_backtest_over_the_recording_has_the_live_trades(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    config = test_config(
        strategies=[CATALOG.model_dump()],
        recording={"enabled": True, "directory": str(recording)},
        broker={"fill_timeout_seconds": 3600},
    )
    bars = seeded_bars()
    warmup = CATALOG.params["slow"]
    live: list[Fill] = []

    def collect(event: Event) -> None:
        if isinstance(event, TradeExecuted):
            live.append(event.fill)

    async with running_daemon(config) as daemon:
        daemon.clock.set(bars[0].start)
        daemon.daemon.bus.subscribe(collect)
        # The first bars pass before the strategy starts: it warms up on them, live,
        # as the backtest warms up on the first warmup_bars of the recording.
        await drive(daemon, bars[:warmup])
        async with daemon.client() as client:
            reply = await client.request({"type": "start_strategy", "id": CATALOG.id})
            assert reply["type"] == "strategy_started"
        await drive(daemon, bars[warmup:])

    assert len(recorded_ticks(recording / "ticks", SYMBOL)) == 4 * len(bars)
    replayed = load_bars(FileSource(path=recording), SYMBOL, "1m")
    assert replayed == [replace(bar, ticks=4) for bar in bars]  # four ticks a bar, live
    cls, params = load_strategy(CATALOG)
    engine = BacktestEngine(
        cls,
        params,
        CATALOG.defaults,
        strategy_id=CATALOG.id,
        name=CATALOG.name,
        broker=config.broker,
        risk=config.risk,
        sizing_fraction=config.runtime.sizing_fraction,
    )
    engine.run(replayed)
    assert len(live) > 10
    assert comparable(engine.fills) == comparable(bounded(live, replayed))
    spec = BacktestSpec(strategy=CATALOG, source=FileSource(path=recording), symbol=SYMBOL)
    assert run_backtest(spec).fills == len(live)


# ---------------------------------------------------------------- a real process


def recording_config(tmp_path: Path) -> Path:
    ports = dict(zip(SERVERS, free_ports(len(SERVERS)), strict=True))
    path = write_config(tmp_path, ports)
    with path.open("a", encoding="utf-8") as text:
        text.write(
            "[nng]\nenabled = false\n"
            "[market_data.feed]\nkind = 'synthetic'\nticks_per_second = 50.0\n"
            "history_seconds = 0.0\n"
            f"[recording]\nenabled = true\ndirectory = '{tmp_path / 'recording'}'\n"
            "flush_rows = 40\nflush_seconds = 0.05\n"
            # Room for the writer to be seconds behind a 50 ms timer on a loaded machine:
            # dropping a buffer when it is (tested apart) is not what these tests test.
            "max_pending_files = 1000\n"
        )
    return path


def tick_files(recording: Path) -> list[Path]:
    return [p for p in (recording / "ticks").rglob("*.parquet") if not p.name.startswith(".")]


async def until_files(recording: Path, count: int) -> None:
    """Until ``count`` tick files are there (another process writes them)."""
    await until(lambda: len(tick_files(recording)) >= count, STARTUP_TIMEOUT)


def arrival_numbers(recording: Path) -> list[int]:
    table = ds.dataset(recording / "ticks", format="parquet", partitioning="hive").to_table()
    return sorted(table.column("seq").to_pylist())


async def test_a_killed_daemon_leaves_complete_files_of_a_gapless_prefix(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    async with spawned(recording_config(tmp_path)) as daemon:
        await daemon.wait_ready()
        await until_files(recording, 5)
        assert await daemon.kill() == -signal.SIGKILL
    numbers = arrival_numbers(recording)  # every visible file reads whole
    assert numbers == list(range(1, len(numbers) + 1))  # lost: only the end, never between
    assert len(numbers) >= len(tick_files(recording)) >= 5


async def test_a_clean_stop_writes_every_tick_the_feed_delivered(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    async with spawned(recording_config(tmp_path)) as daemon:
        await daemon.wait_ready()
        await until_files(recording, 2)
        assert await daemon.stop() == 0
    [closed] = [entry for entry in daemon.logs if entry.get("event") == "recording_closed"]
    numbers = arrival_numbers(recording)
    assert numbers == list(range(1, closed["rows"]["ticks"] + 1))
    assert closed["dropped"] == closed["failed"] == {}
    assert not [p for p in recording.rglob(".*")]


async def test_a_recording_directory_that_cannot_be_made_refuses_the_start(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    config = recording_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(tmp_path / "recording"), str(blocker / "rec")), "utf-8")

    async with daemon_process(config) as daemon:
        code, logs = await daemon.finish()

    assert code == 2
    [line] = [entry for entry in logs if entry.get("event") == "recording_refused"]
    assert line["error"].startswith(f"{blocker / 'rec'}: cannot create it")
