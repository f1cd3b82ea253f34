"""The strategy registry without a socket: transitions, config merging, events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.errors import (
    InvalidStrategyConfig,
    InvalidTransition,
    OrchestratorError,
    RealTradingUnavailable,
    UnknownStrategy,
)
from orchestrator.model.events import CommandOrigin, Event, StrategyStatus, StrategyStatusChanged
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.strategy.registry import PositionView, StrategyRegistry, StrategyView

ACTIVE, PAUSED, STOPPED, ERROR = (
    StrategyStatus.ACTIVE,
    StrategyStatus.PAUSED,
    StrategyStatus.STOPPED,
    StrategyStatus.ERROR,
)


class RecordingEngine:
    """A StrategyEngine that records what the registry told it to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.configs: dict[str, StrategyRunConfig] = {}
        self.refuse: OrchestratorError | None = None
        self.held: dict[str, list[PositionView]] = {}

    def check(self, entry: CatalogEntry, config: StrategyRunConfig) -> None:
        if self.refuse is not None:
            raise self.refuse

    async def activate(self, entry: CatalogEntry, config: StrategyRunConfig) -> None:
        self.calls.append(("activate", entry.id))
        self.configs[entry.id] = config

    def pause(self, strategy_id: str) -> None:
        self.calls.append(("pause", strategy_id))

    def resume(self, strategy_id: str) -> None:
        self.calls.append(("resume", strategy_id))

    async def deactivate(self, strategy_id: str) -> None:
        self.calls.append(("deactivate", strategy_id))

    def positions(self, strategy_id: str) -> Sequence[PositionView]:
        return self.held.get(strategy_id, [])


def catalog() -> tuple[CatalogEntry, ...]:
    return (
        CatalogEntry(
            id="sma",
            name="Moving Average Crossover",
            kind="sma_crossover",
            defaults=StrategyRunConfig(symbols=("AAPL", "MSFT"), data_resolution="1s"),
        ),
        CatalogEntry(
            id="rsi",
            name="RSI Mean Reversion",
            kind="rsi_reversion",
            defaults=StrategyRunConfig(symbols=("GOOG",), data_resolution="5s"),
        ),
    )


class Fixture:
    def __init__(self) -> None:
        self.engine = RecordingEngine()
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.clock = ManualClock(1_700_000_000.0)
        self.registry = StrategyRegistry(catalog(), self.engine, self.bus, self.clock)

    def snapshot(self) -> list[StrategyView]:
        return self.registry.catalog()

    async def to(self, strategy_id: str, status: StrategyStatus) -> None:
        """Drive a strategy from STOPPED to ``status`` through legal transitions."""
        if status is STOPPED:
            return
        if status is ERROR:
            await self.registry.start(strategy_id)
            self.registry.fail(strategy_id, "boom")
            return
        await self.registry.start(strategy_id)
        if status is PAUSED:
            await self.registry.pause(strategy_id)


@pytest.fixture
def fx() -> Fixture:
    return Fixture()


async def test_everything_starts_stopped_in_catalog_order(fx: Fixture) -> None:
    views = fx.registry.catalog()
    assert [v.id for v in views] == ["sma", "rsi"]
    assert all(v.status is STOPPED for v in views)
    assert fx.registry.active() == []
    assert views[0].config == catalog()[0].defaults
    assert views[0].symbols == ("AAPL", "MSFT")


async def test_start_activates_with_catalog_defaults_and_publishes(fx: Fixture) -> None:
    origin = CommandOrigin("orchestrator", "orchestrator-1", "r1")
    event = await fx.registry.start("sma", None, origin)
    assert fx.registry.status("sma") is ACTIVE
    assert fx.engine.calls == [("activate", "sma")]
    assert fx.engine.configs["sma"] == catalog()[0].defaults
    assert fx.events == [event]
    assert event == StrategyStatusChanged(
        strategy_id="sma",
        name="Moving Average Crossover",
        status=ACTIVE,
        previous=STOPPED,
        symbols=("AAPL", "MSFT"),
        ts=1_700_000_000.0,
        origin=origin,
    )
    assert [v.id for v in fx.registry.active()] == ["sma"]


async def test_every_status_change_carries_the_run_config_it_leaves(fx: Fixture) -> None:
    await fx.registry.start("sma", {"maxPositionValue": 5000})
    await fx.registry.pause("sma")
    await fx.registry.stop("sma")
    started = fx.registry.run_config("sma", {"maxPositionValue": 5000})
    assert [e.config for e in fx.events] == [started, started, started]


async def test_partial_config_is_filled_from_catalog_defaults_and_stored(fx: Fixture) -> None:
    await fx.registry.start("sma", {"symbols": ["aapl"], "maxPositionValue": 5000})
    view = fx.registry.view("sma")
    assert view.symbols == ("AAPL",)
    assert view.config == StrategyRunConfig(
        symbols=("AAPL",), data_resolution="1s", max_position_value=5000.0
    )


async def test_full_config_is_stored_field_for_field(fx: Fixture) -> None:
    await fx.registry.start(
        "rsi",
        {
            "symbols": ["AAPL", "MSFT"],
            "dataResolution": "1m",
            "realTrading": False,
            "maxPositionValue": 20000,
            "maxOrdersPerMinute": 7,
            "stopLossPercentage": 0.05,
        },
    )
    config = fx.registry.view("rsi").config
    assert config.symbols == ("AAPL", "MSFT")
    assert config.data_resolution == "1m"
    assert config.real_trading is False
    assert config.max_position_value == 20000.0
    assert config.max_orders_per_minute == 7
    assert config.stop_loss_percentage == 0.05


async def test_overrides_use_wire_names_and_snake_case_is_refused_not_dropped(
    fx: Fixture,
) -> None:
    with pytest.raises(InvalidStrategyConfig) as caught:
        await fx.registry.start("sma", {"data_resolution": "1m"})
    assert "data_resolution" in caught.value.message
    assert fx.registry.status("sma") is STOPPED


async def test_restart_after_stop_uses_defaults_again(fx: Fixture) -> None:
    await fx.registry.start("sma", {"symbols": ["AAPL"]})
    await fx.registry.stop("sma")
    await fx.registry.start("sma")
    assert fx.registry.view("sma").symbols == ("AAPL", "MSFT")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"symbols": []}, "symbols"),
        ({"symbols": ["AAPL", "AAPL"]}, "repeat"),
        ({"symbols": ["not a symbol"]}, "symbols"),
        ({"symbols": [f"S{i}" for i in range(51)]}, "symbols"),
        ({"dataResolution": "7m"}, "unknown resolution"),
        ({"maxPositionValue": 0}, "maxPositionValue"),
        ({"maxPositionValue": 2e9}, "maxPositionValue"),
        ({"maxOrdersPerMinute": 0}, "maxOrdersPerMinute"),
        ({"maxOrdersPerMinute": 10_001}, "maxOrdersPerMinute"),
        ({"stopLossPercentage": -0.1}, "stopLossPercentage"),
        ({"stopLossPercentage": 1.0}, "stopLossPercentage"),
        ({"bogus": 1}, "bogus"),
    ],
)
async def test_bad_config_values_are_refused_and_change_nothing(
    fx: Fixture, overrides: dict[str, Any], problem: str
) -> None:
    before = fx.snapshot()
    with pytest.raises(InvalidStrategyConfig) as caught:
        await fx.registry.start("sma", overrides)
    assert caught.value.code == "invalid_config"
    assert problem in caught.value.message
    assert fx.snapshot() == before
    assert fx.engine.calls == []
    assert fx.events == []


async def test_real_trading_is_the_engines_to_refuse(fx: Fixture) -> None:
    """The engine knows the venues (the runtime asks the execution service): the registry
    hands it realTrading and the venue, and stays STOPPED when it refuses."""
    fx.engine.refuse = RealTradingUnavailable("realTrading is not available: no venue")
    with pytest.raises(RealTradingUnavailable) as caught:
        await fx.registry.start("sma", {"realTrading": True, "venue": "main"})
    assert caught.value.code == "real_trading_unavailable"
    assert fx.registry.status("sma") is STOPPED
    assert fx.events == []
    fx.engine.refuse = None
    await fx.registry.start("sma", {"realTrading": True, "venue": "main"})
    config = fx.engine.configs["sma"]
    assert (config.real_trading, config.venue) == (True, "main")


async def test_engine_refusal_leaves_the_strategy_stopped(fx: Fixture) -> None:
    fx.engine.refuse = InvalidStrategyConfig("no market data for XYZ")
    with pytest.raises(InvalidStrategyConfig):
        await fx.registry.start("sma", {"symbols": ["XYZ"]})
    assert fx.registry.view("sma").config == catalog()[0].defaults
    assert fx.registry.status("sma") is STOPPED
    assert fx.events == []


@pytest.mark.parametrize("command", ["start", "stop", "pause"])
async def test_unknown_strategy(fx: Fixture, command: str) -> None:
    with pytest.raises(UnknownStrategy) as caught:
        await getattr(fx.registry, command)("nope")
    assert caught.value.code == "unknown_strategy"
    assert "sma" in caught.value.message
    with pytest.raises(UnknownStrategy):
        fx.registry.view("nope")


LEGAL = {
    (STOPPED, "start"): (ACTIVE, "activate"),
    (PAUSED, "start"): (ACTIVE, "resume"),
    (ERROR, "start"): (ACTIVE, "activate"),
    (ACTIVE, "pause"): (PAUSED, "pause"),
    (ACTIVE, "stop"): (STOPPED, "deactivate"),
    (PAUSED, "stop"): (STOPPED, "deactivate"),
    (ERROR, "stop"): (STOPPED, "deactivate"),
}


@pytest.mark.parametrize("status", list(StrategyStatus))
@pytest.mark.parametrize("command", ["start", "stop", "pause"])
async def test_transition_table(fx: Fixture, status: StrategyStatus, command: str) -> None:
    await fx.to("sma", status)
    assert fx.registry.status("sma") is status
    before = fx.snapshot()
    fx.engine.calls.clear()
    fx.events.clear()
    expected = LEGAL.get((status, command))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            await getattr(fx.registry, command)("sma")
        assert caught.value.code == "invalid_transition"
        assert fx.snapshot() == before
        assert fx.engine.calls == []
        assert fx.events == []
        return
    target, engine_call = expected
    event = await getattr(fx.registry, command)("sma")
    assert fx.registry.status("sma") is target
    assert fx.engine.calls == [(engine_call, "sma")]
    assert isinstance(event, StrategyStatusChanged)
    assert (event.previous, event.status) == (status, target)
    assert fx.events == [event]


async def test_paused_keeps_its_config_and_resumes_with_it(fx: Fixture) -> None:
    await fx.registry.start("sma", {"symbols": ["AAPL"], "maxOrdersPerMinute": 9})
    await fx.registry.pause("sma")
    assert [v.status for v in fx.registry.active()] == [PAUSED]
    await fx.registry.start("sma")
    view = fx.registry.view("sma")
    assert view.status is ACTIVE
    assert view.config.max_orders_per_minute == 9
    assert view.symbols == ("AAPL",)


async def test_resume_with_the_same_config_is_allowed(fx: Fixture) -> None:
    await fx.registry.start("sma", {"symbols": ["AAPL"]})
    await fx.registry.pause("sma")
    await fx.registry.start("sma", {"symbols": ["AAPL"]})
    assert fx.registry.status("sma") is ACTIVE


async def test_resume_with_another_config_is_refused(fx: Fixture) -> None:
    await fx.registry.start("sma", {"symbols": ["AAPL"]})
    await fx.registry.pause("sma")
    before = fx.snapshot()
    with pytest.raises(InvalidTransition):
        await fx.registry.start("sma", {"symbols": ["MSFT"]})
    assert fx.snapshot() == before


async def test_fail_only_from_active_or_paused(fx: Fixture) -> None:
    assert fx.registry.fail("sma", "boom") is None
    assert fx.registry.status("sma") is STOPPED
    await fx.to("sma", PAUSED)
    event = fx.registry.fail("sma", "ValueError: boom")
    assert event is not None
    assert event.status is ERROR and event.reason == "ValueError: boom"
    view = fx.registry.view("sma")
    assert view.status is ERROR and view.error == "ValueError: boom"
    assert [v.id for v in fx.registry.active()] == ["sma"]
    await fx.registry.start("sma")
    assert fx.registry.view("sma").error is None


async def test_views_carry_the_engines_positions(fx: Fixture) -> None:
    held = PositionView("AAPL", 10.0, 150.25, 1550.5)
    fx.engine.held["sma"] = [held]
    await fx.registry.start("sma")
    assert fx.registry.view("sma").positions == (held,)
    assert fx.registry.active()[0].positions == (held,)
