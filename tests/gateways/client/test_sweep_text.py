"""``orchestrator sweep``'s words: the --param syntax, the progress line, the table."""

from __future__ import annotations

import argparse

import pytest

from gateways.client.commands import _sweep_command, build_client_parser
from gateways.client.sweep_text import best_lines, parameter_range, progress_line, trials_table


def test_param_ranges_choices_and_log_scales() -> None:
    assert parameter_range("fast=2:16:2") == ("fast", {"low": 2, "high": 16, "step": 2})
    assert parameter_range("num_std=0.5:4:log") == ("num_std", {"low": 0.5, "high": 4, "log": True})
    assert parameter_range("allow_short=true,false") == ("allow_short", {"choices": [True, False]})
    assert parameter_range("mode=fast, slow") == ("mode", {"choices": ["fast", "slow"]})
    for bad in ("fast", "fast=", "fast=1:x", "fast=1:2:3:4"):
        with pytest.raises(argparse.ArgumentTypeError):
            parameter_range(bad)


def test_the_command_line_becomes_run_sweep() -> None:
    args = build_client_parser().parse_args(
        ["sweep", "strategy-123", "--file", "GOOG.csv", "-p", "fast=2:16:2", "-p", "slow=20,40",
         "--objective", "calmar", "--min-trades", "5", "--max-drawdown", "25", "--method", "tpe",
         "--trials", "50", "--walk-forward", "3"]
    )  # fmt: skip
    command = _sweep_command(args)
    assert command["type"] == "run_sweep" and command["source"] == {
        "kind": "file",
        "path": "GOOG.csv",
    }
    assert command["parameters"] == {
        "fast": {"low": 2, "high": 16, "step": 2},
        "slow": {"choices": [20, 40]},
    }
    assert command["objective"] == {
        "metric": "calmar",
        "direction": "maximize",
        "minTrades": 5,
        "maxDrawdownPct": 25.0,
    }
    assert command["trials"] == 50 and command["walkForward"]["windows"] == 3


def test_progress_best_and_table() -> None:
    line = progress_line(
        "#-", 0.5, {"trialsDone": 32, "trialsTotal": 64, "bestValue": 1.2, "etaSeconds": 3}
    )
    assert "32 / 64 trials" in line and "best 1.200" in line and "left" in line
    rows = [
        {"number": n, "params": {"fast": n}, "value": v, "feasible": f, "return_pct": 10.0,
         "sharpe_ratio": v, "max_drawdown_pct": -5.0, "total_trades": 3}
        for n, v, f in ((0, 0.5, True), (1, 2.0, True), (2, 9.0, False))
    ]  # fmt: skip
    table = trials_table(rows, top=1, minimize=False)
    assert table[1].split()[0] == "1" and "1 more feasible" in table[-1]
    result = {
        "objective": {"metric": "sharpe_ratio"},
        "best": {"value": 2.0, "number": 1, "strategy_params": {"fast": 1, "slow": 20}},
    }
    assert best_lines(result) == ["best sharpe_ratio: 2.000 (trial 1)", "params: fast=1, slow=20"]
