"""start_strategy's ``config.params``: a strategy started live with other parameters
(a sweep's best), checked by its params model, shown in its entries, and restored with
them after a restart. Real daemons, real clients (OrchestratorClient and WebSockets)."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.client.ws_client import CommandError, OrchestratorClient
from orchestrator.model.events import StrategyStatus
from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import TestDaemon, running_daemon, test_config

SMA = "strategy-123"  # the catalog's sma_crossover, fast 3 and slow 8
TUNED = {"fast": 2, "slow": 4}


def entry_of(entries: list[dict[str, Any]], strategy_id: str) -> dict[str, Any]:
    [entry] = [e for e in entries if e["id"] == strategy_id]
    return entry


async def indicator_names(daemon: TestDaemon, client: OrchestratorClient) -> set[str]:
    """The names of the running strategy's indicator lines in AAPL: its periods."""
    await drive_uptrend(daemon, 10)
    reply = await client.request({"type": "get_indicators", "strategyId": SMA, "symbol": "AAPL"})
    points = reply["data"]["points"]
    assert points, reply
    return set(points[-1]["values"])


async def test_a_strategy_starts_with_the_params_given_and_lists_them() -> None:
    async with (
        running_daemon() as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        catalog = entry_of((await client.get_strategies())["data"], SMA)
        assert catalog["params"] == {"fast": 3, "slow": 8}

        started = await client.start_strategy(SMA, params=TUNED)
        assert started["type"] == "strategy_started"
        for reply in (await client.get_strategies(), await client.get_active_strategies()):
            assert entry_of(reply["data"], SMA)["params"] == TUNED
        assert await indicator_names(daemon, client) == {"SMA 2", "SMA 4"}


async def test_a_start_without_params_runs_the_catalogs_again() -> None:
    async with (
        running_daemon() as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        await client.start_strategy(SMA, params=TUNED)
        await client.stop_strategy(SMA)
        stopped = entry_of((await client.get_strategies())["data"], SMA)
        assert (stopped["status"], stopped["params"]) == ("STOPPED", TUNED)  # as it last ran
        await client.start_strategy(SMA)
        entry = entry_of((await client.get_active_strategies())["data"], SMA)
        assert entry["params"] == {"fast": 3, "slow": 8}
        assert await indicator_names(daemon, client) == {"SMA 3", "SMA 8"}


async def test_params_given_go_over_the_catalogs() -> None:
    async with (
        running_daemon() as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        await client.start_strategy(SMA, params={"fast": 5, "allow_short": True})
        entry = entry_of((await client.get_active_strategies())["data"], SMA)
        assert entry["params"] == {"fast": 5, "slow": 8, "allow_short": True}
        assert daemon.daemon.registry.view(SMA).config.params == entry["params"]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"fast": 0}, "params.fast: Input should be greater than or equal to 1 (got 0)"),
        ({"fast": 9}, "params: fast (9) must be less than slow (8)"),
        ({"speed": 4}, "params.speed: Extra inputs are not permitted"),
        ({"fast": "quick"}, "params.fast: Input should be a valid integer"),
    ],
)
async def test_bad_params_are_refused_by_the_strategys_model(
    params: dict[str, Any], problem: str
) -> None:
    async with (
        running_daemon() as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        with pytest.raises(CommandError) as refused:
            await client.start_strategy(SMA, params=params)
        assert refused.value.code == "invalid_config"
        assert refused.value.request_type == "start_strategy"
        assert refused.value.message.startswith(f"invalid config for {SMA}: ")
        assert problem in refused.value.message
        assert daemon.daemon.registry.status(SMA) is StrategyStatus.STOPPED
        # The connection and the daemon stay up: the next start works.
        assert (await client.start_strategy(SMA))["type"] == "strategy_started"


@pytest.mark.parametrize(
    "params",
    [["fast", 5], {"fast": [5]}, {"": 5}, {f"p{i}": 1 for i in range(65)}],
)
async def test_params_of_the_wrong_shape_are_refused_on_the_wire(params: Any) -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request(
            {"type": "start_strategy", "id": SMA, "config": {"params": params}}
        )
        assert reply["type"] == "error", reply
        assert reply["data"]["requestType"] == "start_strategy"
        assert "params" in reply["data"]["message"]
        assert daemon.daemon.registry.status(SMA) is StrategyStatus.STOPPED


async def test_a_paused_strategy_resumes_only_with_the_params_it_runs() -> None:
    async with (
        running_daemon() as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        await client.start_strategy(SMA, params=TUNED)
        await client.pause_strategy(SMA)
        with pytest.raises(CommandError) as refused:
            await client.start_strategy(SMA, params={"fast": 3})
        assert refused.value.code == "invalid_transition"
        assert (await client.start_strategy(SMA, params=TUNED))["type"] == "strategy_started"
        assert daemon.daemon.registry.view(SMA).params == TUNED


@pytest.mark.parametrize("status", [StrategyStatus.ACTIVE, StrategyStatus.PAUSED])
async def test_a_restart_restores_the_strategy_with_its_params(status: StrategyStatus) -> None:
    config = test_config()  # its own journal in a temporary state directory
    async with (
        running_daemon(config) as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        await client.start_strategy(SMA, params=TUNED)
        if status is StrategyStatus.PAUSED:
            await client.pause_strategy(SMA)

    async with (
        running_daemon(config) as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        entry = entry_of((await client.get_active_strategies())["data"], SMA)
        assert (entry["status"], entry["params"]) == (status.value, TUNED)
        if status is StrategyStatus.PAUSED:
            await client.start_strategy(SMA)  # resumes with the restored params
        assert await indicator_names(daemon, client) == {"SMA 2", "SMA 4"}


async def test_a_restart_keeps_the_params_that_ran_when_the_catalogs_change() -> None:
    config = test_config()
    async with (
        running_daemon(config) as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        await client.start_strategy(SMA, params={"fast": 6})  # with the catalog's slow 8

    # The journal keeps the params the run used, whole: a restored strategy runs as it
    # ran, as it keeps its symbols (the catalog's new params are for the next start).
    sma, *others = config.strategies
    retuned = sma.model_copy(update={"params": {"fast": 2, "slow": 5}})
    restarted = config.model_copy(update={"strategies": (retuned, *others)})
    async with (
        running_daemon(restarted) as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        entry = entry_of((await client.get_active_strategies())["data"], SMA)
        assert (entry["status"], entry["params"]) == ("ACTIVE", {"fast": 6, "slow": 8})
        await client.stop_strategy(SMA)
        await client.start_strategy(SMA)
        entry = entry_of((await client.get_active_strategies())["data"], SMA)
        assert entry["params"] == {"fast": 2, "slow": 5}
