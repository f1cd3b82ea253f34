"""The ccxt exchange of a venue, built from its config and credentials, and ccxt's
errors in sentences an operator acts on.

Every call to a venue goes through ccxt's async API (``ccxt.async_support``): the
event loop never blocks on the network.
"""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from gateways.venues.config import VenueConfig
from gateways.venues.credentials import VenueCredentials, environment_names
from orchestrator.model.errors import ConfigError

EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        # Only the configured market type's exchangeInfo; no margin pairs and no currency
        # list: private sapi calls that the spot testnet does not serve.
        "fetchMargins": False,
        "fetchCurrencies": False,
    },
}
"""ccxt options the daemon sets per exchange id, beside the market type."""


def build_exchange(name: str, config: VenueConfig, credentials: VenueCredentials) -> Any:
    """ccxt's async exchange for venue ``name``; ConfigError when ccxt has no such id."""
    if config.exchange not in ccxt_async.exchanges:
        raise ConfigError(
            f"venue {name}: ccxt has no exchange {config.exchange!r} "
            "(see ccxt.exchanges for the ids)"
        )
    settings = {**credentials.ccxt_fields(), **_settings(config)}
    if config.recv_window_ms is not None:
        settings["options"]["recvWindow"] = config.recv_window_ms
    exchange = getattr(ccxt_async, config.exchange)(settings)
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.api_urls:
        _replace_urls(name, exchange, config.api_urls)
    return exchange


def _settings(config: VenueConfig) -> dict[str, Any]:
    """The ccxt settings of a venue's exchanges, the REST one and the streaming one."""
    options: dict[str, Any] = {"defaultType": config.market_type}
    options.update(EXCHANGE_OPTIONS.get(config.exchange, {}))
    if config.exchange == "binance":
        options["fetchMarkets"] = {"types": [config.market_type]}
    settings: dict[str, Any] = {
        "enableRateLimit": config.enable_rate_limit,
        "timeout": int(config.timeout_seconds * 1000),
        "options": options,
    }
    if config.rate_limit_ms is not None:
        settings["rateLimit"] = config.rate_limit_ms
    return settings


def build_stream_exchange(name: str, config: VenueConfig) -> Any | None:
    """ccxt.pro's exchange for venue ``name``'s public streams (no credentials: the feed
    reads public trades), with the REST exchange's settings, sandbox and URLs; None when
    ccxt.pro has no such exchange."""
    import ccxt.pro as ccxt_pro  # here: only a ccxt feed that streams needs it

    if config.exchange not in ccxt_pro.exchanges:
        return None
    exchange = getattr(ccxt_pro, config.exchange)(_settings(config))
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.api_urls:
        _replace_urls(name, exchange, config.api_urls)
    if config.stream_urls:
        _replace_stream_urls(name, exchange, config.stream_urls)
    return exchange


def _replace_stream_urls(name: str, exchange: Any, replacements: dict[str, str]) -> None:
    """The WebSocket entries of ``urls['api']['ws']`` (after the sandbox switch)."""
    api = exchange.urls.get("api", {})
    api["ws"] = _replaced(name, exchange, api.get("ws"), replacements, "stream_urls", "WebSocket")


def _replace_urls(name: str, exchange: Any, replacements: dict[str, str]) -> None:
    """After the sandbox switch (which swaps ``urls['api']`` for the testnet's)."""
    api = exchange.urls.get("api")
    exchange.urls["api"] = _replaced(name, exchange, api, replacements, "api_urls", "API")


def _replaced(
    name: str, exchange: Any, urls: Any, replacements: dict[str, str], setting: str, kind: str
) -> dict[str, Any]:
    """``urls`` with ``replacements`` in; ConfigError if it has no entry of one of them."""
    if not isinstance(urls, dict):
        raise ConfigError(f"venue {name}: {exchange.id} has no named {kind} URLs to replace")
    unknown = sorted(set(replacements) - set(urls))
    if unknown:
        raise ConfigError(
            f"venue {name}: {setting} names {', '.join(unknown)}, which {exchange.id} does "
            f"not have; it has {', '.join(sorted(urls))}"
        )
    return {**urls, **replacements}


def describe_venue_error(name: str, exc: BaseException) -> str:
    """Why a call to venue ``name`` failed, in a sentence that says what to do."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ccxt_errors.InvalidNonce):
        return (
            f"venue {name} refused the request's timestamp (clock skew: this machine's clock "
            f"and the exchange's differ; sync it with NTP): {detail}"
        )
    if isinstance(exc, ccxt_errors.AuthenticationError):
        key, secret, _ = environment_names(name)
        return (
            f"venue {name} refused the API key or its signature (bad key, bad secret, or "
            f"missing permissions; check {key} and {secret}): {detail}"
        )
    if isinstance(exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded):
        return f"venue {name} rate-limited the daemon (HTTP 429/418); it backs off: {detail}"
    if isinstance(exc, ccxt_errors.RequestTimeout):
        return f"venue {name} did not answer in time: {detail}"
    if isinstance(exc, ccxt_errors.NetworkError):
        return f"venue {name} cannot be reached: {detail}"
    if isinstance(exc, ccxt_errors.InsufficientFunds):
        return f"venue {name}: insufficient balance: {detail}"
    if isinstance(exc, ccxt_errors.BadSymbol):
        return f"venue {name} has no such market: {detail}"
    if isinstance(exc, ccxt_errors.BaseError):
        return f"venue {name} refused: {detail}"
    return f"venue {name}: unexpected {type(exc).__name__}: {detail}"
