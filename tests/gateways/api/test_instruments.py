"""get_instruments on every server, and the CLI's prices to each instrument's decimals."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError

from gateways.client.commands import Output
from gateways.client.ws_client import OrchestratorClient
from orchestrator.marketdata.config import MarketDataConfig
from tests.support import running_daemon, test_config

FEED = {"kind": "synthetic", "history_seconds": 0, "symbols": {"AAPL": 190.0, "EURUSD": 1.08}}


def forex_config() -> object:
    return test_config(market_data={"feed": FEED, "price_increments": {"EURUSD": 0.00001}})


@pytest.mark.parametrize("server", ["orchestrator", "market_data", "risk"])
async def test_every_server_describes_the_instruments(server: str) -> None:
    async with running_daemon(forex_config()) as daemon, daemon.client(server) as client:
        reply = await client.request({"type": "get_instruments"})
    assert reply["type"] == "instruments"
    assert reply["data"] == [
        {"symbol": "AAPL", "priceIncrement": 0.01, "priceDecimals": 2},
        {"symbol": "EURUSD", "priceIncrement": 0.00001, "priceDecimals": 5},
    ]


async def test_the_cli_shows_prices_to_the_instruments_decimals() -> None:
    async with (
        running_daemon(forex_config()) as daemon,
        OrchestratorClient(daemon.url(), reconnect=False) as client,
    ):
        out = Output(io.StringIO(), color=False)
        await out.learn_prices(client)
    assert out.price(1.0834567, "EURUSD") == "1.08346"
    assert out.price(1234.5, "AAPL") == "1,234.50"
    assert out.price(0.123456789, "XYZ") == "0.12345679"  # not described: up to 8


def test_an_increment_for_a_symbol_the_feed_lacks_is_refused() -> None:
    with pytest.raises(ValidationError, match="price_increments names GBPUSD, which the feed"):
        MarketDataConfig.model_validate({"feed": FEED, "price_increments": {"GBPUSD": 0.00001}})
