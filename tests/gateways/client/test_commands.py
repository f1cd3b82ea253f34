"""``orchestrator status|start|stop|pause|watch|risk|halt|resume`` against a real daemon.

The CLI runs in-process through its async entry (``main_async``), in the loop of
the daemon that ``running_daemon`` starts; ``main()`` itself (the sync wrapper
that calls ``asyncio.run``) is run where no loop is running.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from websockets.asyncio.server import ServerConnection, serve

from gateways.cli import main as cli
from gateways.client.commands import (
    EXIT_DAEMON_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    TOKEN_ENV,
    Output,
    _wants_color,
    main_async,
    risk_url_for,
)
from orchestrator.model.events import CommandOrigin, Event, OrderSubmitted
from orchestrator.model.orders import OrderPurpose
from tests.support import TestDaemon, running_daemon, test_config

NO_SLIPPAGE = {"slippage_bps": 0.0}
WAIT = 5.0


def catalog() -> list[dict[str, Any]]:
    """Two strategies that buy 10 units on their first bar and hold."""
    return [
        {
            "id": strategy_id,
            "name": f"Hold {symbol}",
            "kind": "tests.scripted_strategies:BuyThenHold",
            "defaults": {"symbols": [symbol], "data_resolution": "1s"},
        }
        for strategy_id, symbol in (("holder", "AAPL"), ("other", "MSFT"))
    ]


def cli_config(**overrides: Any) -> Any:
    return test_config(strategies=catalog(), broker=NO_SLIPPAGE, **overrides)


class Cli:
    """Runs the CLI against one daemon and returns (exit code, stdout, stderr)."""

    def __init__(self, test: TestDaemon, capsys: pytest.CaptureFixture[str]) -> None:
        self.test = test
        self.capsys = capsys
        self.url = test.url()
        self.risk_url = test.url("risk")

    def urls(self, command: str) -> list[str]:
        if command in ("risk", "halt", "resume"):
            return ["--url", self.risk_url]
        if command in ("status", "watch"):
            return ["--url", self.url, "--risk-url", self.risk_url]
        return ["--url", self.url]

    async def __call__(self, command: str, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await main_async([command, *self.urls(command), *argv])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    async def json(self, command: str, *argv: str) -> Any:
        code, out, err = await self(command, *argv, "--json")
        assert code == EXIT_OK, err
        return json.loads(out)


@asynccontextmanager
async def cli_daemon(
    capsys: pytest.CaptureFixture[str], **overrides: Any
) -> AsyncIterator[tuple[TestDaemon, Cli]]:
    # The daemon's own log lines would land in the captured stdout: keep them apart.
    with structlog.testing.capture_logs():
        async with running_daemon(cli_config(**overrides)) as test:
            yield test, Cli(test, capsys)


def buy_on_first_bar(test: TestDaemon, symbol: str, price: float) -> None:
    """Let the holders see their first bar and buy 10 units, filled at ``price``."""
    test.tick(symbol, price)
    test.advance(1.0)
    test.tick(symbol, price)


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - the state moves in the CLI's own task
            await asyncio.sleep(0.005)


def dead_url() -> str:
    """A URL nothing listens on: a port 0 socket's port, once closed."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


# ---------------------------------------------------------------- start, stop, pause, status


async def test_start_with_options_status_pause_and_stop(capsys: pytest.CaptureFixture[str]) -> None:
    async with cli_daemon(capsys) as (test, run):
        code, out, err = await run(
            "start",
            "holder",
            *("--symbols", "aapl,MSFT", "--resolution", "1s", "--max-position-value", "5000"),
            *("--max-orders-per-minute", "7", "--stop-loss", "2%"),
        )
        assert (code, err) == (EXIT_OK, "")
        assert out == "started holder (Hold AAPL) on AAPL, MSFT\n"
        buy_on_first_bar(test, "AAPL", 100.0)
        test.tick("AAPL", 103.0)

        # The start config reached the risk guardian.
        risk = await run.json("risk")
        [holder] = risk["data"]["strategies"]
        assert holder["limits"] == {
            "maxPositionValue": 5000.0,
            "maxOrdersPerMinute": 7,
            "stopLossPercentage": 0.02,
        }

        code, out, _ = await run("status")
        assert code == EXIT_OK
        lines = out.splitlines()
        assert lines[0] == "execution  RUNNING"
        # 100,000 of starting cash less the 1,000 paid for 10 AAPL now worth 1,030.
        assert lines[1] == (
            "account    equity 100,030.00, cash 99,000.00, exposure 1,030.00; "
            "realized P&L today 0.00, since start 0.00; unrealized 30.00"
        )
        header, rule, row, total = lines[3:7]
        assert header.split() == [
            *("id", "name", "status", "symbols", "positions"),
            *("realized", "today", "realized", "since", "start", "unrealized"),
        ]
        assert set(rule) == {"-", " "}
        assert row.split() == [
            *("holder", "Hold", "AAPL", "ACTIVE", "AAPL,MSFT"),
            *("AAPL", "10", "@", "100.00", "0.00", "0.00", "30.00"),
        ]
        # Aligned: every cell starts under its header.
        assert row.index("ACTIVE") == header.index("status")
        assert row.rstrip().endswith("30.00") and len(row) == len(header)
        assert total == (
            "total P&L: realized today 0.00, realized since start 0.00, unrealized 30.00"
        )
        assert "\x1b[" not in out  # no colour when stdout is not a terminal

        status = await run.json("status")
        assert status["executionStatus"] == "RUNNING"
        assert status["killSwitch"]["engaged"] is False
        assert status["pnlSource"] == "risk_guardian"
        [entry] = status["strategies"]
        assert entry["id"] == "holder" and entry["status"] == "ACTIVE"
        assert entry["positions"] == [
            {"symbol": "AAPL", "quantity": 10.0, "entryPrice": 100.0, "currentValue": 1030.0}
        ]
        assert (entry["realizedPnl"], entry["unrealizedPnl"]) == (0.0, 30.0)
        assert (entry["realizedPnlToday"], entry["realizedPnlSinceStart"]) == (0.0, 0.0)
        assert status["account"] == {
            "equity": 100_030.0,
            "cash": 99_000.0,
            "exposure": 1_030.0,
            "realizedPnlToday": 0.0,
            "realizedPnlSinceStart": 0.0,
            "unrealizedPnl": 30.0,
        }

        everything = await run.json("status", "--all")
        assert {s["id"]: s["status"] for s in everything["strategies"]} == {
            "holder": "ACTIVE",
            "other": "STOPPED",
        }

        paused = await run.json("pause", "holder")
        assert paused["type"] == "strategy_paused"
        assert paused["data"] == {"strategyId": "holder", "name": "Hold AAPL"}
        # stop closes the position at market: the order fills on AAPL's next tick.
        stopping = asyncio.create_task(run("stop", "holder"))
        await until(lambda: test.tick("AAPL", 104.0) is None and stopping.done())
        code, out, _ = stopping.result()
        # Bought 10 at 100, closed at 104 (no slippage, no commission): +40.
        assert (code, out) == (
            EXIT_OK,
            "stopped holder (Hold AAPL): closed long 10 AAPL at 104.00; realized P&L +40.00\n",
        )
        code, out, _ = await run("status")
        assert "no strategies running" in out
        # A stopped strategy's realized P&L stays in the totals.
        everything = await run.json("status", "--all")
        held = {s["id"]: s["realizedPnl"] for s in everything["strategies"]}
        assert held["holder"] == 40.0
        await run("start", "other")
        code, out, _ = await run("stop", "other")
        assert (code, out) == (EXIT_OK, "stopped other (Hold MSFT): no position to close\n")


def closing_order(test: TestDaemon, symbol: str) -> asyncio.Future[Event]:
    """The stop's closing order for ``symbol`` reaching the broker (it fills on the next price)."""
    return asyncio.ensure_future(
        test.next_event(
            lambda e: (
                isinstance(e, OrderSubmitted)
                and e.order.purpose is OrderPurpose.STRATEGY_STOP
                and e.order.symbol == symbol
            )
        )
    )


async def test_start_with_params_runs_them_and_status_json_lists_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (test, run):
        code, out, err = await run("start", "holder", "--param", "quantity=3")
        assert (code, err, out) == (EXIT_OK, "", "started holder (Hold AAPL) on AAPL\n")
        buy_on_first_bar(test, "AAPL", 100.0)
        await until(lambda: bool(test.daemon.registry.view("holder").positions))
        [held] = test.daemon.registry.view("holder").positions
        assert held.quantity == 3.0  # the params' quantity, not the catalog's 10
        listed = await run.json("status")
        [holder] = [s for s in listed["strategies"] if s["id"] == "holder"]
        assert holder["params"] == {"quantity": 3}

        code, out, err = await run("start", "other", "--param", "quantity=-1")
        assert (code, out) == (EXIT_DAEMON_ERROR, "")
        assert "params.quantity: Input should be greater than 0" in err
        assert err.rstrip().endswith("(invalid_config)")
        with pytest.raises(SystemExit) as usage:  # argparse's own exit, before any request
            await run("start", "other", "--param", "quantity")
        assert usage.value.code == EXIT_USAGE
        assert "'quantity' is not NAME=VALUE" in capsys.readouterr().err


async def test_stop_of_an_active_strategy_says_what_it_closed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (test, run):
        await run("start", "holder")
        buy_on_first_bar(test, "AAPL", 100.0)
        closing = closing_order(test, "AAPL")
        stopping = asyncio.create_task(run("stop", "holder"))
        await closing
        # 5 % down: the stop's pending order fills at this price before the stop-loss
        # (2 %) looks at it, so the stop, not the stop-loss, closes the position.
        test.tick("AAPL", 95.0)
        code, out, err = await stopping
        assert (code, out, err) == (
            EXIT_OK,
            "stopped holder (Hold AAPL): closed long 10 AAPL at 95.00; realized P&L -50.00\n",
            "",
        )


async def test_stop_reports_only_its_own_closing_trades(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fill of the strategy that lands while the command is on its way (here its
    stop-loss) is not the stop's, nor is what it realized."""
    async with cli_daemon(capsys) as (test, run):
        await run("start", "holder", "--symbols", "AAPL,MSFT")
        test.tick("MSFT", 200.0)
        buy_on_first_bar(test, "AAPL", 100.0)
        test.tick("MSFT", 200.0)
        stop = test.daemon.registry.stop

        async def stop_loss_first(strategy_id: str, origin: CommandOrigin | None = None) -> Any:
            test.tick("AAPL", 97.0)  # 3 % down: the stop-loss sells the AAPL...
            test.tick("AAPL", 97.0)  # ...at the next price, before the stop is handled
            return await stop(strategy_id, origin)

        monkeypatch.setattr(test.daemon.registry, "stop", stop_loss_first)
        closing = closing_order(test, "MSFT")
        stopping = asyncio.create_task(run("stop", "holder"))
        await closing
        test.tick("MSFT", 202.0)
        code, out, err = await stopping
        assert (code, out, err) == (
            EXIT_OK,
            "stopped holder (Hold AAPL): closed long 10 MSFT at 202.00; realized P&L +20.00\n",
            "",
        )
        trades = await run.json("status", "--all")
        held = {s["id"]: s["realizedPnl"] for s in trades["strategies"]}
        assert held["holder"] == -10.0  # -30 by the stop-loss, +20 by the stop


async def test_status_without_the_risk_guardian_takes_the_pnl_of_the_strategies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (test, run):
        await run("start", "holder")
        buy_on_first_bar(test, "AAPL", 100.0)
        test.tick("AAPL", 99.0)
        run.risk_url = dead_url()
        status = await run.json("status")
        # The strategy entries carry the three figures: no need of the risk guardian.
        assert status["pnlSource"] == "strategies"
        assert status["killSwitch"] is None
        [entry] = status["strategies"]
        assert (entry["realizedPnlSinceStart"], entry["unrealizedPnl"]) == (0.0, -10.0)

        code, out, err = await run("status")
        assert (code, err) == (EXIT_OK, "")
        assert "realized since start 0.00, unrealized -10.00" in out
        assert "risk guardian" not in out


def test_status_of_an_older_daemon_computes_unrealized_pnl_from_the_positions() -> None:
    from gateways.client.commands import _with_pnl

    entry = {
        "id": "holder",
        "positions": [{"quantity": 10.0, "entryPrice": 100.0, "currentValue": 990.0}],
    }
    shown = _with_pnl(entry, None)
    assert (shown["realizedPnlToday"], shown["realizedPnlSinceStart"]) == (None, None)
    assert shown["unrealizedPnl"] == -10.0


# ---------------------------------------------------------------- risk, halt, resume


async def test_risk_halt_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    async with cli_daemon(capsys) as (test, run):
        await run("start", "holder")
        buy_on_first_bar(test, "AAPL", 100.0)
        code, out, _ = await run("risk")
        assert code == EXIT_OK
        lines = out.splitlines()
        assert lines[0].split() == ["execution", "RUNNING"]
        assert lines[1].split() == ["kill", "switch", "off"]
        assert "gross exposure  1,000.00 of 100,000.00" in out
        assert any(line.split()[:2] == ["holder", "ACTIVE"] for line in out.splitlines())

        code, out, _ = await run("halt", "--reason", "maintenance", "--block-all")
        assert code == EXIT_OK
        assert out.startswith("trading halted: ENGAGED (every order blocked) since ")
        assert out.rstrip().endswith("by COMMAND: maintenance")
        risk = await run.json("risk")
        assert risk["type"] == "risk_status"
        assert risk["data"]["executionStatus"] == "STOPPED"
        assert risk["data"]["killSwitch"]["reason"] == "maintenance"
        assert risk["data"]["killSwitch"]["blockAll"] is True
        status = await run.json("status")
        assert status["executionStatus"] == "STOPPED"

        released = await run.json("resume", "--reason", "done")
        assert released["type"] == "kill_switch"
        assert released["data"]["engaged"] is False and released["data"]["reason"] == "done"
        halted = await run.json("halt")
        assert halted["data"]["reason"] == "halted from the command line"
        assert halted["data"]["blockAll"] is False
        code, out, _ = await run("resume")
        assert (code, out) == (EXIT_OK, "trading resumed\n")


# ---------------------------------------------------------------- watch


async def test_watch_shows_signals_trades_and_risk_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (test, run), test.client("risk") as risk:
        watching = asyncio.create_task(run("watch", "--count", "5"))
        servers = test.daemon.servers
        # The watch connects to both: 8082 for strategies, 3002 for risk events.
        await until(
            lambda: servers["orchestrator"].client_count == 1 and servers["risk"].client_count == 2
        )
        await risk.request({"type": "start_strategy", "id": "holder"})
        buy_on_first_bar(test, "AAPL", 100.0)
        await risk.request({"type": "halt_trading", "reason": "lunch"})
        async with asyncio.timeout(WAIT):
            code, out, err = await watching
    assert code == EXIT_OK
    # The first line (on stderr, so that stdout stays the events) says what and how to stop.
    assert err == (
        "watching signals, trades, status changes, resting orders and risk events of every "
        "strategy on "
        f"{run.url} and {run.risk_url}; Ctrl-C to stop\n"
    )
    # Two connections: the order holds within each server's stream.
    [kill_switch] = [line.split(None, 4) for line in out.splitlines() if "kill switch" in line]
    assert kill_switch[1:4] == ["kill", "switch", "-"]
    assert kill_switch[4].startswith("ENGAGED (reduce-only) since ")
    assert kill_switch[4].endswith("by COMMAND: lunch")
    strategies = [line.split(None, 3) for line in out.splitlines() if "kill switch" not in line]
    assert [(kind, strategy) for _, kind, strategy, _ in strategies] == [
        ("started", "holder"),
        ("signal", "holder"),
        ("trade", "holder"),
        ("execution", "-"),
    ]
    assert strategies[0][3] == "Hold AAPL on AAPL"
    assert strategies[1][3].startswith("BUY 10 AAPL @ 100.00  confidence ")
    assert strategies[2][3].startswith("BUY 10 AAPL @ 100.00  FILLED  order_")
    assert strategies[3][3] == "STOPPED: lunch"


async def test_watch_json_lines_filtered_by_type_and_strategy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (test, run), test.client() as other:
        watching = asyncio.create_task(
            run("watch", "--json", "--type", "trades", "--strategy", "other", "--count", "1")
        )
        server = test.daemon.servers["orchestrator"]
        await until(lambda: server.client_count == 2)
        # Only 8082 types were asked for: the watch did not connect to 3002.
        assert test.daemon.servers["risk"].client_count == 0
        await other.request({"type": "start_strategy", "id": "holder"})
        await other.request({"type": "start_strategy", "id": "other"})
        buy_on_first_bar(test, "AAPL", 100.0)
        buy_on_first_bar(test, "MSFT", 400.0)
        async with asyncio.timeout(WAIT):
            code, out, err = await watching
    assert code == EXIT_OK
    assert err == f"watching trades of strategies other on {run.url}; Ctrl-C to stop\n"
    [line] = out.splitlines()
    message = json.loads(line)
    assert message["type"] == "strategy_trade"
    assert message["data"]["strategyId"] == "other" and message["data"]["symbol"] == "MSFT"


async def test_watch_of_a_strategy_that_does_not_exist_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, run):
        code, out, err = await run("watch", "--strategy", "nope", "--count", "1")
    assert (code, out) == (EXIT_USAGE, "")
    assert err == "orchestrator watch: no strategy 'nope'; known ids: holder, other\n"


# ---------------------------------------------------------------- failures and exit codes


@pytest.mark.parametrize("argv", [["risk"], ["halt"], ["resume"]])
async def test_risk_commands_at_the_orchestrator_server_point_at_the_risk_guardian(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    async with cli_daemon(capsys) as (test, _):
        url = test.url()
        capsys.readouterr()
        code = await main_async([*argv, "--url", url])
        out, err = capsys.readouterr()
    assert (code, out) == (EXIT_USAGE, "")
    assert f"{argv[0]} talks to the risk guardian" in err
    assert f"--url {risk_url_for(url)}" in err
    assert risk_url_for(url).endswith(":3002/ws")


async def test_a_daemon_error_exits_1_with_its_code_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with cli_daemon(capsys) as (_, run):
        code, out, err = await run("start", "nope")
        assert (code, out) == (EXIT_DAEMON_ERROR, "")
        assert err.startswith("orchestrator start: the daemon refused start_strategy: no strategy")
        assert err.rstrip().endswith("(unknown_strategy)")
        code, _, err = await run("pause", "holder")
        assert code == EXIT_DAEMON_ERROR and "(invalid_transition)" in err
        code, _, err = await run("start", "holder", "--resolution", "7m")
        assert code == EXIT_DAEMON_ERROR and "(invalid_config)" in err
        code, _, err = await run("resume")
        assert code == EXIT_DAEMON_ERROR
        assert "trading is not halted: there is nothing to resume (invalid_transition)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["start", "holder"],
        ["stop", "holder"],
        ["pause", "holder"],
        ["orders"],
        ["cancel-order", "order_000001"],
        ["watch"],
        ["risk"],
        ["halt"],
        ["resume"],
    ],
)
async def test_no_daemon_exits_3_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    url = dead_url()
    code = await main_async([*argv, "--url", url])
    captured = capsys.readouterr()
    assert code == EXIT_UNREACHABLE
    assert captured.out == ""
    assert captured.err == (
        f"orchestrator {argv[0]}: no daemon answers at {url}: connection refused"
        " — is `orchestrator run` running?\n"
    )


def test_main_is_the_sync_entry(capsys: pytest.CaptureFixture[str]) -> None:
    url = dead_url()
    assert cli.main(["risk", "--url", url, "--json"]) == EXIT_UNREACHABLE
    assert "no daemon answers" in capsys.readouterr().err


async def test_no_reply_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    async def silent(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(silent, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        code = await main_async(["risk", "--url", url, "--timeout", "0.2"])
    assert code == EXIT_TIMEOUT
    assert capsys.readouterr().err == (
        "orchestrator risk: no reply to get_risk_status within 0.2 s\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--url", "http://localhost:8082"],
        ["watch", "--type", "gossip"],
        ["start"],
        ["start", "holder", "--stop-loss", "lots"],
        ["halt", "--timeout", "0"],
    ],
)
async def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        await main_async(argv)
    assert caught.value.code == EXIT_USAGE
    assert "usage: orchestrator" in capsys.readouterr().err


async def test_tokens_by_option_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with cli_daemon(capsys, security={"tokens": ["s3cret-9d4f7a2c1e8b6053xyz"]}) as (_, run):
        code, _, err = await run("status", "--token", "wrong")
        assert code == EXIT_DAEMON_ERROR
        assert "refused the connection with HTTP 401" in err and "wrong" not in err
        assert (await run("risk", "--token", "s3cret-9d4f7a2c1e8b6053xyz"))[0] == EXIT_OK
        monkeypatch.setenv(TOKEN_ENV, "s3cret-9d4f7a2c1e8b6053xyz")
        assert (await run("status"))[0] == EXIT_OK


# ---------------------------------------------------------------- output details


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _wants_color(Terminal()) and not _wants_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _wants_color(Terminal())
    assert Output(Terminal(), color=True).paint("ACTIVE", "green") == "\x1b[32mACTIVE\x1b[0m"
    assert Output(Terminal(), color=False).paint("ACTIVE", "green") == "ACTIVE"


def test_the_risk_guardian_is_found_beside_the_orchestrator_server() -> None:
    assert risk_url_for("ws://localhost:8082") == "ws://localhost:3002/ws"
    assert risk_url_for("wss://trading.example.com:9082/") == "wss://trading.example.com:3002/ws"
    assert risk_url_for("ws://[::1]:8082") == "ws://[::1]:3002/ws"


# ---------------------------------------------------------------- orders, cancel-order


async def test_orders_lists_the_resting_orders_and_cancel_order_cancels_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rest = {
        "id": "rest",
        "name": "Rest",
        "kind": "tests.scripted_strategies:RestingBracket",
        "defaults": {"symbols": ["AAPL"], "data_resolution": "1s"},
    }
    with structlog.testing.capture_logs():
        config = test_config(strategies=[rest, *catalog()], broker=NO_SLIPPAGE)
        async with running_daemon(config) as test:
            run = Cli(test, capsys)
            code, out, _ = await run("orders")
            assert (code, out) == (EXIT_OK, "no resting orders\n")
            assert (await run("start", "rest"))[0] == EXIT_OK
            test.tick("AAPL", 100.0)
            test.advance(1.0)
            test.tick("AAPL", 100.0)  # the bar closes: a limit buy at 99 rests
            await until(lambda: bool(test.daemon.committed.open_orders()))
            code, out, _ = await run("orders", "--strategy", "rest")
            header, _, row = out.splitlines()
            assert header.split() == [
                "ORDER", "STRATEGY", "SYMBOL", "SIDE", "QTY", "FILLED", "TYPE", "PRICES", "TIF",
                "FOR",
            ]  # fmt: skip
            order_id = row.split()[0]
            assert row.split()[1:7] == ["rest", "AAPL", "BUY", "10", "-", "LIMIT"]
            assert "limit 99.00; bracket 94.05 / 100.98" in row and row.rstrip().endswith("entry")
            listed = await run.json("orders")
            assert [o["orderId"] for o in listed["data"]["orders"]] == [order_id]
            code, out, _ = await run("orders", "--strategy", "holder")
            assert out == "no resting orders of holder\n"
            code, out, _ = await run("cancel-order", order_id)
            assert code == EXIT_OK
            assert out.startswith(f"cancelled {order_id}: BUY 10 AAPL LIMIT (limit 99.00;")
            assert out.rstrip().endswith("of rest")
            code, out, err = await run("cancel-order", order_id)
            assert (code, out) == (EXIT_DAEMON_ERROR, "")
            assert err.rstrip().endswith("(order_not_found)")
            code, _, err = await run("orders", "--strategy", "nope")
            assert code == EXIT_DAEMON_ERROR and "(unknown_strategy)" in err


async def test_orders_shows_what_rests_and_what_its_parts_filled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Partial fills: a limit buy of 10 that a tick of size 4 reached rests with 6; the
    listing says 6 rest and 4 filled (docs/orders.md#partial-fills)."""
    rest = {
        "id": "rest",
        "name": "Rest",
        "kind": "tests.scripted_strategies:RestingBracket",
        "defaults": {"symbols": ["AAPL"], "data_resolution": "1s"},
    }
    broker = {**NO_SLIPPAGE, "partial_fills": True}
    with structlog.testing.capture_logs():
        config = test_config(strategies=[rest, *catalog()], broker=broker)
        async with running_daemon(config) as test:
            run = Cli(test, capsys)
            assert (await run("start", "rest"))[0] == EXIT_OK
            test.tick("AAPL", 100.0)
            test.advance(1.0)
            test.tick("AAPL", 100.0)  # the bar closes: a limit buy of 10 at 99 rests
            await until(lambda: bool(test.daemon.committed.open_orders()))
            [entry] = test.daemon.committed.open_orders()
            test.tick("AAPL", 98.5, size=4.0)
            await until(lambda: test.daemon.committed.filled(entry.id) == 4.0)
            code, out, _ = await run("orders", "--strategy", "rest")
            assert code == EXIT_OK
            rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
            assert rows[entry.id][4:7] == ["6", "4", "LIMIT"]
            exits = [row for order_id, row in rows.items() if order_id != entry.id]
            assert sorted(row[4:6] for row in exits) == [["4", "-"], ["4", "-"]]
