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


_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI_CONTROLS


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: every control character (ESC, BEL, CR,
    newline, the C1 set, bidi overrides) written as its escape, ``\\x1b``, so that
    a string from the wire can neither move the cursor, retitle the window nor fake
    a line."""
    if not any(_is_control(char) for char in text):
        return text
    return "".join(repr(char)[1:-1] if _is_control(char) else char for char in text)


def printable_message(value: Any) -> Any:
    """``value`` (a decoded message) with every string in it made :func:`printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_message(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_message(item) for item in value]
    return value


_DURATION_UNITS = ((86_400, "day"), (3_600, "h"), (60, "min"), (1, "s"))


def duration(seconds: Any) -> str:
    """Seconds a person reads: 2,853,000 → '33 days', 93,784 → '1 day 2 h 3 min 4 s',
    0.25 → '0.25 s'. Not a number: '-'."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds != seconds:
        return "-"
    if abs(seconds) < 1:
        return f"{seconds:g} s"
    sign, rest = ("-" if seconds < 0 else ""), round(abs(seconds))
    parts = []
    for size, unit in _DURATION_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(plural(count, unit) if unit == "day" else f"{count:,} {unit}")
    return sign + " ".join(parts)
