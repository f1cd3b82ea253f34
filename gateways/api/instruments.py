"""``get_instruments``, which every server answers: each symbol of the feed with its
price grid, so that a client shows prices as the instrument is quoted (two
decimals for a stock, five for EURUSD) rather than to as many digits as a float
has."""

from __future__ import annotations

from gateways.api import outbound
from gateways.api.inbound import CommandType, GetInstruments
from gateways.ws.server import CommandHandler, Replies, Session
from orchestrator.marketdata.config import MarketDataConfig
from orchestrator.model.clock import Clock
from orchestrator.model.market import price_decimals


def instruments_data(config: MarketDataConfig) -> list[dict[str, object]]:
    """The ``data`` of ``instruments``: one entry per symbol of the feed, by symbol."""
    data: list[dict[str, object]] = []
    for symbol in sorted(config.feed.symbols):
        increment = config.price_increment(symbol)
        data.append(
            {
                "symbol": symbol,
                "priceIncrement": increment,
                "priceDecimals": price_decimals(increment),
            }
        )
    return data


class InstrumentQueries:
    def __init__(self, config: MarketDataConfig, clock: Clock) -> None:
        self._data = instruments_data(config)
        self._clock = clock

    def handlers(self) -> dict[str, CommandHandler]:
        return {CommandType.GET_INSTRUMENTS: self.get_instruments}

    async def get_instruments(self, command: GetInstruments, _: Session) -> Replies:
        return [outbound.encode("instruments", self._data, self._clock.now(), command.request_id)]
