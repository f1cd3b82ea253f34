"""Which core events each server publishes, to which channel, as which message."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from gateways.api import outbound
from gateways.api.market_data import bar_channel, bar_data, quote_channel, quote_data
from gateways.ws.server import EVERYONE, EventRouter, Outbound, Session
from orchestrator.model.events import (
    BarClosed,
    Event,
    ExecutionStatusChanged,
    JobStateChanged,
    KillSwitchChanged,
    LimitBreached,
    OrderReduced,
    OrderRejected,
    QuoteUpdated,
    SignalEmitted,
    StopLossTriggered,
    StrategyStatusChanged,
    TradeExecuted,
)
from orchestrator.strategy.registry import StrategyRegistry
from orchestrator.trading.execution import ExecutionService

_ORCHESTRATOR_EVENTS = (
    StrategyStatusChanged,
    SignalEmitted,
    TradeExecuted,
    ExecutionStatusChanged,
    JobStateChanged,
)


def _to_everyone(event: Event, kinds: tuple[type, ...]) -> Iterable[Outbound]:
    if isinstance(event, kinds) and type(event) in outbound.ENCODERS:
        yield Outbound(EVERYONE, partial(outbound.ENCODERS[type(event)], event))


def orchestrator_router(event: Event) -> Iterable[Outbound]:
    return _to_everyone(event, _ORCHESTRATOR_EVENTS)


def market_data_router(event: Event) -> Iterable[Outbound]:
    if isinstance(event, QuoteUpdated):
        tick = event.tick
        return (Outbound(quote_channel(tick.symbol), lambda: ("quote", quote_data(tick))),)
    if isinstance(event, BarClosed):
        bar = event.bar
        channel = bar_channel(bar.symbol, bar.resolution)
        return (Outbound(channel, lambda: ("bar", bar_data(bar))),)
    return _to_everyone(event, (ExecutionStatusChanged,))


_RISK_EVENTS = (
    ExecutionStatusChanged,
    OrderRejected,
    OrderReduced,
    StopLossTriggered,
    LimitBreached,
    KillSwitchChanged,
)


def risk_router(event: Event) -> Iterable[Outbound]:
    return _to_everyone(event, _RISK_EVENTS)


ROUTERS: dict[str, EventRouter] = {
    "orchestrator": orchestrator_router,
    "market_data": market_data_router,
    "risk": risk_router,
}


class Snapshot:
    """What a new connection is sent first, so a frontend never guesses the state."""

    def __init__(self, registry: StrategyRegistry, execution: ExecutionService) -> None:
        self._registry = registry
        self._execution = execution

    def messages(self, _: Session) -> list[outbound.Message]:
        halt = self._execution.halt
        reason = halt.reason if halt is not None else None  # a frontend learns why at once
        status = outbound.execution_status_data(self._execution.status, reason)
        return [
            ("execution_service_status", status),
            ("strategy_status_list", outbound.strategy_list(self._registry.active())),
        ]
