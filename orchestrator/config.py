"""The daemon's configuration: one frozen model per component, composed into one.

Every field has bounds and a description; unknown keys are errors, so a typo in
the TOML stops the daemon at start instead of silently becoming a default.
Every scalar can be overridden from the environment as
``ORCHESTRATOR_<SECTION>__<FIELD>`` (for example
``ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT=9082``).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orchestrator.marketdata.feeds import (
    FeedConfig,
    NngAddress,
    NngFeedConfig,
    SyntheticFeedConfig,
    nng_address_is_local,
)
from orchestrator.model.errors import ConfigError
from orchestrator.model.market import RESOLUTION_SECONDS
from orchestrator.risk.guardian import RiskConfig
from orchestrator.trading.paper_broker import PaperBrokerConfig

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._:/-]{0,19}$"

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN, description="An instrument ticker.")]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(FrozenModel):
    host: str = Field("127.0.0.1", min_length=1, description="Address to bind.")
    port: int = Field(ge=0, le=65535, description="TCP port; 0 picks a free one.")
    path: str = Field(pattern=r"^/", description="WebSocket path; any other path gets 404.")


class OrchestratorServerConfig(ServerConfig):
    port: int = Field(8082, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    path: str = Field("/", pattern=r"^/", description="WebSocket path; any other path gets 404.")


class MarketDataServerConfig(ServerConfig):
    port: int = Field(3001, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    path: str = Field("/ws", pattern=r"^/", description="WebSocket path; any other path gets 404.")


class RiskServerConfig(ServerConfig):
    port: int = Field(3002, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    path: str = Field("/ws", pattern=r"^/", description="WebSocket path; any other path gets 404.")


class ServersConfig(FrozenModel):
    # One class per server so that a partial section (a port only) keeps the
    # server's other defaults.
    orchestrator: OrchestratorServerConfig = Field(
        OrchestratorServerConfig(), description="Strategy orchestrator server."
    )
    market_data: MarketDataServerConfig = Field(
        MarketDataServerConfig(), description="Market data gateway."
    )
    risk: RiskServerConfig = Field(RiskServerConfig(), description="Risk guardian.")

    @model_validator(mode="after")
    def _distinct_addresses(self) -> ServersConfig:
        servers = list(self)
        for i, (name, server) in enumerate(servers):
            for other_name, other in servers[i + 1 :]:
                if server.port and server.port == other.port and _overlap(server.host, other.host):
                    raise ValueError(
                        f"{name} and {other_name} both bind port {server.port} "
                        f"({server.host}, {other.host}); give each server its own port"
                    )
        return self


class ConnectionConfig(FrozenModel):
    """Per-connection behaviour shared by the three servers."""

    ping_interval: float = Field(
        20.0, gt=0, le=3600, description="Seconds between protocol-level pings."
    )
    ping_timeout: float = Field(
        20.0, gt=0, le=3600, description="Seconds to wait for a pong before closing as dead."
    )
    close_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds to wait for the closing handshake."
    )
    max_message_bytes: int = Field(
        65536, ge=256, le=16 * 2**20, description="Largest client frame; larger ones close 1009."
    )
    max_subscriptions: int = Field(
        200, ge=1, le=10_000, description="Market data subscriptions (channels) per connection."
    )
    compression: bool = Field(
        False,
        description="Offer permessage-deflate. Off by default: it costs CPU per client "
        "because each connection compresses its own copy of every broadcast.",
    )
    max_connections: int = Field(
        1000, ge=1, le=100_000, description="Connections per server; the excess gets HTTP 503."
    )
    max_outbound_bytes: int = Field(
        1 * 2**20,
        ge=4096,
        le=256 * 2**20,
        description="Unsent bytes a client may fall behind by before it is closed with 1013.",
    )
    commands_per_second: float = Field(
        20.0, gt=0, le=10_000, description="Sustained commands per second per connection."
    )
    command_burst: int = Field(
        40, ge=1, le=100_000, description="Commands a connection may send at once above the rate."
    )
    flood_close_after: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Rate-limited commands in a row after which the connection is closed 1008.",
    )


class StreamConfig(FrozenModel):
    """Gap-free streams: what a reconnecting client can resume from."""

    replay_window: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="Broadcast messages per server kept for clients that resume.",
    )


class SecurityConfig(FrozenModel):
    """Who may connect. Authentication is required when any server binds beyond loopback."""

    tokens: tuple[SecretStr, ...] = Field(
        (),
        max_length=100,
        description="Accepted bearer tokens (ORCHESTRATOR_SECURITY__TOKENS='[\"...\"]').",
    )
    tokens_file: Path | None = Field(
        None, description="A file with one token per line, re-read when it changes (rotation)."
    )
    auth_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds a client has to authenticate by message."
    )
    allowed_origins: tuple[str, ...] | None = Field(
        None,
        description="Origins browsers may connect from (e.g. https://app.example.com); "
        "None allows any. Clients that send no Origin header are not browsers and pass.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain: serve wss://.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")

    @model_validator(mode="after")
    def _tls_pair(self) -> SecurityConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self

    @property
    def has_tokens(self) -> bool:
        return bool(self.tokens) or self.tokens_file is not None


class LoggingConfig(FrozenModel):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level that is logged."
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: readable on a terminal, JSON lines otherwise (systemd)."
    )


class MarketDataConfig(FrozenModel):
    feed: FeedConfig = Field(
        default_factory=SyntheticFeedConfig, description="Where ticks come from (kind = ...)."
    )
    warmup_ticks_per_symbol: int = Field(
        20_000,
        ge=0,
        le=1_000_000,
        description="Recent ticks kept per symbol to warm up a strategy that starts.",
    )


class RuntimeConfig(FrozenModel):
    """How signals become orders and how strategies stop."""

    sizing_fraction: float = Field(
        0.95,
        gt=0,
        le=1,
        description="A signal without quantity targets this fraction of maxPositionValue, "
        "leaving room for the price to move before the fill.",
    )
    close_positions_on_stop: bool = Field(
        True, description="stop_strategy closes the strategy's positions at market first."
    )
    stop_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long stop_strategy waits for the closing fills."
    )


class JobsConfig(FrozenModel):
    """Backtest jobs: how many run at once, how many wait, how long one may take."""

    max_concurrent_jobs: int = Field(
        1,
        ge=1,
        le=32,
        description="Jobs running at once, each in its own worker process; keep it below "
        "the CPU cores so the live servers keep one.",
    )
    max_queued_jobs: int = Field(
        16,
        ge=0,
        le=10_000,
        description="Jobs waiting for a worker; a submission beyond it is refused "
        "(job_queue_full).",
    )
    max_job_seconds: float = Field(
        600.0, gt=0, le=86_400, description="A job still running after this is stopped: failed."
    )
    cancel_grace_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How long a cancelled or timed-out job may take to stop by itself "
        "before its worker process is killed.",
    )
    max_finished_jobs: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Finished jobs kept for get and list; the oldest are forgotten first.",
    )
    data_dir: Path | None = Field(
        None,
        description="Directory that OHLCV files of backtest jobs must be in (paths are "
        "relative to it); None refuses file backtests, leaving the synthetic feed.",
    )


class JournalConfig(FrozenModel):
    """The SQLite journal: where it lives, how writes are batched, how durable a commit is."""

    enabled: bool = Field(
        True,
        description="Commit every event to the journal before any client hears of it, and "
        "restore strategies and positions from it at start. false (benchmarks, throwaway "
        "runs): events go straight to the clients, nothing is persisted or restored.",
    )
    state_dir: Path | None = Field(
        None,
        description="Directory of the journal. None: $STATE_DIRECTORY (set by systemd's "
        "StateDirectory=), else $XDG_STATE_HOME/orchestrator, else ~/.local/state/orchestrator.",
    )
    file_name: str = Field(
        "journal.sqlite3",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="File name of the journal inside state_dir.",
    )
    batch_max_events: int = Field(
        500, ge=1, le=100_000, description="Most events committed in one transaction."
    )
    batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long a batch that is not full waits for more events before it is "
        "committed. 0 commits at once; events that arrive during a commit form the next batch.",
    )
    max_pending_events: int = Field(
        100_000,
        ge=1_000,
        le=10_000_000,
        description="Events waiting for the journal; more means the disk cannot keep up, "
        "which stops the daemon rather than tell clients of trades that are not journaled.",
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "FULL",
        description="SQLite synchronous mode. FULL: a commit survives a power loss. NORMAL "
        "(faster): it survives a crash of the daemon but the last commits may be lost if the "
        "machine loses power.",
    )


class NngBusConfig(FrozenModel):
    """The NNG publisher that carries every bus event to other processes (docs/nng.md)."""

    enabled: bool = Field(True, description="Bind the Pub0 socket and publish every event.")
    runtime_dir: Path | None = Field(
        None,
        description="Directory of the default ipc:// sockets (events.ipc, ingest.ipc), created "
        "with mode 0700. None: $RUNTIME_DIRECTORY (set by systemd's RuntimeDirectory=), else "
        "$XDG_RUNTIME_DIR/orchestrator, else <temp dir>/orchestrator-<uid>.",
    )
    publish_address: NngAddress | None = Field(
        None,
        description="Where subscribers dial (Pub0 listens): ipc:///path or tcp://host:port. "
        "None: ipc://<runtime_dir>/events.ipc.",
    )
    allow_remote: bool = Field(
        False,
        description="Allow a tcp:// publish_address beyond loopback. NNG has no "
        "authentication: whoever reaches it reads every signal, order and trade.",
    )
    queue_size: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Events waiting in the daemon for the socket. When full, an event is "
        "dropped and counted instead of slowing the bus; subscribers see the gap in seq.",
    )
    send_buffer: int = Field(
        1024,
        ge=1,
        le=8192,
        description="Messages NNG queues per subscriber; a subscriber further behind loses "
        "messages (pub/sub never waits for a reader) and sees the gap in seq.",
    )

    @model_validator(mode="after")
    def _local_unless_allowed(self) -> NngBusConfig:
        address = self.publish_address
        if address is not None and not self.allow_remote and not nng_address_is_local(address):
            raise ValueError(
                f"publish_address {address} is reachable beyond this machine and NNG has no "
                "authentication: bind ipc:// or loopback, or set allow_remote = true"
            )
        return self

    def resolved_runtime_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        if self.runtime_dir is not None:
            return self.runtime_dir.expanduser()
        return default_runtime_dir(environ)

    def resolved_publish_address(self, environ: Mapping[str, str] | None = None) -> str:
        if self.publish_address is not None:
            return self.publish_address
        return f"ipc://{self.resolved_runtime_dir(environ) / 'events.ipc'}"

    def default_ingest_address(self, environ: Mapping[str, str] | None = None) -> str:
        """Where the nng feed listens when its own ``address`` is None."""
        return f"ipc://{self.resolved_runtime_dir(environ) / 'ingest.ipc'}"


def default_runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$RUNTIME_DIRECTORY (systemd; the first of several), else
    $XDG_RUNTIME_DIR/orchestrator, else <temp dir>/orchestrator-<uid>."""
    env = os.environ if environ is None else environ
    systemd = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "orchestrator"
    return Path(tempfile.gettempdir()) / f"orchestrator-{os.getuid()}"


class StrategyRunConfig(BaseModel):
    """How a strategy runs: the ``config`` object of ``start_strategy``.

    Field names are snake_case in TOML and camelCase on the wire.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    symbols: tuple[Symbol, ...] = Field(
        min_length=1, max_length=50, description="Instruments the strategy trades."
    )
    data_resolution: str = Field("1m", description="Bar resolution, e.g. 1s, 1m, 1h, 1d.")
    real_trading: bool = Field(False, description="Route to a live broker (not available yet).")
    max_position_value: float = Field(
        10_000.0, gt=0, le=1e9, description="Largest notional position per symbol."
    )
    max_orders_per_minute: int = Field(
        5, ge=1, le=10_000, description="Orders per sliding minute per strategy."
    )
    stop_loss_percentage: float = Field(
        0.02, ge=0, lt=1, description="Loss fraction of entry that exits a position; 0 disables."
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _upper_case_symbols(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(s.upper() if isinstance(s, str) else s for s in value)
        return value

    @field_validator("symbols")
    @classmethod
    def _distinct_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("symbols must not repeat")
        return value

    @field_validator("data_resolution")
    @classmethod
    def _known_resolution(cls, value: str) -> str:
        if value not in RESOLUTION_SECONDS:
            raise ValueError(
                f"unknown resolution {value!r}; use one of {', '.join(RESOLUTION_SECONDS)}"
            )
        return value


class CatalogEntry(FrozenModel):
    """A strategy the daemon can run: what it is and how it starts by default."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Stable id.")
    name: str = Field(min_length=1, max_length=100, description="Name shown to people.")
    kind: str = Field(
        min_length=1,
        description="A built-in strategy (sma_crossover, rsi_reversion, bollinger_breakout) "
        "or a dotted import path to a Strategy subclass.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's parameters.")
    defaults: StrategyRunConfig = Field(
        description="Run config used where start_strategy omits it."
    )


def default_catalog() -> tuple[CatalogEntry, ...]:
    return (
        CatalogEntry(
            id="strategy-123",
            name="Moving Average Crossover",
            kind="sma_crossover",
            params={"fast": 3, "slow": 8},
            defaults=StrategyRunConfig(
                symbols=("AAPL", "MSFT"), data_resolution="1s", max_orders_per_minute=30
            ),
        ),
        CatalogEntry(
            id="rsi-reversion",
            name="RSI Mean Reversion",
            kind="rsi_reversion",
            params={"period": 14, "oversold": 30, "overbought": 70},
            defaults=StrategyRunConfig(symbols=("GOOG",), data_resolution="5s"),
        ),
        CatalogEntry(
            id="bollinger-breakout",
            name="Bollinger Band Breakout",
            kind="bollinger_breakout",
            params={"period": 20, "num_std": 2.0},
            defaults=StrategyRunConfig(symbols=("TSLA", "AMZN"), data_resolution="5s"),
        ),
    )


class DaemonConfig(BaseSettings):
    """Everything the daemon needs; every field has an embedded default."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="ORCHESTRATOR_",
        env_nested_delimiter="__",
    )

    servers: ServersConfig = Field(ServersConfig(), description="The three WebSocket servers.")
    connections: ConnectionConfig = Field(ConnectionConfig(), description="Per-connection limits.")
    streams: StreamConfig = Field(StreamConfig(), description="Resumable broadcast streams.")
    security: SecurityConfig = Field(SecurityConfig(), description="Authentication, origins, TLS.")
    logging: LoggingConfig = Field(LoggingConfig(), description="Log level and format.")
    market_data: MarketDataConfig = Field(MarketDataConfig(), description="The market data feed.")
    broker: PaperBrokerConfig = Field(PaperBrokerConfig(), description="The paper broker.")
    runtime: RuntimeConfig = Field(RuntimeConfig(), description="Signals, sizing and stops.")
    risk: RiskConfig = Field(
        RiskConfig(), description="Global risk limits, daily loss and the kill switch."
    )
    journal: JournalConfig = Field(
        JournalConfig(), description="The SQLite journal of strategies, orders and trades."
    )
    nng: NngBusConfig = Field(
        NngBusConfig(), description="The NNG publisher of every event to other processes."
    )
    jobs: JobsConfig = Field(JobsConfig(), description="Backtest jobs: workers, queue, limits.")
    strategies: tuple[CatalogEntry, ...] = Field(
        default_factory=default_catalog, description="The strategy catalog."
    )

    @model_validator(mode="after")
    def _auth_beyond_loopback(self) -> DaemonConfig:
        exposed = [
            f"servers.{name} ({server.host})"
            for name, server in self.servers
            if not _is_loopback(server.host)
        ]
        if exposed and not self.security.has_tokens:
            raise ValueError(
                f"{', '.join(exposed)} binds beyond loopback: set security.tokens or "
                "security.tokens_file so that strangers cannot connect"
            )
        return self

    @model_validator(mode="after")
    def _distinct_nng_addresses(self) -> DaemonConfig:
        feed = self.market_data.feed
        publish = self.nng.publish_address
        if isinstance(feed, NngFeedConfig) and publish is not None and feed.address == publish:
            raise ValueError(
                f"market_data.feed.address and nng.publish_address are both {publish}; "
                "the ingest and publish sockets need their own addresses"
            )
        return self

    @model_validator(mode="after")
    def _distinct_ids(self) -> DaemonConfig:
        ids = [entry.id for entry in self.strategies]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"strategy ids must be unique; repeated: {', '.join(duplicates)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, so operators can override one value.
        return (env_settings, init_settings)


_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _overlap(host: str, other: str) -> bool:
    """Whether binding both addresses on one port conflicts."""
    if host == other or host in _WILDCARDS or other in _WILDCARDS:
        return True
    return {host, other} <= {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None = None) -> DaemonConfig:
    """The embedded defaults, or ``path``'s TOML on top of them, then the environment."""
    data = _read_toml(path) if path is not None else {}
    unknown = unknown_environment_settings(os.environ)
    if unknown:
        raise ConfigError("invalid configuration in the environment", unknown)
    try:
        return DaemonConfig(**data)
    except ValidationError as exc:
        problems = describe_validation_errors(exc)
        where = str(path) if path is not None else "the embedded defaults"
        raise ConfigError(f"invalid configuration in {where}", problems) from exc


ENV_PREFIX = "ORCHESTRATOR_"


def unknown_environment_settings(environ: Mapping[str, str]) -> list[str]:
    """ORCHESTRATOR_* variables whose section is no section of the config.

    pydantic-settings rejects an unknown field inside a section but silently
    skips a variable whose section is misspelt (ORCHESTRATOR_SERVER__...)."""
    sections = sorted(DaemonConfig.model_fields)
    problems = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in sections:
            problems.append(
                f"{name}: no such setting; use {ENV_PREFIX}<SECTION>__<FIELD> with a section "
                f"of {', '.join(sections)}"
            )
    return problems


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def describe_validation_errors(exc: ValidationError) -> list[str]:
    """One line per problem: where it is, what is wrong, and what was given."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = error.get("input")
        shown = "" if error["type"] == "missing" or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"{where}: {error['msg']}{shown}")
    return lines
