"""The ccxt.pro exchange the ccxt feed streams from: the venue's settings, sandbox and
URLs, no credentials; None where ccxt.pro has no such exchange."""

from __future__ import annotations

import pytest

from gateways.venues.config import VenueConfig
from gateways.venues.connector import build_stream_exchange
from orchestrator.model.errors import ConfigError


async def test_the_stream_exchange_has_the_venues_settings_and_no_credentials() -> None:
    config = VenueConfig(
        exchange="binance",
        api_urls={"public": "http://127.0.0.1:1/api/v3"},
        stream_urls={"spot": "ws://127.0.0.1:1/stream/ws"},
        timeout_seconds=3.0,
        rate_limit_ms=7,
    )
    streams = build_stream_exchange("main", config)
    try:
        assert streams.has["watchTradesForSymbols"]
        assert streams.urls["api"]["public"] == "http://127.0.0.1:1/api/v3"
        assert streams.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:1/stream/ws"
        assert streams.urls["api"]["ws"]["linear"].startswith("wss://fstream.binance.com")
        assert (streams.timeout, streams.rateLimit) == (3000, 7)
        assert not streams.apiKey and not streams.secret
    finally:
        await streams.close()


async def test_sandbox_streams_from_the_testnet() -> None:
    streams = build_stream_exchange("main", VenueConfig(exchange="binance", sandbox=True))
    try:
        assert streams.urls["api"]["ws"]["spot"] == "wss://stream.testnet.binance.vision/ws"
    finally:
        await streams.close()


def test_an_exchange_ccxt_pro_does_not_have_has_no_stream_exchange() -> None:
    assert build_stream_exchange("main", VenueConfig(exchange="bitbank")) is None


def test_a_stream_url_the_exchange_does_not_have_is_named() -> None:
    config = VenueConfig(exchange="binance", stream_urls={"spott": "ws://127.0.0.1:1/ws"})
    with pytest.raises(ConfigError, match="stream_urls names spott, which binance does not"):
        build_stream_exchange("main", config)
