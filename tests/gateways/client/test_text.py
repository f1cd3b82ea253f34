"""Numbers as people read them: '1 trade' not '1 trades', returns and win rates in %."""

from __future__ import annotations

import argparse
import io

import pytest

from gateways.client.commands import Output, _job_line
from gateways.client.text import duration, percent, plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 trades"), (1, "1 trade"), (2, "2 trades"), (1500, "1,500 trades")],
)
def test_plural(count: int, expected: str) -> None:
    assert plural(count, "trade") == expected
    assert plural(1, "strategy", "strategies") == "1 strategy"
    assert plural(3, "strategy", "strategies") == "3 strategies"


@pytest.mark.parametrize(
    ("fraction", "signed", "expected"),
    [
        (0.5, False, "50%"),
        (0.5561, False, "55.61%"),
        (0.0321, True, "+3.21%"),
        (-0.0321, True, "-3.21%"),
        (0.0, True, "+0%"),
        (0.0, False, "0%"),
        (None, False, "-"),
        (True, False, "-"),
    ],
)
def test_percent(fraction: object, signed: bool, expected: str) -> None:
    assert percent(fraction, signed=signed) == expected


def test_a_completed_backtest_reads_as_a_sentence() -> None:
    stream = io.StringIO()
    args = argparse.Namespace(json=False)
    data = {
        "jobId": "job_1",
        "status": "completed",
        "result": {"total_trades": 1, "win_rate": 1.0, "total_return": -0.0125},
    }
    assert _job_line(Output(stream, color=False), args, data) == 0
    assert stream.getvalue() == "backtest job_1 completed: 1 trade, win rate 100%, return -1.25%\n"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (33 * 86_400, "33 days"),
        (86_400 + 7_384, "1 day 2 h 3 min 4 s"),
        (3_600 * 5, "5 h"),
        (59, "59 s"),
        (0.25, "0.25 s"),
        (0, "0 s"),
        (-120, "-2 min"),
        (float("nan"), "-"),
        (None, "-"),
    ],
)
def test_duration(seconds: float | None, expected: str) -> None:
    assert duration(seconds) == expected
