"""What a Dask worker runs: a sweep's bars, and one trial over them.

A trial is a single backtest: the catalog entry with the trial's parameters over
the sweep's bars (or a window of them), through the same engines
(:func:`~orchestrator.backtest.engine.build_engine` for one symbol,
:func:`~orchestrator.backtest.multi_symbol.build_multi_symbol_engine` for several on
one account) and :func:`~orchestrator.backtest.report.build_report` as a backtest
job, so a trial and a plain backtest with the same parameters make the same trades
(the trades' digest shows it). These functions are plain and picklable by reference: Dask
sends their names, and each worker imports this module.

A trial never raises for a problem of its own (parameters the model refuses, a
strategy that raises): it returns the error, which becomes a failed row of the
table. Bars that cannot be loaded raise, and fail the sweep.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from orchestrator.backtest.engine import (
    BacktestError,
    BacktestResult,
    BacktestSpec,
    build_engine,
    load_bars,
    load_strategy,
)
from orchestrator.backtest.multi_symbol import build_multi_symbol_engine, load_symbol_bars
from orchestrator.backtest.report import BacktestReport, TradeRecord, build_report
from orchestrator.model.market import Bar

FloatArray = npt.NDArray[np.float64]

SweepBars = list[Bar] | dict[str, list[Bar]]
"""A sweep's history: one symbol's bars, or each symbol's (several on one account)."""

WALK_FORWARD_ONE_SYMBOL = (
    "a walk-forward runs over one symbol: its windows are cut from one symbol's bars; "
    "sweep several symbols without walk_forward, or walk forward one symbol at a time"
)


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """A trial's figures, or why it has none."""

    statistics: dict[str, Any]
    """The report's statistics, snake_case as a backtest job's result has them."""
    total_trades: int
    trades_digest: str
    """SHA-256 (16 hex digits) of the run's round trips: equal digests, equal trades."""
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> TrialOutcome:
        return cls({}, 0, "", error)


@dataclass(frozen=True, slots=True)
class WindowRun:
    """An out-of-sample run of a walk-forward window: its bars only, warm-up cut off."""

    outcome: TrialOutcome
    times: FloatArray
    equity: FloatArray
    closes: FloatArray
    trades: tuple[TradeRecord, ...]
    """The closed trades, entry and exit bars counted from the window's first bar."""
    initial_capital: float


def quiet_logs() -> None:
    """Only errors from a worker's trials: the guardian logs every refused order, which in
    a sweep is noise (as in a backtest job's worker)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def sweep_bars(spec: BacktestSpec) -> SweepBars:
    """The bars every trial of the sweep runs over; BacktestError says why not."""
    if len(spec.traded_symbols) > 1:
        return load_symbol_bars(spec)
    bars = load_bars(spec.source, spec.traded_symbol, spec.run_config.data_resolution)
    if not bars:
        raise BacktestError("no data: the source produced no bars")
    return bars


def bar_count(bars: SweepBars) -> int:
    """Bars of the history: of its one symbol, or of all its symbols."""
    if isinstance(bars, dict):
        return sum(map(len, bars.values()))
    return len(bars)


def with_params(spec: BacktestSpec, params: Mapping[str, Any]) -> BacktestSpec:
    """``spec`` with the trial's parameters over the catalog entry's own."""
    entry = spec.strategy
    merged = entry.model_copy(update={"params": {**entry.params, **params}})
    return spec.model_copy(update={"strategy": merged})


def run_trial(
    spec: BacktestSpec,
    params: Mapping[str, Any],
    bars: SweepBars,
    start: int = 0,
    end: int | None = None,
) -> TrialOutcome:
    """One backtest of ``spec`` with ``params`` over ``bars[start:end]`` (one symbol), or
    over every symbol's bars on one account (several: a walk-forward, which cuts the
    history into windows, is of one symbol)."""
    trial = with_params(spec, params)
    try:
        if isinstance(bars, dict):
            report, result = _run_account(trial, bars)
        else:
            report, result = _run(trial, bars[start:end])
    except BacktestError as exc:
        return TrialOutcome.failed(exc.message)
    return _outcome(report, result)


def run_window(
    spec: BacktestSpec,
    params: Mapping[str, Any],
    bars: SweepBars,
    test_start: int,
    test_end: int,
) -> WindowRun | TrialOutcome:
    """The out-of-sample run of a window: the bars before ``test_start`` warm the strategy
    up (as live, where a strategy starts with history), it trades from ``test_start`` to
    ``test_end``; its curve and trades are the test bars'. A TrialOutcome when it failed."""
    if isinstance(bars, dict):
        return TrialOutcome.failed(WALK_FORWARD_ONE_SYMBOL)
    trial = with_params(spec, params)
    try:
        strategy_cls, strategy_params = load_strategy(trial.strategy)
        warmup = build_engine(trial, strategy_cls, strategy_params, bars).warmup_bars()
        first = max(test_start - warmup, 0)
        report, result = _run(trial, bars[first:test_end])
    except BacktestError as exc:
        return TrialOutcome.failed(exc.message)
    cut = test_start - first
    trades = tuple(
        trade._replace(entry_bar=trade.entry_bar - cut, exit_bar=trade.exit_bar - cut)
        for trade in report.trades
    )
    return WindowRun(
        outcome=_outcome(report, result),
        times=report.times[cut:],
        equity=report.equity[cut:],
        closes=report.closes[cut:],
        trades=trades,
        initial_capital=result.initial_capital,
    )


def _run(spec: BacktestSpec, bars: Sequence[Bar]) -> tuple[BacktestReport, BacktestResult]:
    if not bars:
        raise BacktestError("no data: the window has no bars")
    strategy_cls, params = load_strategy(spec.strategy)
    result = build_engine(spec, strategy_cls, params, bars).run(bars)
    return build_report(result), result


def _run_account(
    spec: BacktestSpec, bars: Mapping[str, Sequence[Bar]]
) -> tuple[BacktestReport, BacktestResult]:
    strategy_cls, params = load_strategy(spec.strategy)
    resolution = next(iter(bars.values()))[0].resolution
    engine = build_multi_symbol_engine(spec, strategy_cls, params, resolution)
    result = engine.run(bars)
    return build_report(result), result


def _outcome(report: BacktestReport, result: BacktestResult) -> TrialOutcome:
    return TrialOutcome(
        statistics=report.statistics.to_wire(snake_case=True),
        total_trades=result.total_trades,
        trades_digest=trades_digest(result),
    )


def trades_digest(result: BacktestResult) -> str:
    """The digest of a run's round trips (and the trade left open): the same trades, at
    the same times and prices, give the same digest."""
    text = repr((result.trades, result.open_trade))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
