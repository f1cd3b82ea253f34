"""``check-config`` for a venue: connect, load its markets, compare clocks, read the
balance, find every symbol the strategies trade there and say which of the daemon's
stop orders rest on the venue there (docs/venues.md, per order type). Never places
an order."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ccxt.base import errors as ccxt_errors

from gateways.venues.broker import NATIVE_STOP_TYPES, listed_order_types
from gateways.venues.config import VenueConfig
from gateways.venues.connector import build_exchange, describe_venue_error
from gateways.venues.credentials import load_credentials
from orchestrator.model.errors import ConfigError


@dataclass(slots=True)
class VenueCheck:
    """What the check of one venue found."""

    name: str
    exchange: str
    markets: int = 0
    skew_ms: int | None = None
    balances: dict[str, float] = field(default_factory=dict)
    """The non-zero totals, by currency."""
    native_stops: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per symbol traded there, the venue's types of the daemon's stop orders that rest
    on the venue (STOP_LOSS_LIMIT, STOP_LOSS); the others rest in the daemon."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def where_stops_rest(self, symbol: str) -> str:
        """Where the daemon's stop-limit and stop orders on ``symbol`` rest."""
        native = self.native_stops.get(symbol, ())
        return ", ".join(
            f"{kind.value.lower().replace('_', '-')} "
            + (f"on the venue ({venue_type})" if venue_type in native else "in the daemon")
            for kind, venue_type in NATIVE_STOP_TYPES.items()
        )


async def check_venue(
    name: str,
    config: VenueConfig,
    symbols: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> VenueCheck:
    """Check venue ``name``: each failure is one problem that says what is wrong."""
    report = VenueCheck(name, config.exchange)
    try:
        exchange = build_exchange(name, config, load_credentials(name, config, environ))
    except ConfigError as exc:
        report.problems.append(exc.message)
        return report
    try:
        await _check(exchange, name, config, symbols, clock, report)
    except ccxt_errors.BaseError as exc:
        report.problems.append(describe_venue_error(name, exc))
    finally:
        await exchange.close()
    return report


async def _check(
    exchange: Any,
    name: str,
    config: VenueConfig,
    symbols: Collection[str],
    clock: Callable[[], float],
    report: VenueCheck,
) -> None:
    markets = await exchange.load_markets()
    report.markets = len(markets)
    missing = sorted(symbol for symbol in symbols if symbol not in markets)
    for symbol in sorted(set(symbols) - set(missing)):
        listed = listed_order_types(markets[symbol])
        report.native_stops[symbol] = tuple(
            kind for kind in NATIVE_STOP_TYPES.values() if kind in listed
        )
    if missing:
        report.problems.append(
            f"venue {name} has no {config.market_type} market {', '.join(missing)} "
            "(symbols as ccxt writes them, for example BTC/USDT)"
        )
    before = clock()
    server_ms = await exchange.fetch_time()
    local_ms = (before + clock()) / 2 * 1000  # the middle of the round trip
    report.skew_ms = int(server_ms - local_ms)
    if abs(report.skew_ms) > config.max_clock_skew_ms:
        report.problems.append(
            f"venue {name}: clock skew of {report.skew_ms} ms between the exchange and this "
            f"machine (more than max_clock_skew_ms {config.max_clock_skew_ms}); sync the clock "
            "with NTP, or signed requests will be refused"
        )
        return
    balance = await exchange.fetch_balance()
    totals = balance.get("total") or {}
    report.balances = {currency: float(v) for currency, v in totals.items() if v}
