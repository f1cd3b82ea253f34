"""Strings from the wire cannot steer the CLI's terminal, and the daemon refuses
control characters in free text."""

from __future__ import annotations

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateways.client.commands import EXIT_OK, main_async
from gateways.client.text import printable, printable_message
from tests.support import running_daemon, test_config

HOSTILE = "maintenance\x1b]0;pwned\x07\x1b[2J\rOK\u202e"


def test_control_characters_are_written_as_escapes() -> None:
    assert printable(HOSTILE) == "maintenance\\x1b]0;pwned\\x07\\x1b[2J\\rOK\\u202e"
    assert printable("AAPL 190.12, fine") == "AAPL 190.12, fine"
    assert printable_message({"data": [{"reason": "\x1b[31m"}]}) == {
        "data": [{"reason": "\\x1b[31m"}]
    }


async def test_the_cli_prints_a_hostile_halt_reason_harmlessly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def risk_server(ws: ServerConnection) -> None:
        async for frame in ws:
            request = orjson.loads(frame)
            status = {
                "executionStatus": "STOPPED",
                "killSwitch": {"engaged": True, "reason": HOSTILE, "source": "COMMAND"},
                "limits": {},
                "usage": {},
                "strategies": [{"strategyId": "s\x1b[2J1", "status": "ACTIVE", "positions": []}],
            }
            reply = {"type": "risk_status", "data": status, "requestId": request["requestId"]}
            await ws.send(orjson.dumps(reply).decode())

    async with serve(risk_server, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        code = await main_async(["risk", "--url", url])
    printed = capsys.readouterr().out
    assert code == EXIT_OK
    assert "\x1b" not in printed and "\x07" not in printed and "\r" not in printed
    assert "maintenance\\x1b]0;pwned\\x07" in printed and "s\\x1b[2J1" in printed


async def test_the_daemon_refuses_control_characters_in_a_halt_reason() -> None:
    async with running_daemon(test_config()) as daemon, daemon.client("risk") as client:
        reply = await client.request({"type": "halt_trading", "reason": HOSTILE})
        status = await client.request({"type": "get_risk_status"})
    assert reply["type"] == "error"
    assert reply["data"]["code"] == "invalid_message"
    assert "control character '\\x1b' at position 11" in reply["data"]["message"]
    assert status["data"]["killSwitch"]["engaged"] is False


@pytest.mark.parametrize(
    "command",
    [
        {"type": "start_strategy", "id": "strategy-123\x1b[2J"},
        {"type": "cancel_backtest", "jobId": "job\r\x07"},
        {"type": "run_backtest", "strategyId": "s\x1b", "source": {"kind": "synthetic"}},
    ],
)
async def test_ids_with_control_characters_are_refused(command: dict[str, object]) -> None:
    async with running_daemon(test_config()) as daemon, daemon.client() as client:
        reply = await client.request(command)
    assert reply["type"] == "error"
    assert reply["data"]["code"] == "invalid_message"
    assert "control character" in reply["data"]["message"]
