"""The trading core as one unit: market data, risk, execution and the strategy
runtime, built from the components' configs. The composition root builds it once."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.bus import EventBus
from orchestrator.marketdata.config import MarketDataConfig
from orchestrator.marketdata.feeds import Feed, build_feed
from orchestrator.marketdata.hub import MarketData
from orchestrator.model.clock import Clock
from orchestrator.model.ids import IdFactory, SequentialIds
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import RiskGuardian
from orchestrator.strategy.config import RuntimeConfig
from orchestrator.strategy.runtime import StrategyRuntime
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.pipeline import halt_at_start
from orchestrator.trading.portfolio import PortfolioBook
from orchestrator.trading.routing import BrokerRouter


class TradingConfig(Protocol):
    """The component configs the core is built from (the daemon config has them all)."""

    @property
    def market_data(self) -> MarketDataConfig: ...
    @property
    def broker(self) -> PaperBrokerConfig: ...
    @property
    def risk(self) -> RiskConfig: ...
    @property
    def runtime(self) -> RuntimeConfig: ...


@dataclass(frozen=True, slots=True)
class TradingCore:
    market: MarketData
    risk: RiskGuardian
    execution: ExecutionService
    runtime: StrategyRuntime
    brokers: BrokerRouter
    """The paper broker and the live venues' brokers the composition root adds."""
    ids: IdFactory

    def background_tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {
            "market-data-feed": self.market.run_feed(),
            "bar-clock": self.market.run_bar_clock(),
            "order-expiry": self.execution.run_expiry(),
        }

    async def close(self) -> None:
        self.execution.cancel_pending("daemon shutting down")


def build_trading_core(
    config: TradingConfig,
    bus: EventBus,
    clock: Clock,
    feed: Feed | None = None,
    ids_from: Mapping[str, int] | None = None,
    last_prices: Mapping[str, float] | None = None,
) -> TradingCore:
    """The core from ``config``; ``feed`` replaces the configured one when given
    (the composition root builds the feeds that live at the edge, such as NNG);
    ``ids_from`` is where each id prefix stopped before a restart, ``last_prices``
    each symbol's last price then (a synthetic feed continues from it)."""
    ids = SequentialIds(ids_from)
    market = MarketData(
        feed if feed is not None else build_feed(config.market_data.feed, clock, last_prices),
        bus,
        clock,
        config.market_data.warmup_ticks_per_symbol,
    )
    book = PortfolioBook()
    risk = RiskGuardian(config.risk, book, bus, clock, ids)
    # The one place that picks the broker: paper, or the venue a live strategy trades on
    # (the composition root adds the venues' brokers, which speak the network).
    brokers = BrokerRouter(PaperBroker(config.broker, clock, ids))
    execution = ExecutionService(
        bus, clock, book, brokers, risk, ids, brokers, partial_fills=config.broker.partial_fills
    )
    halt = halt_at_start(config.risk, clock.now())
    if halt is not None:
        execution.engage_kill_switch(halt)
    market.on_price(execution.on_tick)
    runtime = StrategyRuntime(config.runtime, market, execution, bus, clock, ids)
    market.prime()
    return TradingCore(market, risk, execution, runtime, brokers, ids)
