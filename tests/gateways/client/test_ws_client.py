"""gateways.client.ws_client against real servers: the daemon's, and tiny raw ones for
what the daemon never does (garbage frames, silence, a dropped request).

No test sleeps for the backoff: the client's ``sleep`` is replaced by a gate
that records each delay and waits until the test has the server back up.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateways.client.ws_client import (
    Backoff,
    CommandError,
    ConnectionLost,
    HandshakeRejected,
    Message,
    MessageStream,
    OrchestratorClient,
    RequestTimeout,
    Unreachable,
    resume_url,
    start_config,
)
from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import TradeExecuted
from orchestrator.model.orders import Fill, Side, TradeStatus
from tests.support import START, TestDaemon, report, running_daemon, test_config

WAIT = 5.0


class Gate:
    """A client ``sleep`` that records each delay and returns once the gate is open."""

    def __init__(self, is_open: bool = True) -> None:
        self.delays: list[float] = []
        self._open = asyncio.Event()
        if is_open:
            self._open.set()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self._open.wait()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.clear()


async def next_message(stream: MessageStream) -> Message:
    async with asyncio.timeout(WAIT):
        return await anext(stream)


async def until(predicate: Callable[[], bool]) -> None:
    """Poll with a deadline for something the client does in the background."""
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - the state moves in the client's own tasks
            await asyncio.sleep(0.005)


async def collect_until(stream: MessageStream, done: Callable[[Message], bool]) -> list[Message]:
    seen = []
    async with asyncio.timeout(WAIT):
        async for message in stream:
            seen.append(message)
            if done(message):
                return seen
    raise AssertionError(f"the stream ended first: {seen}")


def fixed_ports_config(ports: dict[str, int], **overrides: Any) -> DaemonConfig:
    return test_config(
        servers={
            "orchestrator": {"port": ports["orchestrator"], "path": "/"},
            "market_data": {"port": ports["market_data"], "path": "/ws"},
            "risk": {"port": ports["risk"], "path": "/ws"},
        },
        **overrides,
    )


async def ephemeral_ports() -> dict[str, int]:
    """Ports a daemon could bind: those of a daemon on port 0, once it has stopped."""
    async with running_daemon() as test:
        return test.daemon.ports()


@asynccontextmanager
async def daemon_at(config: DaemonConfig, start: float = START) -> AsyncIterator[TestDaemon]:
    """A daemon whose clock starts at ``start``: another start is another epoch."""
    clock = ManualClock(start)
    daemon = Daemon(config, clock=clock)
    await daemon.start()
    try:
        yield TestDaemon(daemon, clock)
    finally:
        await daemon.stop()


@asynccontextmanager
async def raw_server(
    handler: Callable[[ServerConnection], Awaitable[None]], port: int = 0
) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", port) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


# ---------------------------------------------------------------- requests and listeners


async def test_requests_get_their_own_replies_and_errors_are_typed() -> None:
    async with (
        running_daemon() as test,
        OrchestratorClient(test.url(), reconnect=False) as client,
    ):
        assert client.connected
        active, catalog, risk = await asyncio.gather(
            client.get_active_strategies(),
            client.get_strategies(),
            client.request({"type": "get_strategies"}),
        )
        assert active["type"] == "strategy_status_list" and active["data"] == []
        assert catalog["type"] == "strategy_list"
        assert {entry["id"] for entry in catalog["data"]} >= {"strategy-123", "rsi-reversion"}
        assert catalog["requestId"] != risk["requestId"]

        started = await client.start_strategy(
            "strategy-123", symbols=["AAPL"], data_resolution="1m"
        )
        assert started["type"] == "strategy_started"
        assert started["data"] == {
            "strategyId": "strategy-123",
            "name": "Moving Average Crossover",
            "symbols": ["AAPL"],
        }
        with pytest.raises(CommandError) as caught:
            await client.start_strategy("strategy-123")
        assert (caught.value.code, caught.value.request_type) == (
            "invalid_transition",
            "start_strategy",
        )
        with pytest.raises(CommandError) as unknown:
            await client.pause_strategy("nope")
        assert unknown.value.code == "unknown_strategy" and "nope" in unknown.value.message

        assert (await client.pause_strategy("strategy-123"))["type"] == "strategy_paused"
        assert (await client.stop_strategy("strategy-123"))["type"] == "strategy_stopped"


async def test_every_command_of_3001_and_3002() -> None:
    async with (
        running_daemon() as test,
        OrchestratorClient(test.url("market_data"), reconnect=False) as market,
        OrchestratorClient(test.url("risk"), reconnect=False) as risk,
    ):
        quotes = market.messages("quote")
        subscribed = await market.subscribe(["aapl"], "1m")
        assert subscribed["type"] == "subscribed"
        assert market.subscriptions == {"AAPL": ["1m"]}
        test.tick("AAPL", 101.5)
        assert (await next_message(quotes))["data"]["price"] == 101.5
        assert (await market.unsubscribe("AAPL", "1m"))["type"] == "unsubscribed"
        assert market.subscriptions == {"AAPL": [None]}
        await market.unsubscribe(["AAPL"])
        assert market.subscriptions == {}
        with pytest.raises(CommandError) as caught:
            await market.subscribe(["NOPE"])
        assert caught.value.code == "unknown_symbol"

        status = await risk.get_risk_status()
        assert status["type"] == "risk_status"
        assert status["data"]["killSwitch"]["engaged"] is False
        halted = await risk.halt_trading("maintenance", block_all=True)
        assert halted["type"] == "kill_switch"
        assert halted["data"]["engaged"] and halted["data"]["blockAll"]
        assert halted["data"]["reason"] == "maintenance"
        released = await risk.resume_trading("done")
        assert released["data"]["engaged"] is False
        with pytest.raises(CommandError) as not_halted:
            await risk.resume_trading()
        assert not_halted.value.code == "invalid_transition"
        assert (await risk.start_strategy("rsi-reversion"))["type"] == "strategy_started"


async def test_listeners_filter_by_type_and_strategy() -> None:
    async with running_daemon() as test:
        client = OrchestratorClient(test.url(), reconnect=False)
        # Registered before connecting: the snapshot reaches it.
        snapshot = client.messages(["execution_service_status", "strategy_status_list"])
        lifecycle = client.messages(("strategy_started", "strategy_stopped"))
        latest = client.messages("strategy_started", maxsize=1)
        mine = client.messages(strategy_id="strategy-123")
        handled: list[Message] = []
        handled_async: list[Message] = []

        async def record(message: Message) -> None:
            await asyncio.sleep(0)
            handled_async.append(message)

        client.on("strategy_started", handled.append, strategy_id="strategy-123")
        remove = client.on(None, record, strategy_id="rsi-reversion")
        async with client, test.client() as other:
            first = await next_message(snapshot)
            assert first["type"] == "execution_service_status" and first["snapshot"] is True
            assert (await next_message(snapshot))["type"] == "strategy_status_list"

            await other.request({"type": "start_strategy", "id": "strategy-123"})
            await other.request({"type": "start_strategy", "id": "rsi-reversion"})
            await other.request({"type": "stop_strategy", "id": "rsi-reversion"})

            kinds = [(await next_message(lifecycle))["type"] for _ in range(3)]
            assert kinds == ["strategy_started", "strategy_started", "strategy_stopped"]
            assert (await next_message(mine))["data"]["strategyId"] == "strategy-123"
            await until(lambda: len(handled_async) == 2)
            assert [m["type"] for m in handled_async] == ["strategy_started", "strategy_stopped"]
            assert [m["data"]["strategyId"] for m in handled] == ["strategy-123"]

            # A full stream drops its oldest message.
            assert latest.dropped == 1
            assert (await next_message(latest))["data"]["strategyId"] == "rsi-reversion"

            remove()
            await other.request({"type": "start_strategy", "id": "rsi-reversion"})
            assert (await next_message(lifecycle))["data"]["strategyId"] == "rsi-reversion"
            assert len(handled_async) == 2
            await mine.aclose()
        # The client closed: its streams end once drained.
        assert [m async for m in lifecycle] == []


CLIENT_LOGGER = "gateways.client.ws_client"


def client_logs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The client's log records as ``{"event", "level", **fields}``."""
    return [
        {"event": r.client_event, "level": r.levelname.lower(), **r.client_fields}
        for r in caplog.records
        if r.name == CLIENT_LOGGER
    ]


async def test_a_failing_handler_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)
    async with running_daemon() as test:
        client = OrchestratorClient(test.url(), reconnect=False)
        seen: list[str] = []

        def broken(message: Message) -> None:
            raise RuntimeError("handler bug")

        client.on("strategy_started", broken)
        client.on("strategy_started", lambda m: seen.append(m["type"]))
        async with client:
            await client.start_strategy("strategy-123")
            await until(lambda: seen == ["strategy_started"])
        logs = client_logs(caplog)
        assert [e["event"] for e in logs if e["level"] == "error"] == ["handler_failed"]
        [failed] = [r for r in caplog.records if r.name == CLIENT_LOGGER and r.exc_info]
        assert "handler bug" in str(failed.exc_info[1] if failed.exc_info else None)


# ---------------------------------------------------------------- bad servers


async def test_bad_frames_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)

    async def garbage(ws: ServerConnection) -> None:
        await ws.send("{not json")
        await ws.send("[1, 2, 3]")
        await ws.send('{"data": "no type"}')
        await ws.send(b"\xff\xfe binary")
        await ws.send('{"type": "hello", "timestamp": "t", "data": {}}')
        async for frame in ws:
            request = orjson.loads(frame)
            await ws.send('"a string"')
            reply = {"type": "strategy_list", "data": [], "requestId": request["requestId"]}
            await ws.send(orjson.dumps(reply).decode())

    async with raw_server(garbage) as url, OrchestratorClient(url, reconnect=False) as client:
        stream = client.messages()
        reply = await client.get_strategies()
        assert reply["type"] == "strategy_list"
        assert (await next_message(stream))["type"] == "hello"
        assert (await next_message(stream))["type"] == "strategy_list"
    bad = [entry for entry in client_logs(caplog) if entry["event"] == "bad_frame"]
    assert [entry["reason"].split(":")[0] for entry in bad] == [
        "invalid JSON",
        "not a JSON object",
        'no "type" string',
        "invalid JSON",
        "not a JSON object",
    ]


async def test_a_request_without_reply_times_out() -> None:
    async def silent(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with (
        raw_server(silent) as url,
        OrchestratorClient(url, reconnect=False, request_timeout=0.2) as client,
    ):
        with pytest.raises(RequestTimeout) as caught:
            await client.get_risk_status()
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.request_type == "get_risk_status"


async def test_nothing_listening_and_a_refused_token() -> None:
    port = (await ephemeral_ports())["orchestrator"]
    client = OrchestratorClient(f"ws://127.0.0.1:{port}")
    with pytest.raises(Unreachable) as caught:
        await client.connect()
    assert isinstance(caught.value, ConnectionError)
    assert str(caught.value) == f"no daemon answers at ws://127.0.0.1:{port}: connection refused"

    config = test_config(security={"tokens": ["right-token-4b7e1d9c2a6f0e8"]})
    async with running_daemon(config) as test:
        with pytest.raises(HandshakeRejected) as refused:
            await OrchestratorClient(test.url(), token="wrong").connect()
        assert refused.value.status == 401
        async with OrchestratorClient(test.url(), token="right-token-4b7e1d9c2a6f0e8") as client:
            assert (await client.get_strategies())["type"] == "strategy_list"

    with pytest.raises(ValueError, match="not a WebSocket URL"):
        OrchestratorClient("http://localhost:8082")
    with pytest.raises(RuntimeError, match="not connected"):
        await OrchestratorClient(f"ws://127.0.0.1:{port}").get_strategies()


# ---------------------------------------------------------------- reconnection


async def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close()

    draws = iter([0.5, 1.0, 0.25, 1.0, 1.0, 0.5, 1.0])
    gate = Gate()
    async with raw_server(close_at_once) as url:
        client = OrchestratorClient(
            url, backoff=(0.1, 1.0, 2.0), max_attempts=7, sleep=gate, rand=lambda: next(draws)
        )
        stream = client.messages()
        await client.connect()
    # The server is gone: every attempt is refused, then the client gives up.
    async with asyncio.timeout(WAIT):
        assert [m async for m in stream] == []
    caps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert gate.delays == pytest.approx([0.05, 0.2, 0.1, 0.8, 1.0, 0.5, 1.0])
    assert all(0 <= d <= cap for d, cap in zip(gate.delays, caps, strict=True))
    assert client.closed and not client.connected
    with pytest.raises(ConnectionLost):
        await client.get_strategies()

    steady = OrchestratorClient(url, backoff=Backoff(0.5, 4.0, 3.0), jitter=False)
    assert [steady.backoff_delay(n) for n in range(5)] == [0.5, 1.5, 4.0, 4.0, 4.0]
    assert steady.backoff_delay(10_000) == 4.0


async def test_a_request_in_flight_fails_on_a_drop_and_is_not_sent_again() -> None:
    received: list[dict[str, Any]] = []

    async def drop_on_command(ws: ServerConnection) -> None:
        async for frame in ws:
            received.append(orjson.loads(frame))
            ws.transport.abort()

    gate = Gate(is_open=False)
    async with raw_server(drop_on_command) as url:
        client = OrchestratorClient(url, sleep=gate)
        async with client:
            with pytest.raises(ConnectionLost) as caught:
                await client.start_strategy("strategy-123")
            assert isinstance(caught.value, ConnectionError)
            await until(lambda: not client.connected and len(gate.delays) == 1)
            gate.open()
            await asyncio.wait_for(client.wait_connected(), WAIT)
            assert client.reconnects == 1
            # Nothing is re-sent on the new connection; a new request goes through it.
            with pytest.raises(ConnectionLost):
                await client.get_strategies()
    assert [m["type"] for m in received] == ["start_strategy", "get_strategies"]


async def test_after_a_daemon_restart_the_client_resubscribes_and_resyncs() -> None:
    ports = await ephemeral_ports()
    config = fixed_ports_config(ports)
    gate = Gate(is_open=False)
    async with daemon_at(config) as first:
        orchestrator = OrchestratorClient(first.url(), sleep=gate)
        market = OrchestratorClient(first.url("market_data"), sleep=gate)
        events = orchestrator.messages()
        quotes = market.messages("quote")
        await orchestrator.connect()
        await market.connect()
        await market.subscribe(["AAPL"], "1m")
        await orchestrator.start_strategy("strategy-123")
        first.tick("AAPL", 100.0)
        assert (await next_message(quotes))["data"]["price"] == 100.0
        old_epoch = orchestrator.epoch
    # The daemon is gone: both clients notice and back off.
    await until(lambda: not orchestrator.connected and not market.connected)
    await until(lambda: len(gate.delays) >= 2)
    async with daemon_at(fixed_ports_config(ports), start=START + 3600) as second:
        gate.open()
        await asyncio.wait_for(orchestrator.wait_connected(), WAIT)
        await asyncio.wait_for(market.wait_connected(), WAIT)
        assert orchestrator.reconnects == market.reconnects == 1

        # A new epoch: told to resync, then a fresh snapshot, then live messages.
        epoch = second.daemon.epoch
        seen = await collect_until(
            events, lambda m: m["type"] == "strategy_status_list" and m.get("epoch") == epoch
        )
        assert [m["type"] for m in seen] == [
            "execution_service_status",
            "strategy_status_list",
            "strategy_started",
            "resync_required",
            "execution_service_status",
            "strategy_status_list",
        ]
        assert orchestrator.epoch != old_epoch and orchestrator.epoch == second.daemon.epoch

        # 3001: subscribed again without being asked.
        assert market.subscriptions == {"AAPL": ["1m"]}
        second.tick("AAPL", 123.25)
        assert (await next_message(quotes))["data"]["price"] == 123.25
        assert (await orchestrator.get_active_strategies())["type"] == "strategy_status_list"
        await orchestrator.close()
        await market.close()


async def test_after_a_restart_on_the_same_journal_the_client_misses_no_trade() -> None:
    """The trades made while the daemon was down and the client away come from the
    journal, once each and in order: a resume, not a resync."""
    config = fixed_ports_config(await ephemeral_ports())
    gate = Gate(is_open=False)
    client = OrchestratorClient(f"ws://127.0.0.1:{config.servers.orchestrator.port}/", sleep=gate)
    stream = client.messages()
    async with daemon_at(config) as first:
        await client.connect()
        await client.start_strategy("strategy-123")
        before = [trade(first, "AAPL", i) for i in range(2)]
        await collect_until(stream, lambda m: trade_id(m) == before[-1])
        old_epoch = client.epoch
    await until(lambda: not client.connected and len(gate.delays) >= 1)
    async with daemon_at(config) as second:
        away = [trade(second, "AAPL", i) for i in range(3)]  # the client is still away
        await second.daemon.writer.flush()
        gate.open()
        await asyncio.wait_for(client.wait_connected(), WAIT)
        seen = await collect_until(stream, lambda m: m.get("snapshot") is True)
        assert seen[0]["type"] == "resumed" and seen[0]["data"]["journalReplayed"] >= 3
        assert [m["data"]["id"] for m in seen if m["type"] == "strategy_trade"] == away
        assert client.epoch == second.daemon.epoch != old_epoch
        live = trade(second, "AAPL", 3)
        later = await collect_until(stream, lambda m: trade_id(m) == live)
        assert [m["data"]["id"] for m in later if m["type"] == "strategy_trade"] == [live]
        assert later[-1]["seq"] > seen[0]["data"]["toSeq"]
        await client.close()


def trade_id(message: Message) -> str | None:
    data = message.get("data")
    return (
        data.get("id") if message["type"] == "strategy_trade" and isinstance(data, dict) else None
    )


def trade(daemon: TestDaemon, symbol: str, n: int) -> str:
    """A fill of strategy-123 as the pipeline publishes it (the core's book moved by
    it), on the bus: journaled, then told. Its id."""
    fill = Fill(
        id=f"trade-{daemon.daemon.epoch}-{n}",
        order_id=f"order-{daemon.daemon.epoch}-{n}",
        strategy_id="strategy-123",
        symbol=symbol,
        side=Side.BUY,
        quantity=1.0,
        price=100.0 + n,
        commission=0.0,
        ts=daemon.clock.now(),
        status=TradeStatus.FILLED,
    )
    change = daemon.daemon.core.execution.book.apply_fill(fill)
    daemon.daemon.bus.publish(TradeExecuted(fill, change))
    return fill.id


async def test_a_resumed_stream_on_8082_has_no_gap_and_no_duplicate() -> None:
    ports = await ephemeral_ports()
    gate = Gate(is_open=False)
    async with daemon_at(fixed_ports_config(ports)) as test:
        client = OrchestratorClient(test.url(), sleep=gate)
        stream = client.messages()
        async with client, test.client("risk") as risk:
            await client.start_strategy("strategy-123")
            server = test.daemon.servers["orchestrator"]
            await server.close()
            await until(lambda: not client.connected)
            # Broadcast on 8082 while the client is away.
            await risk.request({"type": "pause_strategy", "id": "strategy-123"})
            await risk.request({"type": "halt_trading", "reason": "while away"})
            await risk.request({"type": "resume_trading"})
            await risk.request({"type": "start_strategy", "id": "rsi-reversion"})
            await server.start()
            gate.open()
            await asyncio.wait_for(client.wait_connected(), WAIT)
            await risk.request({"type": "stop_strategy", "id": "rsi-reversion"})
            seen = await collect_until(
                stream,
                lambda m: (
                    m["type"] == "strategy_stopped" and m["data"]["strategyId"] == "rsi-reversion"
                ),
            )
    kinds = [m["type"] for m in seen]
    at = kinds.index("resumed")
    assert seen[at]["data"]["replayed"] == 4
    assert kinds[at:] == [
        "resumed",
        "strategy_paused",
        "execution_service_status",
        "execution_service_status",
        "strategy_started",
        "strategy_stopped",
    ]
    seqs = [m["seq"] for m in seen if "seq" in m and not m.get("snapshot")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def test_a_resumed_stream_on_3001_discards_what_precedes_resumed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ports = await ephemeral_ports()
    gate = Gate(is_open=False)
    async with daemon_at(fixed_ports_config(ports)) as test:
        client = OrchestratorClient(test.url("market_data"), sleep=gate)
        quotes = client.messages("quote")
        ticked: list[float] = []
        reconnecting = asyncio.Event()

        async def produce() -> None:
            # Ticks all along: before the drop, while away, and after. While
            # the client reconnects, one per loop turn, so that live quotes
            # reach the new connection between its subscribe and its resume.
            for n in range(1, 100_000):
                ticked.append(100 + n / 100)
                test.tick("MSFT", ticked[-1])
                await asyncio.sleep(0 if reconnecting.is_set() else 0.001)

        async with client:
            await client.subscribe(["MSFT"])
            producer = asyncio.create_task(produce())
            try:
                await until(lambda: len(ticked) >= 5)
                server = test.daemon.servers["market_data"]
                await server.close()
                await until(lambda: not client.connected)
                away = len(ticked)
                await until(lambda: len(ticked) >= away + 10)
                await server.start()
                reconnecting.set()
                gate.open()
                await asyncio.wait_for(client.wait_connected(), WAIT)
                reconnecting.clear()
                back = len(ticked)
                await until(lambda: len(ticked) >= back + 10)
            finally:
                producer.cancel()
            last = ticked[-1]
            received = await collect_until(quotes, lambda m: m["data"]["price"] == last)
    prices = [m["data"]["price"] for m in received]
    report(
        capsys,
        "client resume on 3001",
        ticked=len(ticked),
        received=len(prices),
        discarded_before_resumed=client.discarded_before_resumed,
    )
    assert client.reconnects == 1
    assert prices == ticked, "a gap or a duplicate"
    assert client.discarded_before_resumed >= 1


# ---------------------------------------------------------------- pure helpers


def test_resume_url_and_start_config() -> None:
    assert resume_url("ws://h:8082", 41, 7) == "ws://h:8082/?lastSeq=41&epoch=7"
    assert resume_url("ws://h:8082/?position=3", 41, 7, 12) == (
        "ws://h:8082/?lastSeq=41&epoch=7&position=12"
    )
    assert (
        resume_url("ws://h:3002/ws?lastSeq=1&x=y", 5, 7) == "ws://h:3002/ws?x=y&lastSeq=5&epoch=7"
    )
    assert start_config(symbols=("AAPL",), stop_loss_percentage=0.02, real_trading=False) == {
        "symbols": ["AAPL"],
        "realTrading": False,
        "stopLossPercentage": 0.02,
    }
    assert start_config() == {}


async def test_the_client_logs_through_logging_and_never_prints(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    async def garbage(ws: ServerConnection) -> None:
        await ws.send("{not json")
        await ws.wait_closed()

    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)
    async with raw_server(garbage) as url, OrchestratorClient(url, reconnect=False) as client:
        await until(lambda: any(e["event"] == "bad_frame" for e in client_logs(caplog)))
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    [record] = [r for r in caplog.records if r.name == CLIENT_LOGGER and "bad_frame" in r.message]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"bad_frame url={url!r} reason=")
    # Silent by default, as a library should be: a NullHandler, nothing of its own that prints.
    handlers = logging.getLogger(CLIENT_LOGGER).handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]
    assert client.log.target is logging.getLogger(CLIENT_LOGGER)


def test_the_client_prints_nothing_in_a_fresh_interpreter() -> None:
    # structlog's default configuration prints to stdout; the client must not use it.
    code = textwrap.dedent(
        """
        import asyncio
        from gateways.client.ws_client import OrchestratorClient

        async def main():
            client = OrchestratorClient("ws://127.0.0.1:9/")
            for level in ("debug", "info", "warning", "error"):
                getattr(client.log, level)("probe", url=client.url)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert (result.stdout, result.stderr) == ("", "")
