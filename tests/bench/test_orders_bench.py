"""The orders benchmark's loads do what its figures claim (nothing timed): every
resting order placed passes risk and rests, one tick per symbol fills them all and a
bracket's fill arms its two exits; the backtest's trades are backtesting.py's."""

from __future__ import annotations

import pytest
from backtesting.test import GOOG

import bench.orders_bench as orders_bench
from bench.orders_bench import BRACKET, RESTING, RestingBench, ours, theirs, to_bars


@pytest.mark.parametrize(("bracket", "exits"), [(None, 0), (BRACKET, 2 * RESTING)])
def test_the_resting_load_rests_then_fills_whole(bracket: object, exits: int) -> None:
    bench = RestingBench(bracket)  # type: ignore[arg-type]
    bench.place()
    assert bench.resting() == RESTING and bench.filled == bench.refused == 0
    bench.touch()
    assert (bench.filled, bench.refused, bench.resting()) == (RESTING, 0, exits)


def test_the_backtest_trades_are_backtesting_pys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders_bench, "BACKTEST_REPEATS", 1)
    mine = ours(to_bars(GOOG, "GOOG", "1d"), "GOOG")
    expected = theirs(GOOG, "GOOG")
    assert len(expected.trades) > 100
    assert mine.trades == expected.trades
