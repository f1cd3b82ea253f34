"""The daemon's configuration: the edge's own settings (servers, connections,
streams, security, logging, the NNG publisher) and the core components' configs,
composed into one :class:`DaemonConfig`.

Every field has bounds and a description; unknown keys are errors, so a typo in
the TOML stops the daemon at start instead of silently becoming a default.
Every scalar can be overridden from the environment as
``ORCHESTRATOR_<SECTION>__<FIELD>`` (for example
``ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT=9082``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateways.config_problems import ConfigSource, Problem, describe_config_errors
from gateways.venues.config import CREDENTIAL_ENV_PREFIX, VENUE_NAME, VenueConfig
from orchestrator.backtest.config import JobsConfig
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import default_state_dir
from orchestrator.marketdata.config import (
    CcxtFeedConfig,
    MarketDataConfig,
    NngAddress,
    NngFeedConfig,
    RecordingConfig,
    is_loopback_host,
    refuse_unauthenticated_remote,
)
from orchestrator.model.directories import APPLICATION, systemd_directory, xdg_directory
from orchestrator.model.errors import ConfigError
from orchestrator.model.validation import FrozenModel
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.config import CatalogEntry, RuntimeConfig, default_catalog
from orchestrator.sweep.config import SweepsConfig
from orchestrator.trading.config import PaperBrokerConfig


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
    yield_after_trades: bool = Field(
        True,
        description="After a trade is written to a client on this machine, give the CPU "
        "up once, so that a client the kernel woke on the daemon's core reads it now "
        "rather than after the rest of the tick's work (docs/limits-and-security.md).",
    )
    max_connections: int = Field(
        1000, ge=1, le=100_000, description="Connections per server; the excess gets HTTP 503."
    )
    max_unauthenticated: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Connections per server still to authenticate by message (no valid "
        "Authorization header); the excess gets HTTP 503, so strangers cannot take the "
        "slots of clients with a token. None: a tenth of max_connections (at least 1).",
    )
    max_unauthenticated_per_address: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Connections still to authenticate from one remote address, per server.",
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

    @model_validator(mode="after")
    def _room_for_clients_with_a_token(self) -> ConnectionConfig:
        if self.max_unauthenticated is not None and (
            self.max_unauthenticated >= self.max_connections
        ):
            raise ValueError(
                f"max_unauthenticated ({self.max_unauthenticated}) must be below "
                f"max_connections ({self.max_connections}): leave room for clients with a token"
            )
        return self

    @property
    def unauthenticated_limit(self) -> int:
        if self.max_unauthenticated is not None:
            return self.max_unauthenticated
        return max(1, self.max_connections // 10)


class StreamConfig(FrozenModel):
    """Gap-free streams: what a reconnecting client can resume from."""

    replay_window: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="Broadcast messages per server kept for clients that resume.",
    )


MIN_TOKEN_LENGTH = 24
MIN_TOKEN_DISTINCT_CHARACTERS = 10
TOKEN_HINT = 'generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


def weak_token_problem(token: str) -> str | None:
    """Why a bearer token is too weak to guard a trading daemon, or None.

    Length and variety are what a config can check: at least 24 characters and 10
    different ones (a token from ``secrets.token_urlsafe(32)`` has 43 and about 30).
    """
    if not token.strip():
        return f"a token is empty or blank; {TOKEN_HINT}"
    if len(token) < MIN_TOKEN_LENGTH:
        return f"a token has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}; {TOKEN_HINT}"
    if len(set(token)) < MIN_TOKEN_DISTINCT_CHARACTERS:
        return (
            f"a token uses {len(set(token))} different characters, fewer than "
            f"{MIN_TOKEN_DISTINCT_CHARACTERS}: it is guessable; {TOKEN_HINT}"
        )
    return None


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
    public_metrics: bool = Field(
        False,
        description="Serve /metrics to anyone. false: while authentication is required, "
        "only to loopback clients and to requests with a valid Authorization header.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain: serve wss://.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")

    @model_validator(mode="after")
    def _strong_tokens(self) -> SecurityConfig:
        # On the model, not the field: the error's input is then this table, which
        # no error message shows, rather than the list of tokens.
        for token in self.tokens:
            problem = weak_token_problem(token.get_secret_value())
            if problem is not None:
                raise ValueError(f"in tokens, {problem}")
        return self

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


class NngBusConfig(FrozenModel):
    """The NNG publisher that carries every bus event to other processes (docs/nng.md)."""

    enabled: bool = Field(True, description="Bind the Pub0 socket and publish every event.")
    runtime_dir: Path | None = Field(
        None,
        description="Directory of the default ipc:// sockets (events.ipc, ingest.ipc), created "
        "with mode 0700. None: $RUNTIME_DIRECTORY (set by systemd's RuntimeDirectory=), else "
        "$XDG_RUNTIME_DIR/orchestrator, else <temp dir>/orchestrator-<uid>; a daemon whose "
        "journal.state_dir is not the default one gets a subdirectory of its own there "
        "(<state dir name>-<hash>), so that a second daemon needs no NNG setting.",
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
        refuse_unauthenticated_remote("publish_address", self.publish_address, self.allow_remote)
        return self

    def resolved_runtime_dir(
        self, environ: Mapping[str, str] | None = None, instance: Path | None = None
    ) -> Path:
        """``runtime_dir``, else :func:`default_runtime_dir` for ``instance``."""
        if self.runtime_dir is not None:
            return self.runtime_dir.expanduser()
        return default_runtime_dir(environ, instance)

    def resolved_publish_address(
        self, environ: Mapping[str, str] | None = None, instance: Path | None = None
    ) -> str:
        if self.publish_address is not None:
            return self.publish_address
        return f"ipc://{self.resolved_runtime_dir(environ, instance) / 'events.ipc'}"

    def default_ingest_address(
        self, environ: Mapping[str, str] | None = None, instance: Path | None = None
    ) -> str:
        """Where the nng feed listens when its own ``address`` is None."""
        return f"ipc://{self.resolved_runtime_dir(environ, instance) / 'ingest.ipc'}"


def default_runtime_dir(
    environ: Mapping[str, str] | None = None, instance: Path | None = None
) -> Path:
    """$RUNTIME_DIRECTORY (systemd; the first of several), else
    $XDG_RUNTIME_DIR/orchestrator, else <temp dir>/orchestrator-<uid>.

    ``instance`` (a daemon's own state directory, when it is not the default one)
    adds a subdirectory named after it, so that two daemons of one user do not
    share a socket path. systemd gives every unit its own RuntimeDirectory=, so
    there the directory is taken as it is."""
    env = os.environ if environ is None else environ
    systemd = systemd_directory(env, "RUNTIME_DIRECTORY")
    if systemd is not None:
        return systemd
    base = xdg_directory(env, "XDG_RUNTIME_DIR") or Path(tempfile.gettempdir()) / (
        f"{APPLICATION}-{os.getuid()}"
    )
    return base if instance is None else base / instance_dir_name(instance)


def instance_dir_name(state_dir: Path) -> str:
    """A short, readable and unique name for a state directory: ipc:// paths hold
    at most 103 bytes, so the path itself cannot be used."""
    absolute = os.path.abspath(state_dir.expanduser())
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(absolute).name)[:24] or "root"
    return f"{readable}-{digest}"


class DaemonConfig(BaseSettings):
    """Everything the daemon needs; every field has an embedded default."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="ORCHESTRATOR_",
        env_nested_delimiter="__",
        hide_input_in_errors=True,  # str(error) would print tokens; describe_* choose
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
    sweeps: SweepsConfig = Field(
        default_factory=SweepsConfig,
        description="Parameter sweeps and walk-forward on Dask: embedded or a cluster.",
    )
    recording: RecordingConfig = Field(
        RecordingConfig(), description="Ticks and bars the feed delivers, to Parquet (off)."
    )
    venues: dict[Annotated[str, Field(pattern=VENUE_NAME)], VenueConfig] = Field(
        default_factory=dict,
        description="Exchange accounts strategies may trade on with realTrading "
        "(docs/venues.md); none by default.",
    )
    strategies: tuple[CatalogEntry, ...] = Field(
        default_factory=default_catalog, description="The strategy catalog."
    )

    @model_validator(mode="after")
    def _auth_beyond_loopback(self) -> DaemonConfig:
        exposed = [
            f"servers.{name} ({server.host})"
            for name, server in self.servers
            if not is_loopback_host(server.host)
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

    @model_validator(mode="after")
    def _known_venues(self) -> DaemonConfig:
        for entry in self.strategies:
            venue = entry.defaults.venue
            if venue is not None and venue not in self.venues:
                known = ", ".join(sorted(self.venues)) or "none are configured"
                raise ValueError(
                    f"strategy {entry.id} trades on venue {venue!r}, which is not in "
                    f"[venues] ({known})"
                )
        feed = self.market_data.feed
        if isinstance(feed, CcxtFeedConfig) and feed.venue not in self.venues:
            known = ", ".join(sorted(self.venues)) or "none are configured"
            raise ValueError(
                f"market_data.feed reads venue {feed.venue!r}, which is not in [venues] ({known})"
            )
        return self

    def venue_symbols(self, name: str) -> set[str]:
        """The symbols the catalog's strategies trade on venue ``name`` by default, and
        those a ccxt feed reads there."""
        feed = self.market_data.feed
        read = (
            set(feed.symbols) if isinstance(feed, CcxtFeedConfig) and feed.venue == name else set()
        )
        return read | {
            symbol
            for entry in self.strategies
            if entry.defaults.venue == name
            for symbol in entry.defaults.symbols
        }

    def instance_state_dir(self, environ: Mapping[str, str] | None = None) -> Path | None:
        """The journal's state directory when it is not the default one: what tells
        a second daemon of the same user apart (its NNG sockets follow it)."""
        state_dir = self.journal.state_dir
        if state_dir is None:
            return None
        state_dir = state_dir.expanduser()
        return None if state_dir == default_state_dir(environ) else state_dir

    def recording_directory(self, environ: Mapping[str, str] | None = None) -> Path:
        """Where the recording goes: its own directory, else recording/ in the state dir."""
        if self.recording.directory is not None:
            return self.recording.directory.expanduser()
        state_dir = self.journal.state_dir
        base = state_dir.expanduser() if state_dir is not None else default_state_dir(environ)
        return base / "recording"

    def sweeps_directory(self, environ: Mapping[str, str] | None = None) -> Path:
        """Where sweeps keep their specs, Optuna studies and results: sweeps/ in the
        state directory."""
        state_dir = self.journal.state_dir
        base = state_dir.expanduser() if state_dir is not None else default_state_dir(environ)
        return base / "sweeps"

    def nng_publish_address(self, environ: Mapping[str, str] | None = None) -> str:
        """Where the NNG publisher listens."""
        return self.nng.resolved_publish_address(environ, self.instance_state_dir(environ))

    def nng_ingest_address(self, environ: Mapping[str, str] | None = None) -> str:
        """Where the nng feed listens: its own ``address``, else the default ipc:// path."""
        feed = self.market_data.feed
        if isinstance(feed, NngFeedConfig) and feed.address is not None:
            return feed.address
        return self.nng.default_ingest_address(environ, self.instance_state_dir(environ))

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


def load_config(path: Path | None = None) -> DaemonConfig:
    """The embedded defaults, or ``path``'s TOML on top of them, then the environment."""
    return config_from_source(read_config_source(path), path)


def read_config_source(path: Path | None) -> ConfigSource:
    """The file's TOML and text, or nothing (the embedded defaults) without a file."""
    if path is None:
        return ConfigSource({})
    text = _read_text(path)
    try:
        return ConfigSource(tomllib.loads(text), text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def config_from_source(source: ConfigSource, path: Path | None) -> DaemonConfig:
    """Validate ``source`` with the environment on top; every problem of both in one error."""
    unknown = unknown_environment_settings(os.environ)
    try:
        config = DaemonConfig(**source.data)
    except ValidationError as exc:
        problems = describe_config_errors(exc, DaemonConfig, source, os.environ)
        where = _blamed(problems, path, env_problems=bool(unknown))
        raise ConfigError(
            f"invalid configuration in {where}", [*unknown, *map(str, problems)]
        ) from exc
    if unknown:
        raise ConfigError("invalid configuration in the environment", unknown)
    return config


def _blamed(problems: Sequence[Problem], path: Path | None, *, env_problems: bool) -> str:
    """Where the problems are: the file (or the embedded defaults), the environment, or both."""
    places = []
    if any(problem.env_var is None for problem in problems):
        places.append(str(path) if path is not None else "the embedded defaults")
    if env_problems or any(problem.env_var is not None for problem in problems):
        places.append("the environment")
    return " and ".join(places)


ENV_PREFIX = "ORCHESTRATOR_"


def unknown_environment_settings(environ: Mapping[str, str]) -> list[str]:
    """ORCHESTRATOR_* variables whose section is no section of the config.

    pydantic-settings rejects an unknown field inside a section but silently
    skips a variable whose section is misspelt (ORCHESTRATOR_SERVER__...)."""
    sections = sorted(DaemonConfig.model_fields)
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(CREDENTIAL_ENV_PREFIX):
            continue  # a venue's credential is no setting (gateways/venues/credentials.py)
        section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in sections:
            problems.append(
                f"{name}: no such setting; use {ENV_PREFIX}<SECTION>__<FIELD> with a section "
                f"of {', '.join(sections)}"
            )
    return problems


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: not UTF-8 ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
