"""``journal.enabled = false``: the daemon trades and tells its clients, writes nothing,
and a restart starts from nothing."""

from __future__ import annotations

from pathlib import Path

import structlog

from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import running_daemon, test_config


async def test_with_the_journal_off_the_daemon_trades_and_writes_nothing(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    config = test_config(journal={"enabled": False, "state_dir": str(state_dir)})
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(config) as daemon, daemon.client() as client:
            assert daemon.daemon.journal is None
            reply = await client.request({"type": "start_strategy", "id": "strategy-123"})
            assert reply["type"] == "strategy_started"
            await drive_uptrend(daemon, 12)
            trade = await client.recv_type("strategy_trade")
            assert trade["data"]["status"] == "FILLED"
    assert "journal_disabled" in [e["event"] for e in logs if e["log_level"] == "warning"]
    assert not state_dir.exists()

    async with running_daemon(config) as daemon, daemon.client() as client:
        status = await client.request({"type": "get_active_strategies"})
        assert status["data"] == []  # nothing restored: the strategy was never journaled
        assert daemon.daemon.core.execution.book.strategy_ids() == []
    assert not state_dir.exists()
