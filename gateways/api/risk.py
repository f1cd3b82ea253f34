"""The risk guardian's own commands (3002): risk status and the kill switch.

The risk server accepts the strategy commands like every server, plus
``get_risk_status``, ``halt_trading`` and ``resume_trading``. The kill switch
commands answer through the bus: the ``kill_switch`` event goes to every client
of the risk server, carrying the ``requestId`` to the one that asked, and
``execution_service_status`` goes to every client of every server.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from gateways.api import outbound
from gateways.api.inbound import (
    STRATEGY_COMMANDS,
    Command,
    CommandParser,
    PrintableText,
    StrategyCommand,
)
from gateways.api.venues import VENUE_COMMANDS, AcknowledgeMismatch, GetVenueStatus
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.model.clock import Clock
from orchestrator.model.events import CommandOrigin, HaltSource
from orchestrator.risk.guardian import Halt, RiskGuardian
from orchestrator.strategy.committed_views import CommittedViews
from orchestrator.trading.execution import ExecutionService


class RiskCommandType(StrEnum):
    GET_RISK_STATUS = "get_risk_status"
    HALT_TRADING = "halt_trading"
    RESUME_TRADING = "resume_trading"


Reason = Annotated[str, Field(min_length=1, max_length=500), PrintableText]


class GetRiskStatus(Command):
    type: Literal[RiskCommandType.GET_RISK_STATUS]


class HaltTrading(Command):
    type: Literal[RiskCommandType.HALT_TRADING]
    reason: Reason
    blockAll: bool = False
    flatten: bool = False
    """With blockAll: also close every open position with a market order (on the venue
    of a live strategy)."""

    @model_validator(mode="after")
    def _flatten_blocks_all(self) -> HaltTrading:
        if self.flatten and not self.blockAll:
            raise ValueError("flatten needs blockAll true: flattening blocks every other order")
        return self


class ResumeTrading(Command):
    type: Literal[RiskCommandType.RESUME_TRADING]
    reason: Reason | None = None


RiskCommand = Annotated[
    StrategyCommand
    | GetRiskStatus
    | HaltTrading
    | ResumeTrading
    | GetVenueStatus
    | AcknowledgeMismatch,
    Field(discriminator="type"),
]

RISK_COMMANDS = STRATEGY_COMMANDS | frozenset(RiskCommandType) | VENUE_COMMANDS


def risk_command_parser() -> CommandParser:
    adapter: TypeAdapter[Any] = TypeAdapter(RiskCommand)
    return CommandParser(adapter, RISK_COMMANDS)


class RiskCommands:
    """Handles the risk server's own commands."""

    def __init__(
        self,
        guardian: RiskGuardian,
        execution: ExecutionService,
        committed: CommittedViews,
        clock: Clock,
        server_name: str = "risk",
    ) -> None:
        self._guardian = guardian
        self._execution = execution
        self._committed = committed
        self._clock = clock
        self._server = server_name

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            RiskCommandType.GET_RISK_STATUS: self.get_risk_status,
            RiskCommandType.HALT_TRADING: self.halt_trading,
            RiskCommandType.RESUME_TRADING: self.resume_trading,
        }

    async def get_risk_status(self, command: GetRiskStatus, _: Session) -> Replies:
        # Positions, exposure and P&L as committed: what a client is shown (design.md).
        views = self._committed.active()
        configs = {view.id: view.config for view in views}
        snapshot = self._guardian.snapshot(configs, self._committed.marked_book())
        statuses = {view.id: view.status for view in views}
        account = self._committed.account()
        data = outbound.risk_status_data(snapshot, self._execution, statuses, account)
        return [outbound.encode("risk_status", data, self._clock.now(), command.request_id)]

    async def halt_trading(self, command: HaltTrading, session: Session) -> Replies:
        halt = Halt(command.reason, command.blockAll, HaltSource.COMMAND, self._clock.now())
        self._execution.engage_kill_switch(halt, self._origin(command, session))
        if command.flatten:
            limits = {view.id: view.config for view in self._committed.catalog()}
            self._execution.flatten(limits, command.reason)
        return []

    async def resume_trading(self, command: ResumeTrading, session: Session) -> Replies:
        self._execution.release_kill_switch(command.reason, self._origin(command, session))
        return []

    def _origin(self, command: Command, session: Session) -> CommandOrigin:
        return CommandOrigin(self._server, session.conn_id, command.request_id)
