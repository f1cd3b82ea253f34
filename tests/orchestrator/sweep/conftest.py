"""GOOG (backtesting.py's bundled daily bars) as a history file, the SMA sweep over it,
and one embedded Dask cluster of two workers for the module that asks for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from backtesting.test import GOOG

from orchestrator.backtest.engine import BacktestSpec, FileSource
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.sweep.search import SweepSpec

GRID = {"fast": {"low": 2, "high": 16, "step": 2}, "slow": {"low": 20, "high": 90, "step": 10}}
"""8 x 8 points, every one valid (fast < slow)."""


async def until(condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Poll ``condition`` until it is truthy, its value; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not (value := condition()):  # noqa: ASYNC110 - other processes move the state
            await asyncio.sleep(0.02)
    return value


def write_goog(directory: Path) -> Path:
    frame = GOOG.copy()
    frame.index.name = "timestamp"
    frame.columns = [column.lower() for column in frame.columns]
    path = directory / "GOOG.csv"
    frame.to_csv(path)
    return path


@pytest.fixture(scope="session")
def goog_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_goog(tmp_path_factory.mktemp("goog"))


def sma_entry(kind: str = "sma_crossover", **params: Any) -> CatalogEntry:
    return CatalogEntry(
        id="sma",
        name="SMA crossover",
        kind=kind,
        params={"fast": 5, "slow": 20, **params},
        defaults=StrategyRunConfig(
            symbols=("GOOG",), data_resolution="1d", max_position_value=10_000
        ),
    )


def sma_sweep(path: Path, entry: CatalogEntry | None = None, **fields: Any) -> SweepSpec:
    backtest = BacktestSpec(strategy=entry or sma_entry(), source=FileSource(path=path))
    return SweepSpec(backtest=backtest, space=fields.pop("space", GRID), **fields)


def table(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A trials table in a form that does not depend on the order trials ran in."""
    return sorted(
        (tuple(sorted(row["params"].items())), row["value"], row["trades_digest"], row["state"])
        for row in result["trials"]
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dask_runner() -> AsyncIterator[Any]:
    from orchestrator.sweep.config import SweepsConfig
    from orchestrator.sweep.runner import DaskRunner

    runner = DaskRunner(SweepsConfig(workers=2, worker_memory_limit="0"))
    await runner.client()
    yield runner
    await runner.close()
