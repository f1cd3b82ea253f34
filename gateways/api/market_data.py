"""The market data gateway's own commands (3001): subscribe and unsubscribe.

A subscription is to quotes of a symbol, and optionally to its bars at one
resolution. Clients join channels ``quote:SYMBOL`` and ``bar:SYMBOL:RES``; the
server encodes each quote or bar once and writes it to that channel's members
(the messages are :mod:`gateways.api.outbound`'s, the channels are here).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from gateways.api import outbound
from gateways.api.history import BarsCommandType, GetBars
from gateways.api.inbound import (
    STRATEGY_COMMANDS,
    Command,
    CommandParser,
    ProtocolError,
    StrategyCommand,
)
from gateways.ws.server import CommandHandler, Replies, Session, WebSocketServer
from orchestrator.marketdata.hub import MarketData
from orchestrator.model.clock import Clock
from orchestrator.model.market import Symbol, unknown_resolution


class MarketCommandType(StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


class UnknownSymbol(ProtocolError):
    code = "unknown_symbol"


class UnknownResolution(ProtocolError):
    code = "unknown_resolution"


class TooManySubscriptions(ProtocolError):
    code = "too_many_subscriptions"


Symbols = Annotated[list[Symbol], Field(min_length=1, max_length=100)]


class Subscribe(Command):
    type: Literal[MarketCommandType.SUBSCRIBE]
    symbols: Symbols
    resolution: str | None = None


class Unsubscribe(Command):
    type: Literal[MarketCommandType.UNSUBSCRIBE]
    symbols: Symbols
    resolution: str | None = None


MarketCommand = Annotated[
    StrategyCommand | Subscribe | Unsubscribe | GetBars, Field(discriminator="type")
]


def market_command_parser() -> CommandParser:
    adapter: TypeAdapter[Any] = TypeAdapter(MarketCommand)
    accepted = STRATEGY_COMMANDS | frozenset(MarketCommandType) | frozenset(BarsCommandType)
    return CommandParser(adapter, accepted)


def quote_channel(symbol: str) -> str:
    return f"quote:{symbol}"


def bar_channel(symbol: str, resolution: str) -> str:
    return f"bar:{symbol}:{resolution}"


class MarketSubscriptions:
    """Handles subscribe/unsubscribe for one market data server."""

    def __init__(self, market: MarketData, clock: Clock, max_subscriptions: int) -> None:
        self._market = market
        self._clock = clock
        self._max = max_subscriptions
        self.server: WebSocketServer | None = None

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            MarketCommandType.SUBSCRIBE: self.subscribe,
            MarketCommandType.UNSUBSCRIBE: self.unsubscribe,
            BarsCommandType.GET_BARS: self.get_bars,
        }

    async def subscribe(self, command: Subscribe, session: Session) -> Replies:
        symbols = self._check(command.symbols, command.resolution)
        wanted = self._channels(symbols, command.resolution) - session.channels
        if len(session.channels) - 1 + len(wanted) > self._max:
            raise TooManySubscriptions(
                f"at most {self._max} subscriptions per connection; unsubscribe from some first"
            )
        server = self._server()
        for channel in sorted(wanted):
            server.join(session, channel)
            if channel.startswith("bar:"):
                self._market.subscribe(*channel.split(":")[1:3])
        now = self._clock.now()
        data = {"symbols": symbols, "resolution": command.resolution}
        replies = [outbound.encode("subscribed", data, now, command.request_id)]
        replies.extend(self._snapshot(symbols, now))
        return replies

    async def unsubscribe(self, command: Unsubscribe, session: Session) -> Replies:
        symbols = self._check(command.symbols, command.resolution)
        if command.resolution is not None:
            leaving = {bar_channel(s, command.resolution) for s in symbols}
        else:
            prefixes = tuple(f"bar:{s}:" for s in symbols)
            leaving = {quote_channel(s) for s in symbols}
            leaving |= {c for c in session.channels if c.startswith(prefixes)}
        self._leave(session, leaving & session.channels)
        data = {"symbols": symbols, "resolution": command.resolution}
        return [outbound.encode("unsubscribed", data, self._clock.now(), command.request_id)]

    async def get_bars(self, command: GetBars, _: Session) -> Replies:
        """Closed bars from the recent ticks (history on load: gateways/api/history.py)."""
        symbol = self._check([command.symbol], command.resolution)[0]
        bars = self._market.warmup_bars(symbol, command.resolution, command.limit)
        data = outbound.bars_data(symbol, command.resolution, bars)
        return [outbound.encode("bars", data, self._clock.now(), command.request_id)]

    def release(self, session: Session) -> None:
        """A connection closed: give back its bar subscriptions."""
        self._leave(session, set(session.channels))

    def _leave(self, session: Session, channels: Iterable[str]) -> None:
        server = self._server()
        for channel in channels:
            server.leave(session, channel)
            if channel.startswith("bar:"):
                self._market.unsubscribe(*channel.split(":")[1:3])

    def quote_messages(self, session: Session) -> list[outbound.Message]:
        """The last quote of each symbol the session follows (for its snapshot)."""
        symbols = [c.removeprefix("quote:") for c in session.channels if c.startswith("quote:")]
        ticks = (self._market.last_tick(symbol) for symbol in sorted(symbols))
        return [("quote", outbound.quote_data(tick)) for tick in ticks if tick is not None]

    def _snapshot(self, symbols: list[str], now: float) -> Replies:
        frames = []
        for symbol in symbols:
            tick = self._market.last_tick(symbol)
            if tick is not None:
                frames.append(outbound.encode("quote", outbound.quote_data(tick), now))
        return frames

    def _check(self, symbols: list[str], resolution: str | None) -> list[str]:
        upper = list(dict.fromkeys(s.upper() for s in symbols))
        unknown = [s for s in upper if s not in self._market.symbols]
        if unknown:
            raise UnknownSymbol(
                f"no market data for {', '.join(unknown)}; available: "
                f"{', '.join(sorted(self._market.symbols))}"
            )
        problem = None if resolution is None else unknown_resolution(resolution)
        if problem is not None:
            raise UnknownResolution(problem)
        return upper

    def _channels(self, symbols: list[str], resolution: str | None) -> set[str]:
        channels = {quote_channel(s) for s in symbols}
        if resolution is not None:
            channels |= {bar_channel(s, resolution) for s in symbols}
        return channels

    def _server(self) -> WebSocketServer:
        if self.server is None:
            raise RuntimeError("market subscriptions are not attached to a server")
        return self.server
