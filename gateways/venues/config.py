"""Config of one venue, ``[venues.NAME]``: which ccxt exchange, testnet or not, the
market type and how hard the daemon may call it. Never its credentials: those come
from the environment or a file only the daemon's user can read
(:mod:`gateways.venues.credentials`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.model.validation import FrozenModel

VENUE_NAME = r"^[a-z][a-z0-9_]{0,31}$"
"""A venue's name in the TOML (``[venues.binance_testnet]``) and in start_strategy's
``venue``: lower case, so that its environment variables are unambiguous."""


CREDENTIAL_ENV_PREFIX = "ORCHESTRATOR_VENUE_"
"""What every credential variable starts with (``ORCHESTRATOR_VENUE_<NAME>_API_KEY``):
not a config section, so the check for misspelt sections passes it by."""


class VenueConfig(FrozenModel):
    """One exchange account the daemon may trade on (docs/venues.md)."""

    exchange: str = Field(
        pattern=r"^[a-z][a-z0-9]{1,31}$",
        description="The ccxt exchange id (binance, kraken, okx, ...); check-config "
        "refuses one ccxt does not have.",
    )
    sandbox: bool = Field(
        False,
        description="Trade on the exchange's testnet (ccxt's set_sandbox_mode): Binance's "
        "spot testnet for binance.",
    )
    market_type: Literal["spot"] = Field(
        "spot",
        description="The markets traded: spot (positions are balances of the base currency).",
    )
    enable_rate_limit: bool = Field(
        True, description="Let ccxt space the requests by the exchange's own weights."
    )
    rate_limit_ms: int | None = Field(
        None,
        ge=1,
        le=60_000,
        description="Milliseconds between two requests of weight 1 (ccxt's rateLimit); "
        "unset: the exchange's default.",
    )
    timeout_seconds: float = Field(
        10.0,
        gt=0.0,
        le=120.0,
        description="How long one request may take; a submit that times out is looked up "
        "by its client order id, never sent again blind.",
    )
    poll_interval_seconds: float = Field(
        1.0,
        gt=0.0,
        le=300.0,
        description="How often the open orders of the venue are polled for fills.",
    )
    reconcile_interval_seconds: float = Field(
        60.0,
        gt=0.0,
        le=86_400.0,
        description="How often, while running, the venue's open orders and balances are "
        "compared with the journal (at start they always are, before any strategy resumes).",
    )
    start_reconcile_seconds: float = Field(
        10.0,
        ge=0.0,
        le=600.0,
        description="How long the start's reconciliation is tried again (with backoff) when "
        "the venue answers but the pass fails (a rate limit, a timeout), before the "
        "strategies trading there are restored: until it succeeds they are restored as "
        "ERROR and the venue takes no order.",
    )
    recv_window_ms: int | None = Field(
        None,
        ge=100,
        le=60_000,
        description="How long a signed request stays valid at the venue (Binance's "
        "recvWindow; unset: ccxt's default, 10000 for binance). An order the venue has "
        "not seen is given up only once this has passed since it was sent.",
    )
    max_clock_skew_ms: int = Field(
        1_000,
        ge=1,
        le=60_000,
        description="check-config fails when the exchange's clock and this machine's differ "
        "by more: signed requests would be refused.",
    )
    client_id_prefix: str = Field(
        "orc-",
        pattern=r"^[A-Za-z0-9._-]{0,12}$",
        description="What every client order id starts with, before the journal's order id "
        "(orc-order_000017): give each daemon trading one account its own.",
    )
    api_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Replacements for entries of ccxt's urls['api'] (for example "
        "{public = 'http://proxy/api/v3', private = ...}): a proxy, a mirror, a test venue.",
    )
    stream_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Replacements for entries of ccxt.pro's urls['api']['ws'] (for example "
        "{spot = 'wss://proxy/ws'}), the WebSocket the ccxt feed streams from: a proxy, a "
        "mirror, a test venue.",
    )
    credentials_file: Path | None = Field(
        None,
        description="A TOML file with api_key, secret (and password where the exchange "
        "needs one), readable only by the daemon's user; a relative path is looked up in "
        "$CREDENTIALS_DIRECTORY (systemd's LoadCredential=). Unset: the environment's "
        "ORCHESTRATOR_VENUE_<NAME>_API_KEY and _SECRET.",
    )
