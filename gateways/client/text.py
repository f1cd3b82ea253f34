"""Numbers in words a person reads: '1 trade', '2 trades', '55.6%'.

Shared by the client commands and the journal commands; imports nothing, so the
client package stays free of the daemon."""

from __future__ import annotations

from typing import Any


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the plural unless there is exactly one: 1 trade, 0 trades."""
    word = noun if count == 1 else (many or f"{noun}s")
    return f"{count:,} {word}"


def percent(fraction: Any, *, signed: bool = False) -> str:
    """A fraction as a percentage with up to two decimals: 0.5 → 50%, -0.0321 → -3.21%;
    ``signed`` shows a + on gains. Not a number: '-'."""
    if not isinstance(fraction, int | float) or isinstance(fraction, bool):
        return "-"
    value = round(fraction * 100, 2)
    text = f"{value:+,.2f}" if signed else f"{value:,.2f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    if text in ("-0", "+0"):
        text = "+0" if signed else "0"
    return f"{text}%"
