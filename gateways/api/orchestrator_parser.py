"""The parser of every command the orchestrator server (8082) accepts: strategies,
backtests, history, resting orders, sweeps, venues."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from gateways.api.history import GetIndicators, GetRecentActivity, HistoryCommandType
from gateways.api.inbound import (
    STRATEGY_COMMANDS,
    CancelOrder,
    CommandParser,
    GetOpenOrders,
    OrderCommandType,
    StrategyCommand,
)
from gateways.api.jobs import (
    CancelBacktest,
    GetBacktest,
    GetBacktestOptions,
    GetBacktestReport,
    GetBacktests,
    JobCommandType,
    RunBacktest,
)
from gateways.api.sweeps import CancelSweep, GetSweep, GetSweeps, RunSweep, SweepCommandType
from gateways.api.venues import VENUE_COMMANDS, AcknowledgeMismatch, GetVenueStatus

OrchestratorCommand = Annotated[
    StrategyCommand
    | RunBacktest
    | CancelBacktest
    | GetBacktests
    | GetBacktestReport
    | GetBacktest
    | GetBacktestOptions
    | GetRecentActivity
    | GetOpenOrders
    | CancelOrder
    | GetIndicators
    | RunSweep
    | CancelSweep
    | GetSweeps
    | GetSweep
    | GetVenueStatus
    | AcknowledgeMismatch,
    Field(discriminator="type"),
]


def orchestrator_command_parser() -> CommandParser:
    adapter: TypeAdapter[Any] = TypeAdapter(OrchestratorCommand)
    accepted = (
        STRATEGY_COMMANDS
        | frozenset(JobCommandType)
        | frozenset(HistoryCommandType)
        | frozenset(OrderCommandType)
        | frozenset(SweepCommandType)
        | VENUE_COMMANDS
    )
    return CommandParser(adapter, accepted)
