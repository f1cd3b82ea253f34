"""``orchestrator sweep`` in words: the ``--param`` syntax, the progress line and the
table of the best trials.

``--param NAME=LOW:HIGH[:STEP]`` (``:log`` for a log scale) or ``NAME=A,B,C``
(choices; numbers, true/false, or words). The result is the wire's (snake_case,
docs/sweeps.md); this module imports nothing of the daemon."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from gateways.client.text import duration, percent

PROGRESS_BAR_WIDTH = 30
TABLE_FIGURES = (
    ("return", "return_pct"),
    ("sharpe", "sharpe_ratio"),
    ("max dd", "max_drawdown_pct"),
    ("trades", "total_trades"),
)


def parameter_range(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=LOW:HIGH[:STEP|:log]`` or ``NAME=A,B,C`` as the wire's range."""
    name, equals, given = text.partition("=")
    name = name.strip()
    if not equals or not name or not given:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use NAME=LOW:HIGH[:STEP], NAME=LOW:HIGH:log or NAME=A,B,C"
        )
    if ":" in given:
        return name, _low_high(text, given.split(":"))
    return name, {"choices": [_choice(item.strip()) for item in given.split(",") if item.strip()]}


def _low_high(text: str, parts: list[str]) -> dict[str, Any]:
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: LOW:HIGH or LOW:HIGH:STEP or LOW:HIGH:log")
    low, high = _number(text, parts[0]), _number(text, parts[1])
    wire: dict[str, Any] = {"low": low, "high": high}
    if len(parts) == 3:
        if parts[2].strip().lower() == "log":
            wire["log"] = True
        else:
            wire["step"] = _number(text, parts[2])
    return wire


def _number(text: str, part: str) -> int | float:
    try:
        return int(part)
    except ValueError:
        pass
    try:
        return float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {part!r} is not a number") from None


def _choice(item: str) -> bool | int | float | str:
    if item.lower() in ("true", "false"):
        return item.lower() == "true"
    try:
        return _number(item, item)
    except argparse.ArgumentTypeError:
        return item


class TrialsBar:
    """``[####------]  42% 27 / 64 trials, best 1.08, 3s left`` redrawn in place on a
    terminal; nothing on a stream that is no terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = stream.isatty()
        self._drawn = False

    def show(self, data: Mapping[str, Any]) -> None:
        if not self._shown:
            return
        fraction = float(data.get("fraction") or 0.0)
        filled = round(max(0.0, min(1.0, fraction)) * PROGRESS_BAR_WIDTH)
        bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
        self._stream.write(f"\r{progress_line(bar, fraction, data)}")
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False


def progress_line(bar: str, fraction: float, data: Mapping[str, Any]) -> str:
    done, total = data.get("trialsDone"), data.get("trialsTotal")
    line = f"[{bar}] {percent(fraction):>7} {done} / {total} trials"
    best = data.get("bestValue")
    if isinstance(best, int | float):
        line += f", best {best:,.3f}"
    eta = data.get("etaSeconds")
    if isinstance(eta, int | float) and math.isfinite(eta):
        line += f", {duration(eta)} left"
    return line


def best_lines(result: Mapping[str, Any]) -> list[str]:
    """The best trial: its value and the strategy params to start it with."""
    best = result.get("best")
    objective = result.get("objective") or {}
    if not isinstance(best, dict):
        return ["no feasible trial: loosen the constraints or widen the ranges"]
    params = ", ".join(f"{k}={v}" for k, v in (best.get("strategy_params") or {}).items())
    value, number = _figure(best.get("value")), best.get("number")
    return [f"best {objective.get('metric')}: {value} (trial {number})", f"params: {params}"]


def trials_table(rows: Sequence[Mapping[str, Any]], top: int, minimize: bool) -> list[str]:
    """The ``top`` best feasible trials, best first, then how many more there are."""
    feasible = [row for row in rows if row.get("feasible") and row.get("value") is not None]
    feasible.sort(key=lambda row: row["value"], reverse=not minimize)
    shown = feasible[:top]
    if not shown:
        return []
    names = list(shown[0].get("params") or {})
    header = ["#", *names, "value", *(label for label, _ in TABLE_FIGURES)]
    body = [
        [
            str(row.get("number")),
            *(str((row.get("params") or {}).get(name)) for name in names),
            _figure(row.get("value")),
            *(_cell(key, row.get(key)) for _, key in TABLE_FIGURES),
        ]
        for row in shown
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    if len(feasible) > len(shown):
        lines.append(f"... {len(feasible) - len(shown)} more feasible trials (--json for all)")
    return lines


def _cell(key: str, value: Any) -> str:
    if key.endswith("_pct"):
        return percent(value / 100) if isinstance(value, int | float) else "-"
    if key == "total_trades":
        return f"{value:,}" if isinstance(value, int) else "-"
    return _figure(value)


def _figure(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.3f}"
    return "-"
