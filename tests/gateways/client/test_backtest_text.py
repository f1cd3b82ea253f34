"""The backtest statistics table and the progress bar, without a daemon."""

from __future__ import annotations

import io

from gateways.client.backtest_text import ProgressBar, statistics_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_table_has_units_and_a_dash_for_no_value() -> None:
    lines = statistics_table(
        {
            "return_pct": 12.3456,
            "equity_final": 1_234_567.891,
            "max_drawdown_duration_seconds": 2 * 86_400 + 3_600,
            "trade_count": 1_500,
            "sharpe_ratio": None,
            "kelly_criterion": 0.25,
        }
    )
    rows = {line[:24].rstrip(): line[24:].strip() for line in lines}
    assert rows["Return"] == "12.35%"
    assert rows["Equity final"] == "1,234,567.89"
    assert rows["Max. drawdown duration"] == "2 days 1 h"
    assert rows["Trades"] == "1,500"
    assert rows["Sharpe ratio"] == rows["Start"] == "-"
    assert rows["Kelly criterion"] == "0.250"
    assert len({len(line) for line in lines}) == 1


def test_the_progress_bar_draws_in_place_on_a_terminal_and_is_erased() -> None:
    terminal = Terminal()
    bar = ProgressBar(terminal)
    bar.show(0.5, 500, 1_000)
    bar.show(1.0, 1_000, 1_000)
    bar.clear()
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[" + "#" * 15 + "-" * 15 + "]")
    assert "100% 1,000 / 1,000 bars" in drawn
    assert drawn.endswith("\r\x1b[2K")


def test_no_progress_bar_when_piped() -> None:
    piped = io.StringIO()
    bar = ProgressBar(piped)
    bar.show(0.5, 500, 1_000)
    bar.clear()
    assert piped.getvalue() == ""
