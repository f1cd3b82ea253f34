"""What a backtest report costs, against the run it reports on, in the same process.

Data and strategy: the backtest bench's million EURUSD hourly bars and the
catalog's built-in sma_crossover it runs (:mod:`bench.backtest_bench`: fast 10,
slow 20, shorts, 52,799 trades). Timed, in CPU
seconds (best of 2 each): ``BacktestEngine.run``; within it, the per-bar equity
curve the engine computes once the bars are replayed (``_curve``: the closes
read from the bars, the cash and quantity in force at each bar); then, after the
run, what a job adds in its worker: ``build_report`` (statistics over every bar
and trade, the trade records, buy and hold) and ``to_wire`` (the job's result:
500 points, 200 trades); and one ``get_backtest_report`` page. Each figure is
also shown as a share of the run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import structlog

from bench.backtest_bench import CASH, FAST, SLOW, TILED_BARS, tiled_eurusd, to_bars
from bench.report import Verdict, machine, table
from orchestrator.backtest.engine import BacktestEngine, BacktestResult
from orchestrator.backtest.report import build_report
from orchestrator.model.market import Bar
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig

REPEATS = 2
CURVE_TARGET = 0.05
"""The equity curve may add at most this share to the run."""
REPORT_TARGET = 0.15
"""The report (statistics, trades, curves) and the job's result may add at most this
share to the run (issue #16)."""


def best_cpu(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def engine_for(bars: list[Bar]) -> BacktestEngine:
    config = StrategyRunConfig(
        symbols=(bars[0].symbol,),
        data_resolution=bars[0].resolution,
        max_position_value=CASH,
        stop_loss_percentage=0.0,
    )
    broker = PaperBrokerConfig(slippage_bps=0.0, commission_bps=2.0)
    params = SmaCrossoverParams(fast=FAST, slow=SLOW, allow_short=True)
    return BacktestEngine(SmaCrossover, params, config, broker=broker)


def measure(bars: list[Bar]) -> list[tuple[str, float]]:
    engines: list[BacktestEngine] = []

    def run() -> BacktestResult:
        engines.append(engine_for(bars))
        return engines[-1].run(bars)

    run_seconds, result = best_cpu(REPEATS, run)
    curve_seconds, _ = best_cpu(REPEATS, lambda: engines[-1]._curve(bars))
    report_seconds, report = best_cpu(REPEATS, lambda: build_report(result))
    wire_seconds, _ = best_cpu(REPEATS, report.to_wire)
    page_seconds, _ = best_cpu(REPEATS, report.page)
    return [
        ("BacktestEngine.run", run_seconds),
        ("  of which the equity curve", curve_seconds),
        ("build_report", report_seconds),
        ("to_wire (the job's result)", wire_seconds),
        ("one get_backtest_report page", page_seconds),
    ]


def main() -> list[Verdict]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        bars = to_bars(tiled_eurusd(TILED_BARS), "EURUSD", "1h")
        figures = measure(bars)
    finally:
        structlog.configure(**saved)
    run_seconds, curve_seconds = figures[0][1], figures[1][1]
    report_share = (figures[2][1] + figures[3][1]) / run_seconds
    rows = [[name, f"{seconds:.3f}", f"{seconds / run_seconds:.1%}"] for name, seconds in figures]
    title = f"Backtest report, {TILED_BARS:,} bars, built-in sma_crossover 10/20 ({machine()})"
    print(table(title, ["step", f"cpu s (best of {REPEATS})", "of the run"], rows))
    share = curve_seconds / run_seconds
    verdict = "PASS" if share <= CURVE_TARGET else "FAIL"
    print(
        f"report: the per-bar equity curve adds {share:.1%} to the run "
        f"(target <= {CURVE_TARGET:.0%}): {verdict}"
    )
    report_verdict = "PASS" if report_share <= REPORT_TARGET else "FAIL"
    print(
        f"report: build_report and to_wire add {report_share:.1%} to the run "
        f"(target <= {REPORT_TARGET:.0%}): {report_verdict}"
    )
    name = "report: the equity curve's share of the run"
    return [
        Verdict(name, f"{share:.1%}", f"<= {CURVE_TARGET:.0%}", share <= CURVE_TARGET),
        Verdict(
            "report: build_report + to_wire, share of the run",
            f"{report_share:.1%}",
            f"<= {REPORT_TARGET:.0%}",
            report_share <= REPORT_TARGET,
        ),
    ]


if __name__ == "__main__":
    main()
