"""The strategy commands every server accepts, handed to the one registry."""

from __future__ import annotations

from gateways.api import outbound
from gateways.api.inbound import (
    CancelOrder,
    Command,
    CommandType,
    GetAccount,
    GetActiveStrategies,
    GetOpenOrders,
    GetStrategies,
    OrderCommandType,
    PauseStrategy,
    StartStrategy,
    StopStrategy,
)
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.model.clock import Clock
from orchestrator.model.errors import OrderNotFound
from orchestrator.model.events import CommandOrigin
from orchestrator.strategy.committed_views import CommittedViews
from orchestrator.strategy.registry import StrategyRegistry
from orchestrator.trading.execution import ExecutionService


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


class OrderCommands:
    """The resting orders' commands (8082): ``get_open_orders`` answers here, from the
    committed orders (what clients were told); ``cancel_order`` answers through the bus
    (the ``order_cancelled`` event, journaled first, carries the requestId back)."""

    def __init__(
        self,
        execution: ExecutionService,
        registry: StrategyRegistry,
        committed: CommittedViews,
        server_name: str,
        clock: Clock,
    ) -> None:
        self._execution = execution
        self._registry = registry
        self._committed = committed
        self._server = server_name
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            OrderCommandType.GET_OPEN_ORDERS: self.get_open_orders,
            OrderCommandType.CANCEL_ORDER: self.cancel_order,
        }

    async def get_open_orders(self, command: GetOpenOrders, _: Session) -> Replies:
        if command.strategyId is not None:
            self._registry.view(command.strategyId)  # an unknown id: unknown_strategy
        orders = self._committed.open_orders(command.strategyId)
        data = outbound.open_orders_data(command.strategyId, orders, self._committed.filled)
        return [outbound.encode("open_orders", data, self._clock.now(), command.request_id)]

    async def cancel_order(self, command: CancelOrder, session: Session) -> Replies:
        origin = CommandOrigin(self._server, session.conn_id, command.request_id)
        if not self._execution.cancel_by_hand(command.orderId, origin):
            raise OrderNotFound(
                f"no resting order {command.orderId!r}: it filled, was cancelled or expired, "
                "or never existed; get_open_orders lists the open ones"
            )
        return []
