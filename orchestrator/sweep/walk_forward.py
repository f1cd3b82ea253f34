"""Walk-forward analysis: windows of in-sample optimisation, each followed by an
out-of-sample run with the parameters it chose, stitched into one equity curve.

The bars are cut into ``windows`` consecutive test segments of equal length, each
preceded by its training segment, ``train_ratio`` times as long (rolling: the
training segment slides with the test one; ``anchored``: it always starts at the
first bar). A window's training bars all end before its first test bar, so no
window is optimised on the data it is judged on. The out-of-sample run of a
window starts with the initial capital; the stitched curve chains the windows'
returns: window k's equity scaled to start where window k-1 ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from pydantic import Field

from orchestrator.backtest.report import TradeRecord
from orchestrator.backtest.statistics import ClosedTrade, Statistics, compute_statistics
from orchestrator.model.validation import FrozenModel
from orchestrator.sweep.space import InvalidSpace
from orchestrator.sweep.trial import WindowRun

FloatArray = npt.NDArray[np.float64]


class WalkForwardSpec(FrozenModel):
    """How the bars are cut into windows."""

    windows: int = Field(4, ge=1, le=100, description="Out-of-sample windows.")
    train_ratio: float = Field(
        3.0, gt=0, le=100, description="A training segment's length over a test segment's."
    )
    anchored: bool = Field(
        False, description="Every training segment starts at the first bar (else it rolls)."
    )


@dataclass(frozen=True, slots=True)
class Window:
    """Bar indices, each range half-open: [train_start, train_end), [test_start, test_end)."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


def windows(spec: WalkForwardSpec, bars: int) -> list[Window]:
    """The windows over ``bars`` bars; InvalidSpace when a segment would be empty."""
    test_length = int(bars / (spec.train_ratio + spec.windows))
    train_length = int(test_length * spec.train_ratio)
    if test_length < 1 or train_length < 1:
        raise InvalidSpace(
            f"{bars} bars are too few for {spec.windows} windows with train_ratio "
            f"{spec.train_ratio:g}: use fewer windows or a longer history"
        )
    first_test = bars - spec.windows * test_length
    cut = []
    for index in range(spec.windows):
        test_start = first_test + index * test_length
        train_start = 0 if spec.anchored else test_start - train_length
        cut.append(Window(index, train_start, test_start, test_start, test_start + test_length))
    return cut


@dataclass(frozen=True, slots=True)
class Stitched:
    times: FloatArray
    equity: FloatArray
    closes: FloatArray
    trades: tuple[ClosedTrade, ...]
    statistics: Statistics


def stitch(runs: Sequence[WindowRun]) -> Stitched:
    """The windows' out-of-sample curves chained into one, and its statistics."""
    if not runs:
        raise ValueError("nothing to stitch")
    capital = runs[0].initial_capital
    level = capital
    curves: list[FloatArray] = []
    trades: list[ClosedTrade] = []
    offset = 0
    for run in runs:
        scale = level / run.initial_capital
        curve = run.equity * scale
        curves.append(curve)
        trades.extend(_closed(trade, offset, scale) for trade in run.trades)
        offset += len(curve)
        level = float(curve[-1])
    times = np.concatenate([run.times for run in runs])
    equity = np.concatenate(curves)
    closes = np.concatenate([run.closes for run in runs])
    statistics = compute_statistics(times, equity, closes, trades, first_trading_bar=0)
    return Stitched(times, equity, closes, tuple(trades), statistics)


def _closed(trade: TradeRecord, offset: int, scale: float) -> ClosedTrade:
    """A window's trade on the stitched curve: bars shifted, money scaled with the curve."""
    closed = trade.closed_trade()
    return replace(
        closed,
        entry_bar=closed.entry_bar + offset,
        exit_bar=closed.exit_bar + offset,
        size=closed.size * scale,
        pnl=closed.pnl * scale,
        commission=closed.commission * scale,
    )
