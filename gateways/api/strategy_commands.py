"""The strategy commands every server accepts, handed to the one registry."""

from __future__ import annotations

from gateways.api import outbound
from gateways.api.inbound import (
    Command,
    CommandType,
    GetAccount,
    GetActiveStrategies,
    GetStrategies,
    PauseStrategy,
    StartStrategy,
    StopStrategy,
)
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.model.clock import Clock
from orchestrator.model.events import CommandOrigin
from orchestrator.strategy.committed_views import CommittedViews
from orchestrator.strategy.registry import StrategyRegistry


class StrategyCommands:
    """Lifecycle commands answer through the bus (the registry publishes the
    change and each server routes it to the requester); queries answer here."""

    def __init__(
        self,
        registry: StrategyRegistry,
        committed: CommittedViews,
        server_name: str,
        clock: Clock,
    ) -> None:
        self._registry = registry
        self._committed = committed
        self._server = server_name
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            CommandType.GET_ACTIVE_STRATEGIES: self.get_active_strategies,
            CommandType.GET_STRATEGIES: self.get_strategies,
            CommandType.START_STRATEGY: self.start_strategy,
            CommandType.STOP_STRATEGY: self.stop_strategy,
            CommandType.PAUSE_STRATEGY: self.pause_strategy,
            CommandType.GET_ACCOUNT: self.get_account,
        }

    async def get_active_strategies(self, command: GetActiveStrategies, _: Session) -> Replies:
        data = outbound.strategy_list(self._committed.active())
        return [
            outbound.encode("strategy_status_list", data, self._clock.now(), command.request_id)
        ]

    async def get_strategies(self, command: GetStrategies, _: Session) -> Replies:
        data = outbound.strategy_list(self._committed.catalog())
        return [outbound.encode("strategy_list", data, self._clock.now(), command.request_id)]

    async def get_account(self, command: GetAccount, _: Session) -> Replies:
        data = outbound.account_data(self._committed.account())
        return [outbound.encode("account", data, self._clock.now(), command.request_id)]

    async def start_strategy(self, command: StartStrategy, session: Session) -> Replies:
        overrides = command.config.overrides() if command.config is not None else None
        await self._registry.start(command.id, overrides, self._origin(command, session))
        return []

    async def stop_strategy(self, command: StopStrategy, session: Session) -> Replies:
        await self._registry.stop(command.id, self._origin(command, session))
        return []

    async def pause_strategy(self, command: PauseStrategy, session: Session) -> Replies:
        await self._registry.pause(command.id, self._origin(command, session))
        return []

    def _origin(self, command: Command, session: Session) -> CommandOrigin:
        return CommandOrigin(self._server, session.conn_id, command.request_id)
