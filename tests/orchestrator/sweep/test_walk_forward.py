"""Walk-forward: windows whose test bars never overlap their training bars, and a
stitched out-of-sample curve equal to the window backtests run one by one."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.backtest.engine import build_engine, load_strategy
from orchestrator.bus import EventBus
from orchestrator.model.clock import SystemClock
from orchestrator.model.events import JobStatus
from orchestrator.sweep.config import SweepsConfig
from orchestrator.sweep.jobs import SweepManager
from orchestrator.sweep.runner import InProcessRunner
from orchestrator.sweep.search import SweepSpec
from orchestrator.sweep.space import InvalidSpace
from orchestrator.sweep.trial import sweep_bars, with_params
from orchestrator.sweep.walk_forward import WalkForwardSpec, windows
from tests.orchestrator.sweep.conftest import sma_sweep

SPACE = {"fast": {"low": 4, "high": 12, "step": 4}, "slow": {"choices": [20, 40]}}


@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize(("count", "ratio", "bars"), [(4, 3.0, 2148), (1, 1.0, 10), (7, 0.5, 999)])
def test_no_window_trains_on_its_test_bars(
    anchored: bool, count: int, ratio: float, bars: int
) -> None:
    cut = windows(WalkForwardSpec(windows=count, train_ratio=ratio, anchored=anchored), bars)
    assert len(cut) == count
    for window in cut:
        assert 0 <= window.train_start < window.train_end <= window.test_start < window.test_end
        assert window.test_end <= bars
    tests = [(w.test_start, w.test_end) for w in cut]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(tests))  # back to back
    assert cut[-1].test_end == bars


def test_too_few_bars_for_the_windows_is_refused() -> None:
    with pytest.raises(InvalidSpace, match="too few"):
        windows(WalkForwardSpec(windows=10, train_ratio=3), 12)


def test_the_stitched_equity_equals_the_window_backtests_run_one_by_one(
    goog_csv: Path, tmp_path: Path
) -> None:
    spec = sma_sweep(goog_csv, space=SPACE, walk_forward=WalkForwardSpec(windows=3, train_ratio=2))
    manager = SweepManager(SweepsConfig(), tmp_path, EventBus(), SystemClock(), InProcessRunner())
    result = asyncio.run(_completed(manager, spec))
    bars = sweep_bars(spec.backtest)
    cut = windows(spec.walk_forward or WalkForwardSpec(), len(bars))
    level, stitched = None, []
    for window, report in zip(cut, result["windows"], strict=True):
        assert report["test_bars"] == [window.test_start, window.test_end]
        assert report["train_bars"][1] <= window.test_start
        params = report["best"]["strategy_params"]
        backtest = with_params(spec.backtest, params)
        # One by one: the window's own backtest, warmed up on the bars just before it.
        cls, model = load_strategy(backtest.strategy)
        warmup = build_engine(backtest, cls, model, bars).warmup_bars()
        run = build_engine(backtest, cls, model, bars).run(
            bars[window.test_start - warmup : window.test_end]
        )
        equity = run.curve.equity[warmup:]
        level = run.initial_capital if level is None else level
        stitched.append(equity * (level / run.initial_capital))
        level = float(stitched[-1][-1])
        assert report["out_of_sample"]["trade_count"] == len(
            [t for t in run.trades if t.entry_ts >= bars[window.test_start].start]
        )
    expected = np.concatenate(stitched)
    series = result["out_of_sample"]["series"]["equity"]
    step = max(len(expected) // 500, 1)
    assert series == expected[::step].tolist()
    statistics = result["out_of_sample"]["statistics"]
    assert statistics["equity_final"] == pytest.approx(float(expected[-1]), rel=1e-12)


async def _completed(manager: SweepManager, spec: SweepSpec) -> dict[str, Any]:
    task = asyncio.create_task(manager.run())
    try:
        job_id = manager.submit(spec)
        info = await manager.wait(job_id)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert info.status is JobStatus.COMPLETED, info.error
    assert info.result is not None
    return dict(info.result)
