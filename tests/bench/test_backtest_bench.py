"""The backtest benchmark's trade comparison, and its claim on GOOG: the catalog's
sma_crossover through run_backtest's engine trades as backtesting.py does (nothing timed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backtesting.test import GOOG

from bench.backtest_bench import (
    Comparison,
    Run,
    Trade,
    catalog_spec,
    run_backtesting_py,
    run_catalog,
    same_bars_as_a_job,
    to_bars,
    verdict,
    write_csv,
)
from orchestrator.backtest.engine import load_bars, run_backtest

LONG = Trade(1, 3600.0, 7200.0, 100.0, 101.0, 0.0098)
SHORT = Trade(-1, 7200.0, 10800.0, 101.0, 100.5, 0.0047)


def comparison(theirs: list[Trade], ours: list[Trade], seconds: float = 1.0) -> Comparison:
    return Comparison("x", 1000, 0.0, Run(seconds, seconds, theirs, 0.0), Run(1.0, 1.0, ours, 0.0))


def test_trades_are_the_same_by_side_bars_and_prices_not_by_return() -> None:
    # The returns differ by sizing (a compounding account against a fixed stake).
    assert LONG.same_as(replace(LONG, net_return=0.01))
    for changed in ({"direction": -1}, {"entry_ts": 0.0}, {"exit_ts": 0.0}, {"exit_price": 1.0}):
        assert not LONG.same_as(replace(LONG, **changed))  # type: ignore[arg-type]


def test_all_identical_needs_every_trade_in_order_and_as_many() -> None:
    assert comparison([LONG, SHORT], [LONG, SHORT]).all_identical
    assert comparison([LONG, SHORT], [SHORT, LONG]).identical == 0
    assert not comparison([LONG, SHORT], [LONG]).all_identical
    assert not comparison([LONG], [LONG, SHORT]).all_identical


def test_the_verdict_wants_the_speed_and_the_same_trades() -> None:
    assert verdict(comparison([LONG], [LONG], seconds=5.0)).passed
    assert not verdict(comparison([LONG], [LONG], seconds=4.9)).passed
    assert not verdict(comparison([LONG], [SHORT], seconds=50.0)).passed


def test_on_goog_the_catalog_strategy_trades_as_backtesting_py(tmp_path: Path) -> None:
    spec = catalog_spec("GOOG", "1d", write_csv(GOOG, tmp_path / "GOOG.csv"), 0.002)
    bars = load_bars(spec.source, "GOOG", "1d")
    same_bars_as_a_job(GOOG, spec, to_bars(GOOG, "GOOG", "1d"))
    ours = run_catalog(spec, bars, repeats=1)
    theirs = run_backtesting_py(GOOG, 0.002, repeats=1)
    assert comparison(theirs.trades, ours.trades).all_identical
    assert len(ours.trades) > 50
    # The benchmark's engine is run_backtest's: the job's result, to the trade.
    result = run_backtest(spec)
    assert (result.total_trades, result.total_return) == (len(ours.trades), ours.total_return)
