"""A live run, recorded, replays in a backtest with the same trades.

The daemon runs on ephemeral ports with ``[recording]`` on, on a manual clock,
fed scripted ticks (each seeded bar's four ticks, the way a replay makes them);
a catalog strategy trades them live. A backtest over the recording directory
then has exactly the live run's fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from tests.support import TestDaemon, running_daemon, test_config

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
    assert comparable(engine.fills) == comparable(live)
    spec = BacktestSpec(strategy=CATALOG, source=FileSource(path=recording), symbol=SYMBOL)
    assert run_backtest(spec).fills == len(live)
