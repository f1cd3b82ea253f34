"""After a restart the synthetic feed continues from the last journaled price: no
jump back to the config's prices to fire stop-losses and signals on."""

from __future__ import annotations

from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import running_daemon, test_config


async def test_the_synthetic_feed_continues_where_the_journal_left_it() -> None:
    config = test_config()  # its own journal in a temporary state directory
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": "strategy-123"})
        await drive_uptrend(daemon, 12)
        trade = (await client.recv_type("strategy_trade"))["data"]
    symbol, price = trade["symbol"], trade["entryPrice"]
    configured = config.market_data.feed.symbols[symbol]  # type: ignore[index]
    assert abs(price - configured) > 1.0  # the uptrend took it well away from the config's

    async with running_daemon(config) as daemon:
        feed = daemon.daemon.core.market.feed
        now = daemon.clock.now()
        first = next(t for t in feed.ticks(now) if t.symbol == symbol)  # type: ignore[attr-defined]
    assert first.price == price
