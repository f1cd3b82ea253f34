"""What a venue's balances should be, by the journal: for every base asset the daemon
trades there, the signed sum of its fills less the fees the venue took in that asset,
plus the baseline (what the account held besides the daemon's positions); for a third
asset the venue takes fees in (BNB), less those fees.

Reconciliation (:mod:`gateways.venues.reconcile`) compares it with the venue's
balances; the broker adds each fill as it settles, so that the ledger is always the
journal's sum (a fill is journaled right after it settles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.journal.store import VenueLedgerEntry
from orchestrator.model.orders import FILLED, Fill


def base_of(symbol: str, markets: Mapping[str, Any]) -> str:
    """The base asset of ``symbol`` (ccxt's ``BTC/USDT``): the market's, or the text's."""
    market = markets.get(symbol)
    if market is not None and market.get("base"):
        return str(market["base"])
    return symbol.split("/", 1)[0]


def quote_of(symbol: str, markets: Mapping[str, Any]) -> str:
    """The quote asset of ``symbol``: the market's, or the text's."""
    market = markets.get(symbol)
    if market is not None and market.get("quote"):
        return str(market["quote"])
    return symbol.split("/", 1)[-1]


class VenueLedger:
    """Per base asset, what the daemon's fills on one venue added to the account."""

    def __init__(self) -> None:
        self.positions: dict[str, float] = {}
        """asset -> signed sum of the fills, net of the fees taken in that asset."""
        self.fills = 0
        """Fills added so far: a balance read between two fills must not be compared."""

    def seed(self, entries: Iterable[VenueLedgerEntry], markets: Mapping[str, Any]) -> None:
        """Start from the journal's fills on the venue (at start, before any new one)."""
        self.positions = {}
        for entry in entries:
            base, quote = base_of(entry.symbol, markets), quote_of(entry.symbol, markets)
            self._add(base, quote, entry.signed_quantity, entry.fee_asset, entry.fee)

    def add(self, fill: Fill, markets: Mapping[str, Any]) -> None:
        if fill.status is not FILLED:
            return
        venue = fill.venue
        fee_asset, fee = (venue.fee_asset, venue.fee) if venue is not None else (None, 0.0)
        base, quote = base_of(fill.symbol, markets), quote_of(fill.symbol, markets)
        self._add(base, quote, fill.side.sign * fill.quantity, fee_asset, fee)
        self.fills += 1

    def _add(self, base: str, quote: str, signed: float, fee_asset: str | None, fee: float) -> None:
        delta = signed - (fee if fee_asset == base else 0.0)
        self.positions[base] = self.positions.get(base, 0.0) + delta
        if fee_asset is not None and fee_asset not in (base, quote) and fee:
            # A fee in a third asset (BNB): that balance falls by it, and is compared.
            self.positions[fee_asset] = self.positions.get(fee_asset, 0.0) - fee
