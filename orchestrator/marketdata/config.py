"""Config of the market data feeds (synthetic, CSV replay, NNG ingest, a ccxt venue),
chosen by ``kind``, and of the recording of what they deliver."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from orchestrator.model.market import DistinctSymbols, Symbol
from orchestrator.model.validation import FrozenModel

MAX_HISTORY_TICKS = 5_000_000
"""Upper bound on the ticks one ``history()`` call may hold in memory."""


InitialPrice = Annotated[float, Field(gt=0.0, le=1e9, allow_inf_nan=False)]
PriceIncrement = Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)]


def _default_symbols() -> dict[str, float]:
    return {"AAPL": 190.0, "MSFT": 420.0, "GOOG": 170.0, "AMZN": 185.0, "TSLA": 250.0}


class SyntheticFeedConfig(BaseModel):
    """A seeded random walk per symbol: deterministic, offline, the default feed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["synthetic"] = Field(default="synthetic", description="Selects this feed.")
    symbols: dict[Symbol, InitialPrice] = Field(
        default_factory=_default_symbols,
        min_length=1,
        max_length=1000,
        description="Symbol to its price at the start of the path (history_seconds "
        "before the feed is built).",
    )
    drift: float = Field(
        default=0.05, ge=-10.0, le=10.0, description="Annualised drift (mu), 0.05 = 5 %/year."
    )
    volatility: float = Field(
        default=0.6,
        ge=0.0,
        le=10.0,
        description="Annualised volatility (sigma); high by default so 1-second bars move.",
    )
    ticks_per_second: float = Field(
        default=5.0, gt=0.0, le=1000.0, description="Ticks per second for each symbol."
    )
    seed: int = Field(default=7, ge=0, le=2**63 - 1, description="Seed of every symbol's path.")
    history_seconds: float = Field(
        default=300.0,
        ge=0.0,
        le=86_400.0,
        description="Seconds of backfill that history() returns for warming strategies up.",
    )

    @model_validator(mode="after")
    def _history_fits_in_memory(self) -> SyntheticFeedConfig:
        held = self.history_seconds * self.ticks_per_second * len(self.symbols)
        if held > MAX_HISTORY_TICKS:
            raise ValueError(
                f"history would hold {held:.0f} ticks, more than {MAX_HISTORY_TICKS}; "
                "lower history_seconds or ticks_per_second, or use fewer symbols"
            )
        return self


ReplaySpeed = Literal["realtime", "max"] | Annotated[float, Field(ge=1.0, le=1e6)]


class CsvReplayFeedConfig(BaseModel):
    """Replays OHLCV history files (one per symbol: CSV or Parquet) as ticks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["csv"] = Field(default="csv", description="Selects this feed.")
    files: dict[Symbol, Path] = Field(
        min_length=1,
        max_length=1000,
        description="Symbol to its history file: CSV (header timestamp,open,high,low,close,"
        "volume; timestamps ISO-8601, naive means UTC, or epoch seconds), Parquet (.parquet, "
        "the same columns), a Parquet dataset or a recording directory.",
    )
    speed: ReplaySpeed = Field(
        default="realtime",
        description='"realtime", "max" (as fast as consumers keep up) or a multiplier of '
        "real time >= 1 (slower than real time would put data behind the wall clock that "
        "closes bars).",
    )
    shift_to_now: bool = Field(
        default=True,
        description="Move the whole replay by a whole number of bars so it starts at the next "
        "bar boundary after now, as live data would; false keeps the file's own timestamps.",
    )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.files)


MAX_IPC_PATH_BYTES = 103
"""Longest ipc:// path: a Unix socket path holds 104 bytes (macOS) or 108 (Linux) with its NUL."""


def _check_nng_address(address: str) -> str:
    scheme, separator, rest = address.partition("://")
    if scheme == "ipc" and separator:
        if not rest.startswith("/"):
            raise ValueError("an ipc:// address needs an absolute path: ipc:///run/x/events.ipc")
        if len(rest.encode()) > MAX_IPC_PATH_BYTES:
            raise ValueError(f"the ipc:// path is longer than {MAX_IPC_PATH_BYTES} bytes")
        return address
    if scheme == "tcp" and separator:
        host, colon, port = rest.rpartition(":")
        if colon and host and port.isdigit() and 1 <= int(port) <= 65535:
            return address
        raise ValueError("a tcp:// address is tcp://host:port with a port from 1 to 65535")
    raise ValueError("an NNG address is ipc:///absolute/path or tcp://host:port")


NngAddress = Annotated[str, Field(min_length=7, max_length=300), AfterValidator(_check_nng_address)]
"""Where an NNG socket listens: ``ipc:///absolute/path`` or ``tcp://host:port``."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def nng_address_is_local(address: str) -> bool:
    """Whether only this machine can reach ``address`` (ipc://, or tcp:// on loopback)."""
    if address.startswith("ipc://"):
        return True
    return is_loopback_host(address.removeprefix("tcp://").rpartition(":")[0].strip("[]"))


def refuse_unauthenticated_remote(name: str, address: str | None, allow_remote: bool) -> None:
    """Raise unless ``address`` is local or the config says remote is meant: NNG has no
    authentication, so whoever reaches the socket reads or writes everything."""
    if address is not None and not allow_remote and not nng_address_is_local(address):
        raise ValueError(
            f"{name} {address} is reachable beyond this machine and NNG has no "
            "authentication: bind ipc:// or loopback, or set allow_remote = true"
        )


def _default_nng_symbols() -> tuple[str, ...]:
    return tuple(_default_symbols())


class NngFeedConfig(BaseModel):
    """Ticks and bars pushed by other processes to an NNG Pull0 socket (see docs/nng.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["nng"] = Field(default="nng", description="Selects this feed.")
    address: NngAddress | None = Field(
        default=None,
        description="Where the daemon listens for market data (Pull0). None: "
        "ipc://<nng.runtime_dir>/ingest.ipc (that directory follows journal.state_dir, "
        "see nng.runtime_dir).",
    )
    allow_remote: bool = Field(
        default=False,
        description="Allow a tcp:// address beyond loopback. NNG has no authentication: "
        "whoever reaches the address can push prices that strategies trade on.",
    )
    symbols: DistinctSymbols = Field(
        default_factory=_default_nng_symbols,
        min_length=1,
        max_length=1000,
        description="The symbols this feed carries; a message for any other is dropped.",
    )
    max_message_bytes: int = Field(
        default=1_048_576,
        ge=256,
        le=64 * 2**20,
        description="Largest message taken; a larger one is dropped and counted. One over "
        "16 times this is refused by NNG itself, which closes the sender's connection.",
    )
    max_ticks_per_message: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Most ticks in one batch message; a larger batch is dropped whole.",
    )
    max_future_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=3600.0,
        description="A tick stamped further than this ahead of the daemon's clock is dropped: "
        "it would close bars early and make every later tick late.",
    )

    @model_validator(mode="after")
    def _local_unless_allowed(self) -> NngFeedConfig:
        refuse_unauthenticated_remote("address", self.address, self.allow_remote)
        return self


class CcxtFeedConfig(BaseModel):
    """Ticks polled from a configured venue through ccxt's async API (docs/venues.md):
    its public trades (with their sizes) or its ticker, with backoff and gap reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ccxt"] = Field(default="ccxt", description="Selects this feed.")
    venue: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="The [venues.NAME] to read: its exchange, sandbox, URLs and rate limit "
        "(the feed shares the venue's ccxt exchange, so one throttle spaces both).",
    )
    symbols: DistinctSymbols = Field(
        min_length=1,
        max_length=100,
        description="The venue's markets as ccxt writes them (BTC/USDT), the symbols "
        "strategies trade there; one the venue does not list is reported on 3001.",
    )
    source: Literal["trades", "ticker"] = Field(
        "trades",
        description="trades: each public trade since the last one seen (fetch_trades from "
        "its id), a tick with its size, none lost across a gap; ticker: the last price "
        "(fetch_ticker) whenever it changes, size 0.",
    )
    interval_seconds: float = Field(
        1.0, gt=0.0, le=300.0, description="Seconds between two polls of every symbol."
    )
    gap_intervals: int = Field(
        5,
        ge=2,
        le=10_000,
        description="A gap is reported when the venue has not answered for this many "
        "intervals (it is down, failing or too slow); recovery when it answers again.",
    )
    max_backoff_seconds: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="Longest wait between two polls after errors: the wait doubles from "
        "interval_seconds with each failure in a row, up to this.",
    )
    stream: Literal["auto", "off"] = Field(
        "auto",
        description="auto: with source = trades, stream the public trades over the "
        "venue's WebSocket (ccxt.pro watch_trades_for_symbols / watch_trades) where its "
        "exchange has it, polling REST while the stream is down and reading the trades it "
        "missed once when it is back; where it has none, poll. off: always poll.",
    )
    trades_per_poll: int = Field(
        500,
        ge=1,
        le=1000,
        description="Most trades one request asks for (Binance's limit, at most 1000); a "
        "full page is followed at once by the next.",
    )


FeedConfig: TypeAlias = Annotated[
    SyntheticFeedConfig | CsvReplayFeedConfig | NngFeedConfig | CcxtFeedConfig,
    Field(discriminator="kind"),
]
"""Any feed's config; the ``kind`` field says which."""


class MarketDataConfig(FrozenModel):
    feed: FeedConfig = Field(
        default_factory=SyntheticFeedConfig, description="Where ticks come from (kind = ...)."
    )
    default_price_increment: PriceIncrement = Field(
        0.01,
        description="The price grid (tick size) of a symbol price_increments does not name: "
        "prices are shown to its decimals (0.01: two).",
    )
    price_increments: dict[Symbol, PriceIncrement] = Field(
        default_factory=dict,
        description="The price grid of each symbol that has its own, e.g. "
        "{EURUSD = 0.00001, ES = 0.25}; every key must be a symbol of the feed.",
    )
    warmup_ticks_per_symbol: int = Field(
        20_000,
        ge=0,
        le=1_000_000,
        description="Recent ticks kept per symbol to warm up a strategy that starts.",
    )

    @model_validator(mode="after")
    def _increments_of_feed_symbols(self) -> MarketDataConfig:
        unknown = sorted(set(self.price_increments) - set(self.feed.symbols))
        if unknown:
            raise ValueError(
                f"price_increments names {', '.join(unknown)}, which the feed does not "
                f"provide (it provides {', '.join(sorted(self.feed.symbols))})"
            )
        return self

    def price_increment(self, symbol: str) -> float:
        """The price grid of ``symbol``."""
        return self.price_increments.get(symbol, self.default_price_increment)


class RecordingConfig(FrozenModel):
    """``[recording]``: the ticks and bars the daemon's feed delivers, to Parquet files
    (orchestrator.marketdata.recording; docs/recording.md)."""

    enabled: bool = Field(False, description="Record what the feed delivers; off by default.")
    directory: Path | None = Field(
        None,
        description="Where the recording goes. None: recording/ in the journal's state_dir "
        "(its default when that is unset too).",
    )
    ticks: bool = Field(True, description="Record every tick (NNG input included).")
    bars: bool = Field(True, description="Record every bar the daemon closes.")
    flush_rows: int = Field(
        50_000,
        ge=1,
        le=1_000_000,
        description="Rows of one kind buffered before they are written as one file.",
    )
    flush_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest a row waits in the buffer; a crash loses at most this much.",
    )
    max_pending_files: int = Field(
        8,
        ge=1,
        le=1000,
        description="Files handed to the writer thread and not yet written; beyond this a "
        "full buffer is dropped (counted and logged) rather than the tick path blocked.",
    )
