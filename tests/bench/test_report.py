"""The summary of ``python -m bench``: every benchmark's verdicts in one table."""

from __future__ import annotations

import pytest

from bench.__main__ import returned_verdicts
from bench.report import Verdict, summary

MET = Verdict("fan-out, 100 clients", "95% of bare websockets", ">= 90%", True)
MISSED = Verdict("tick-to-trade p99, 1 client", "1.60 ms", "< 1 ms", False)
NO_TARGET = Verdict("throughput, core", ">= 134,565 ticks/s", "none", None)


def rows(text: str) -> list[list[str]]:
    """The table's rows under its title, header and rule, split on runs of 2+ spaces."""
    lines = text.splitlines()[3:]
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines]


def test_every_verdict_of_every_benchmark_is_a_row_with_its_mark() -> None:
    text = summary([("fanout", [MET]), ("latency", [MISSED]), ("throughput", [NO_TARGET])])
    assert rows(text) == [
        ["fanout", "fan-out, 100 clients", "95% of bare websockets", ">= 90%", "met"],
        ["latency", "tick-to-trade p99, 1 client", "1.60 ms", "< 1 ms", "MISSED"],
        ["throughput", "throughput, core", ">= 134,565 ticks/s", "none", "-"],
    ]


def test_a_benchmark_that_failed_or_said_nothing_still_has_its_row() -> None:
    text = summary([("nng", None), ("history", []), ("risk", [NO_TARGET])])
    assert [row[0] for row in rows(text)] == ["nng", "history", "risk"]
    assert rows(text)[0][-1] == "FAILED"
    assert rows(text)[1] == ["history", "-", "returned no verdict", "-", "-"]


def test_columns_line_up_whatever_the_widths() -> None:
    lines = summary([("a", [MET]), ("a-much-longer-name", [MISSED])]).splitlines()
    header, rule = lines[1], lines[2]
    starts = [i for i, char in enumerate(rule) if char == "-" and (i == 0 or rule[i - 1] == " ")]
    assert [header[i : i + 3] for i in starts] == ["ben", "mea", "fig", "tar", "ver"]
    assert all(line[starts[-1] :].strip() in {"met", "MISSED"} for line in lines[3:])


def test_a_verdict_line_says_figure_target_and_mark() -> None:
    assert MISSED.line() == "tick-to-trade p99, 1 client: 1.60 ms (target < 1 ms): MISSED"


def test_main_must_return_a_list_of_verdicts() -> None:
    assert returned_verdicts([MET, MISSED]) == [MET, MISSED]
    assert returned_verdicts(None) == []
    with pytest.raises(TypeError, match="not a list of Verdict"):
        returned_verdicts("fan-out: 95%: ok")
    with pytest.raises(TypeError):
        returned_verdicts([MET, "a line"])
