"""Market data types shared by feeds, bar aggregation, strategies and the broker.

Ticks and bars are hot-path values: records (frozen to the type checker, see
:mod:`orchestrator.model.records`), no validation. :data:`Symbol` and
:data:`Resolution` are the one rule for a ticker and a bar resolution that every
config and message model validates with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from orchestrator.model.records import record

RESOLUTION_SECONDS: dict[str, int] = {
    "1s": 1,
    "5s": 5,
    "15s": 15,
    "30s": 30,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}
"""Every bar resolution a strategy may ask for, by its wire label."""


def unknown_resolution(label: object) -> str | None:
    """Why ``label`` is no bar resolution, or None when it is one."""
    if isinstance(label, str) and label in RESOLUTION_SECONDS:
        return None
    return f"unknown resolution {str(label)[:20]!r}; use one of {', '.join(RESOLUTION_SECONDS)}"


def missing_market_data(wanted: Iterable[str], available: Collection[str]) -> str | None:
    """Why ``wanted`` cannot trade on a feed of ``available``, or None when it can."""
    unknown = [symbol for symbol in wanted if symbol not in available]
    if not unknown:
        return None
    return (
        f"no market data for {', '.join(unknown)}; the feed provides {', '.join(sorted(available))}"
    )


def resolution_seconds(label: str) -> int:
    """Length of a bar in seconds; raises KeyError for an unknown label."""
    return RESOLUTION_SECONDS[label]


def bucket_start(ts: float, seconds: int) -> float:
    """Start of the wall-clock bucket (UTC-aligned) that contains ``ts``."""
    return float(int(ts // seconds) * seconds)


@record
class Tick:
    """One trade or quote print: the last price of a symbol at a moment."""

    symbol: str
    price: float
    size: float
    ts: float


@record
class Bar:
    """OHLCV over ``[start, start + seconds)`` for one symbol at one resolution."""

    symbol: str
    resolution: str
    start: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int

    @property
    def end(self) -> float:
        return self.start + RESOLUTION_SECONDS[self.resolution]


SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$"
"""A ticker as exchanges write them (AAPL, BRK.B, BTC/USDT, BTC/USDT:USDT), upper case."""


def _upper_case(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _known_resolution(label: str) -> str:
    problem = unknown_resolution(label)
    if problem is not None:
        raise ValueError(problem)
    return label


Symbol = Annotated[
    str,
    BeforeValidator(_upper_case),
    Field(pattern=SYMBOL_PATTERN, description="An instrument ticker (upper-cased)."),
]


def _distinct(symbols: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must not repeat")
    return symbols


DistinctSymbols = Annotated[tuple[Symbol, ...], AfterValidator(_distinct)]
"""Symbols, none twice (after upper-casing: aapl and AAPL are one)."""
Resolution = Annotated[
    str,
    AfterValidator(_known_resolution),
    Field(description="Bar resolution: " + ", ".join(RESOLUTION_SECONDS) + "."),
]


def price_decimals(increment: float) -> int:
    """The decimals a price on a grid of ``increment`` needs: 0.01 → 2, 0.00001 → 5,
    0.25 → 2, 5 → 0."""
    exponent = Decimal(repr(increment)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
