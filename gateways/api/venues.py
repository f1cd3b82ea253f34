"""The live venues' commands, on 8082 and 3002: ``get_venue_status`` (each venue's
connection, last reconciliation and mismatches: ``orchestrator venue status``) and
``acknowledge_mismatch`` (an operator has checked the account: its balance becomes
the truth and the strategies trading the asset there may open positions again).

The acknowledgement answers with ``mismatch_acknowledged`` to the requester; every
client of 3002 also gets a ``position_mismatch`` with ``action: ACKNOWLEDGED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from gateways.api import outbound
from gateways.api.inbound import Command
from gateways.venues.config import VENUE_NAME
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.model.clock import Clock, iso_utc
from orchestrator.model.errors import NoMismatch, UnknownVenue

if TYPE_CHECKING:  # ccxt, which reconcile imports, is loaded only with a venue configured
    from gateways.venues.reconcile import Mismatch, Reconciliation, VenueReconciler


class VenueCommandType(StrEnum):
    GET_VENUE_STATUS = "get_venue_status"
    ACKNOWLEDGE_MISMATCH = "acknowledge_mismatch"


VENUE_COMMANDS = frozenset(VenueCommandType)

Asset = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")]


class GetVenueStatus(Command):
    type: Literal[VenueCommandType.GET_VENUE_STATUS]


class AcknowledgeMismatch(Command):
    type: Literal[VenueCommandType.ACKNOWLEDGE_MISMATCH]
    venue: Annotated[str, Field(pattern=VENUE_NAME)]
    asset: Asset | None = None
    """None: every mismatch of the venue."""


VenueCommand = GetVenueStatus | AcknowledgeMismatch


class VenueCommands:
    def __init__(
        self, reconcilers: Mapping[str, VenueReconciler], clock: Clock, server_name: str
    ) -> None:
        self._reconcilers = reconcilers
        self._clock = clock
        self._server = server_name

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            VenueCommandType.GET_VENUE_STATUS: self.get_venue_status,
            VenueCommandType.ACKNOWLEDGE_MISMATCH: self.acknowledge_mismatch,
        }

    async def get_venue_status(self, command: GetVenueStatus, _: Session) -> Replies:
        venues = [venue_status_data(r) for r in self._reconcilers.values()]
        data = {"venues": venues}
        return [outbound.encode("venue_status", data, self._clock.now(), command.request_id)]

    async def acknowledge_mismatch(self, command: AcknowledgeMismatch, session: Session) -> Replies:
        reconciler = self._reconcilers.get(command.venue)
        if reconciler is None:
            known = ", ".join(sorted(self._reconcilers)) or "none is configured"
            raise UnknownVenue(f"no venue {command.venue!r}; the venues are {known}")
        done = await reconciler.acknowledge(command.asset, f"{self._server}/{session.conn_id}")
        if not done:
            what = f"of {command.asset} " if command.asset is not None else ""
            raise NoMismatch(f"venue {command.venue} has no position mismatch {what}to acknowledge")
        data = {"venue": command.venue, "acknowledged": [mismatch_data(m) for m in done]}
        return [
            outbound.encode("mismatch_acknowledged", data, self._clock.now(), command.request_id)
        ]


def venue_status_data(reconciler: VenueReconciler) -> outbound.Payload:
    broker = reconciler.broker
    state = broker.state
    return {
        "name": reconciler.name,
        "exchange": broker.config.exchange,
        "sandbox": broker.config.sandbox,
        "connected": state.connected,
        "reason": state.reason,
        "takesOrders": state.connected and broker.unreconciled is None,
        "unreconciled": broker.unreconciled,
        "lastReconciliation": (
            reconciliation_data(reconciler.last) if reconciler.last is not None else None
        ),
        "lastProblem": reconciler.last_problem,
        "mismatches": [mismatch_data(m) for m in reconciler.mismatches.values()],
        "positions": dict(sorted(broker.ledger.positions.items())),
        "baselines": dict(sorted(reconciler.baselines.items())),
    }


def reconciliation_data(report: Reconciliation) -> outbound.Payload:
    return {
        "timestamp": iso_utc(report.ts),
        "atStart": report.at_start,
        "seconds": report.seconds,
        "ordersChecked": report.orders_checked,
        "fillsRecovered": report.fills_recovered,
        "ordersResolved": report.orders_resolved,
        "orphansCancelled": report.orphans_cancelled,
        "untrackedTrades": sorted(set(report.untracked_trades)),
        "balances": dict(sorted(report.balances.items())),
    }


def mismatch_data(mismatch: Mismatch) -> outbound.Payload:
    return {
        "asset": mismatch.asset,
        "expected": mismatch.expected,
        "actual": mismatch.actual,
        "difference": mismatch.actual - mismatch.expected,
        "strategies": list(mismatch.strategies),
        "since": iso_utc(mismatch.since),
    }
