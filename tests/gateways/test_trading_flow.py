"""End to end through a real server: start_strategy produces signals, trades and positions."""

from __future__ import annotations

from tests.support import TestDaemon, running_daemon


async def drive_uptrend(daemon: TestDaemon, bars: int, start: float = 100.0) -> None:
    """One tick per symbol per second, rising, so the fast SMA leads the slow one."""
    for step in range(bars):
        daemon.advance(1.0)
        daemon.tick("AAPL", start + step)
        daemon.tick("MSFT", 2 * start + step)


async def test_start_strategy_produces_signal_trade_and_position() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request({"type": "start_strategy", "id": "strategy-123"})
        assert reply["type"] == "strategy_started"
        await drive_uptrend(daemon, 12)
        signal = await client.recv_type("strategy_signal")
        assert signal["data"]["action"] == "BUY"
        trade = await client.recv_type("strategy_trade")
        assert trade["data"]["status"] == "FILLED"
        status = await client.request({"type": "get_active_strategies"})
        [entry] = status["data"]
        assert entry["positions"]
