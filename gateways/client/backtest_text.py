"""A backtest job's result as a person reads it: the statistics as an aligned table
with units, and a progress bar for a terminal.

The result is the wire's (snake_case keys, docs/statistics.md); this module imports
nothing of the daemon, as the rest of the client package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TextIO

from gateways.client.text import duration, percent

Unit = Literal["time", "duration", "pct", "money", "ratio", "count"]

STATISTICS_ROWS: tuple[tuple[str, str, Unit], ...] = (
    ("Start", "start", "time"),
    ("End", "end", "time"),
    ("Duration", "duration_seconds", "duration"),
    ("Exposure time", "exposure_time_pct", "pct"),
    ("Equity final", "equity_final", "money"),
    ("Equity peak", "equity_peak", "money"),
    ("Commissions", "commissions", "money"),
    ("Return", "return_pct", "pct"),
    ("Buy & hold return", "buy_and_hold_return_pct", "pct"),
    ("Return (ann.)", "annual_return_pct", "pct"),
    ("Volatility (ann.)", "annual_volatility_pct", "pct"),
    ("CAGR", "cagr_pct", "pct"),
    ("Sharpe ratio", "sharpe_ratio", "ratio"),
    ("Sortino ratio", "sortino_ratio", "ratio"),
    ("Calmar ratio", "calmar_ratio", "ratio"),
    ("Alpha", "alpha_pct", "pct"),
    ("Beta", "beta", "ratio"),
    ("Max. drawdown", "max_drawdown_pct", "pct"),
    ("Avg. drawdown", "avg_drawdown_pct", "pct"),
    ("Max. drawdown duration", "max_drawdown_duration_seconds", "duration"),
    ("Avg. drawdown duration", "avg_drawdown_duration_seconds", "duration"),
    ("Trades", "trade_count", "count"),
    ("Win rate", "win_rate_pct", "pct"),
    ("Best trade", "best_trade_pct", "pct"),
    ("Worst trade", "worst_trade_pct", "pct"),
    ("Avg. trade", "avg_trade_pct", "pct"),
    ("Max. trade duration", "max_trade_duration_seconds", "duration"),
    ("Avg. trade duration", "avg_trade_duration_seconds", "duration"),
    ("Profit factor", "profit_factor", "ratio"),
    ("Expectancy", "expectancy_pct", "pct"),
    ("SQN", "sqn", "ratio"),
    ("Kelly criterion", "kelly_criterion", "ratio"),
)
"""Label, key in the result's ``statistics`` and unit, in backtesting.py's order."""
PROGRESS_BAR_WIDTH = 30
SYMBOL_COLUMNS: tuple[tuple[str, str, Unit], ...] = (
    ("Trades", "trade_count", "count"),
    ("Win rate", "win_rate_pct", "pct"),
    ("Return", "return_pct", "pct"),
    ("Buy & hold", "buy_and_hold_return_pct", "pct"),
    ("Max. drawdown", "max_drawdown_pct", "pct"),
    ("Sharpe", "sharpe_ratio", "ratio"),
    ("Profit factor", "profit_factor", "ratio"),
)
"""The per-symbol table of an account of several symbols: header, statistic, unit."""


def statistics_rows(statistics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value with its unit) per figure, in backtesting.py's order; "-" for none.
    The one formatting of the figures: the CLI's table and the HTML report's."""
    return [(label, _value(statistics.get(key), unit)) for label, key, unit in STATISTICS_ROWS]


def statistics_table(statistics: Mapping[str, Any]) -> list[str]:
    """One line per figure: labels left, values right-aligned; "-" for no value."""
    rows = statistics_rows(statistics)
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    return [f"{label:<{label_width}}  {value:>{value_width}}" for label, value in rows]


def symbol_rows(per_symbol: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """(symbol, figure...) per symbol of the result's ``per_symbol``, SYMBOL_COLUMNS'
    figures (a symbol's return is its P&L over the account's capital)."""
    rows = []
    for part in per_symbol:
        statistics = part.get("statistics") or {}
        values = (_value(statistics.get(key), unit) for _, key, unit in SYMBOL_COLUMNS)
        rows.append((str(part.get("symbol", "?")), *values))
    return rows


def symbols_table(per_symbol: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-symbol figures as an aligned table, one line per symbol under a header."""
    header = ("Symbol", *(name for name, _, _ in SYMBOL_COLUMNS))
    rows = [header, *symbol_rows(per_symbol)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _value(value: Any, unit: Unit) -> str:
    if unit == "time":
        return str(value) if isinstance(value, str) else "-"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if unit == "duration":
        return duration(value)
    if unit == "pct":
        return percent(value / 100)
    if unit == "money":
        return f"{value:,.2f}"
    if unit == "count":
        return f"{value:,}"
    return f"{value:,.3f}"


class ProgressBar:
    """``[######----]  42% 12,345 / 34,560 bars`` redrawn in place on a terminal; does
    nothing on a stream that is no terminal (a pipe, a file)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = stream.isatty()
        self._drawn = False

    def show(self, fraction: float, done: int, total: int) -> None:
        if not self._shown:
            return
        filled = round(max(0.0, min(1.0, fraction)) * PROGRESS_BAR_WIDTH)
        bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
        line = f"[{bar}] {percent(fraction):>7} {done:,} / {total:,} bars"
        self._stream.write(f"\r{line}")
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the bar, so that what is printed next starts on a clean line."""
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False
