"""``watch`` folds a refusal that repeats bar after bar into one line and a count."""

from __future__ import annotations

import io
from typing import Any

from gateways.client.commands import Output, RepeatedRefusals, _print_event


def refused(second: int, strategy: str = "repeater", reason: str = "trading is halted") -> Any:
    return {
        "type": "strategy_trade",
        "timestamp": f"2026-12-02T10:00:{second:02d}.000Z",
        "data": {
            "strategyId": strategy,
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 10,
            "status": "REJECTED",
            "reason": reason,
        },
    }


def signal(second: int, strategy: str = "repeater") -> Any:
    return {
        "type": "strategy_signal",
        "timestamp": f"2026-12-02T10:00:{second:02d}.000Z",
        "data": {"strategyId": strategy, "symbol": "AAPL", "action": "BUY", "price": 100 + second},
    }


def watched(messages: list[Any], as_json: bool = False) -> tuple[list[str], int]:
    stream = io.StringIO()
    out, folder = Output(stream, color=False), RepeatedRefusals()
    counted = sum(_print_event(out, as_json, folder, message) for message in messages)
    for line in folder.flush():
        out.print(line)
    return stream.getvalue().splitlines(), counted


def test_a_refusal_on_every_bar_is_one_line_and_a_count() -> None:
    messages = [m for second in range(12) for m in (signal(second), refused(second))]
    lines, counted = watched(messages)
    refusals = [line for line in lines if "REJECTED" in line]
    assert len(refusals) == 1 and refusals[0].startswith("10:00:00.000")
    assert lines[-1].split() == ["repeater", "the", "refusal", "above", "x12", "in", "all"]
    assert len([line for line in lines if "signal" in line]) == 12
    assert counted == 13


def test_a_different_refusal_or_another_event_ends_the_fold() -> None:
    messages = [refused(0), refused(1), refused(2, reason="maxOrdersPerMinute 5 reached")]
    messages += [refused(3, strategy="other"), refused(4, strategy="other")]
    messages += [{**signal(5), "type": "strategy_stopped"}]
    lines, _ = watched(messages)
    summaries = [line.split()[0] for line in lines if "refusal above" in line]
    assert summaries == ["repeater", "other"]
    assert [line for line in lines if "x2 in all" in line] == [
        line for line in lines if "refusal above" in line
    ]
    assert sum("REJECTED" in line for line in lines) == 3


def test_json_lines_are_never_folded() -> None:
    lines, counted = watched([refused(second) for second in range(5)], as_json=True)
    assert len(lines) == counted == 5
