"""Several symbols on one account, against the same symbols run one by one.

Data and strategy: the catalog's built-in sma_crossover (fast 10, slow 20, shorts,
as :mod:`bench.backtest_bench` runs it: no stop-loss, 2 bp commission, no slippage)
over ``BARS`` hourly bars of each of two symbols: EURUSD (backtesting.py's bundled
hourly bars, tiled) and the same series started half way through (``EURUSD2``), so
the two trade at other moments. maxPositionValue ``CASH`` per symbol, capital
``CAPITAL`` (with ``2 * CASH``, the losses of the first thousand trades would let the
shared cash cut the later orders): the shared cash never binds here, so each
symbol's trades must be (and are checked to be) those of its own one-symbol run.

Timed, in CPU seconds (best of ``REPEATS``): the baseline, two one-symbol runs
(:class:`~orchestrator.backtest.engine.BacktestEngine`, the engine of a job of one
symbol), then one :class:`~orchestrator.backtest.multi_symbol.MultiSymbolEngine`
run over both (what a job of several symbols runs). The account engine walks every
bar's four prices through the order pipeline and the guardian, where the
one-symbol engine skips the guardian on the ordinary bar, so it costs more per
bar: the target bounds how much more.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from bench.backtest_bench import CASH, FAST, SLOW, tiled_eurusd, to_bars
from bench.report import Verdict, machine, table
from orchestrator.backtest.engine import BacktestEngine, BacktestResult
from orchestrator.backtest.multi_symbol import MultiSymbolEngine
from orchestrator.model.market import Bar
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig

BARS = 100_000
"""Bars of each symbol."""
SYMBOLS = ("EURUSD", "EURUSD2")
REPEATS = 2
CAPITAL = 100 * CASH
TARGET = 6.0
"""The account's run may take at most this many times the one-symbol runs."""
BROKER = PaperBrokerConfig(slippage_bps=0.0, commission_bps=2.0)
PARAMS = SmaCrossoverParams(fast=FAST, slow=SLOW, allow_short=True)


def config(*symbols: str) -> StrategyRunConfig:
    return StrategyRunConfig(
        symbols=symbols, data_resolution="1h", max_position_value=CASH, stop_loss_percentage=0.0
    )


def history() -> dict[str, list[Bar]]:
    frame = tiled_eurusd(2 * BARS)
    later = frame.iloc[BARS // 2 : BARS // 2 + BARS].set_axis(frame.index[:BARS])
    return {
        "EURUSD": to_bars(frame.iloc[:BARS], "EURUSD", "1h"),
        "EURUSD2": to_bars(later, "EURUSD2", "1h"),
    }


def best_cpu(work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(REPEATS):
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def one_by_one(bars: dict[str, list[Bar]]) -> dict[str, BacktestResult]:
    return {
        symbol: BacktestEngine(
            SmaCrossover, PARAMS, config(symbol), broker=BROKER, initial_capital=CAPITAL
        ).run(series)
        for symbol, series in bars.items()
    }


def on_one_account(bars: dict[str, list[Bar]]) -> BacktestResult:
    engine = MultiSymbolEngine(
        SmaCrossover, PARAMS, config(*bars), broker=BROKER, initial_capital=CAPITAL
    )
    return engine.run(bars)


def main() -> list[Verdict]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        bars = history()
        alone_seconds, alone = best_cpu(lambda: one_by_one(bars))
        account_seconds, account = best_cpu(lambda: on_one_account(bars))
    finally:
        structlog.configure(**saved)
    for part in account.parts:
        [symbol] = part.symbols
        if part.trades != alone[symbol].trades or not np.array_equal(
            part.curve.equity, alone[symbol].curve.equity
        ):
            raise RuntimeError(f"{symbol}: the account's trades are not its one-symbol run's")
    trades = account.total_trades
    rows = [
        ("two one-symbol runs (baseline)", 2 * BARS, trades, alone_seconds),
        ("one account of both", 2 * BARS, trades, account_seconds),
    ]
    title = f"Two symbols of {BARS:,} bars, built-in sma_crossover 10/20 ({machine()})"
    print(table(title, ("run", "bars", "trades", f"cpu s (best of {REPEATS})"), rows))
    ratio = account_seconds / alone_seconds
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"one account / one by one: {ratio:.2f}x the time; {verdict} the <= {TARGET:g}x bound")
    return [
        Verdict(
            "several symbols: account run / one-symbol runs",
            f"{ratio:.2f}x",
            f"<= {TARGET:g}x",
            ratio <= TARGET,
        )
    ]


if __name__ == "__main__":
    main()
