"""The fan-out: one message per event, shared by the three servers and NNG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from gateways.api import outbound
from gateways.api.outbound import Outgoing
from gateways.fanout import Fanout
from orchestrator.bus import EventBus
from orchestrator.journal.writer import MARKET_DATA
from orchestrator.model.events import (
    BarClosed,
    ExecutionStatus,
    ExecutionStatusChanged,
    IndicatorsUpdated,
    KillSwitchChanged,
    QuoteUpdated,
    Topic,
)
from orchestrator.model.market import Bar, Tick
from tests.gateways.nng.nng_support import subscriber_process, until
from tests.support import START, Client, running_daemon, test_config

COUNTED = (ExecutionStatusChanged, IndicatorsUpdated, KillSwitchChanged, QuoteUpdated)


def count_builds(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the calls of the table's builders of COUNTED, by event type name."""
    built: Counter[str] = Counter()

    def counting(kind: type[Any], build: Callable[[Any], outbound.Message]) -> Any:
        def wrapper(event: Any) -> outbound.Message:
            built[kind.__name__] += 1
            return build(event)

        return wrapper

    for kind in COUNTED:
        monkeypatch.setitem(outbound.MESSAGES, kind, counting(kind, outbound.MESSAGES[kind]))
    return built


async def test_each_event_is_built_once_for_every_server_client_and_nng(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = test_config(nng={"publish_address": f"ipc://{tmp_path}/events.ipc"})
    async with running_daemon(config) as daemon, AsyncExitStack() as stack:
        clients: dict[str, list[Client]] = {}
        for server in ("orchestrator", "market_data", "risk"):
            clients[server] = [
                await stack.enter_async_context(daemon.client(server)) for _ in range(2)
            ]
        for watcher in clients["market_data"]:
            await watcher.request({"type": "subscribe", "symbols": ["AAPL"]})
        nng = daemon.daemon.nng
        assert nng is not None
        subscriber = await stack.enter_async_context(subscriber_process(nng.address))
        await until(lambda: nng.subscribers == 1)
        built = count_builds(monkeypatch)

        operator = clients["risk"][0]
        await operator.request({"type": "halt_trading", "reason": "maintenance"})
        daemon.tick("AAPL", 101.0)
        for client in (c for group in clients.values() for c in group):
            status = await client.recv_type("execution_service_status")
            assert status["data"]["status"] == ExecutionStatus.STOPPED
        quotes = [await watcher.recv_type("quote") for watcher in clients["market_data"]]
        await subscriber.wait_for(3)

    assert built == {"ExecutionStatusChanged": 1, "KillSwitchChanged": 1, "QuoteUpdated": 1}
    by_type = {event["type"]: event for event in subscriber.events}
    assert set(by_type) == {"kill_switch", "execution_service_status", "quote"}
    assert by_type["quote"]["data"] == quotes[0]["data"] == quotes[1]["data"]


def test_sinks_share_one_outgoing_and_get_only_their_topics() -> None:
    fanout = Fanout()
    every: list[Outgoing] = []
    quotes: list[Outgoing] = []
    fanout.add(every.append)
    fanout.add(quotes.append, [Topic.MARKET_QUOTE])
    quote = QuoteUpdated(Tick("AAPL", 190.5, 3.0, START))
    fanout.publish(quote)
    fanout.publish(ExecutionStatusChanged(ExecutionStatus.RUNNING, START))
    assert [o.event for o in every] == [
        quote,
        ExecutionStatusChanged(ExecutionStatus.RUNNING, START),
    ]
    assert quotes == [every[0]]  # the same object: its message is built once for both


def test_a_broken_sink_does_not_keep_the_event_from_the_others() -> None:
    fanout = Fanout()
    seen: list[Outgoing] = []

    def broken(_: Outgoing) -> None:
        raise RuntimeError("a broken sink")

    fanout.add(broken)
    fanout.add(seen.append)
    fanout.publish(QuoteUpdated(Tick("AAPL", 1.0, 1.0, START)))
    assert len(seen) == 1
    assert fanout.sink_errors == 1


def test_the_message_is_built_on_first_use_and_then_shared() -> None:
    outgoing = Outgoing(QuoteUpdated(Tick("AAPL", 190.5, 3.0, START)))
    first = outgoing.message
    assert first is not None
    assert outgoing.message is first
    assert outgoing.nng_message is first  # NNG embeds the very same JSON
    kind, data = first
    assert kind == "quote"
    assert outbound.encode(kind, data, START) == outbound.encode(
        "quote", outbound.quote_data(Tick("AAPL", 190.5, 3.0, START)), START
    )


# ---------------------------------------------------------------- routing by who hears


def test_a_deaf_sink_gets_nothing_until_it_hears_and_nothing_once_it_stops() -> None:
    fanout = Fanout()
    quotes: list[Outgoing] = []
    fanout.add(quotes.append, [Topic.MARKET_QUOTE], deaf=[Topic.MARKET_QUOTE])
    first, second, third = (QuoteUpdated(Tick("AAPL", p, 1.0, START)) for p in (1.0, 2.0, 3.0))
    assert not fanout.hears(Topic.MARKET_QUOTE)
    fanout.publish(first)
    fanout.hear(quotes.append, Topic.MARKET_QUOTE, True)
    fanout.publish(second)
    fanout.hear(quotes.append, Topic.MARKET_QUOTE, False)
    fanout.publish(third)
    assert [o.event for o in quotes] == [second]
    assert not fanout.hears(Topic.MARKET_QUOTE)


def test_market_data_reaches_the_fanout_only_while_heard_and_is_counted_meanwhile() -> None:
    """A tick nobody watches costs the edges no call (the bus has no handler for it),
    yet ``published`` counts it, for the NNG publisher's numbers."""
    bus, fanout = EventBus(), Fanout()
    bus.publish(QuoteUpdated(Tick("AAPL", 0.5, 1.0, START)))  # before: not the fan-out's
    quotes: list[Outgoing] = []
    bars: list[Outgoing] = []
    fanout.add(quotes.append, [Topic.MARKET_QUOTE], deaf=[Topic.MARKET_QUOTE])
    fanout.add(bars.append, [Topic.MARKET_BAR])
    fanout.follow_market_data(bus, MARKET_DATA)
    first, second, third = (QuoteUpdated(Tick("AAPL", p, 1.0, START)) for p in (1.0, 2.0, 3.0))
    bar = BarClosed(Bar("AAPL", "1m", START, 1.0, 2.0, 0.5, 1.5, 10.0, 4))

    bus.publish(first)
    assert bus.handlers_of(QuoteUpdated) == ()  # deaf: not even called
    assert len(bus.handlers_of(BarClosed)) == 1  # the bar sink hears from the start
    fanout.hear(quotes.append, Topic.MARKET_QUOTE, True)
    bus.publish(second)
    bus.publish(bar)
    fanout.hear(quotes.append, Topic.MARKET_QUOTE, False)
    bus.publish(third)

    assert [o.event for o in quotes] == [second]
    assert [o.event for o in bars] == [bar]
    assert bus.handlers_of(QuoteUpdated) == ()
    assert fanout.published[Topic.MARKET_QUOTE] == 3
    assert fanout.published[Topic.MARKET_BAR] == 1


async def test_a_quote_nobody_subscribed_to_is_never_built_nor_journaled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = test_config(nng={"enabled": False}, streams={"replay_window": 2})
    async with running_daemon(config) as daemon, daemon.client("market_data") as watcher:
        built = count_builds(monkeypatch)
        daemon.tick("AAPL", 100.0)
        await daemon.daemon.writer.flush()
        assert built["QuoteUpdated"] == 0

        await watcher.request({"type": "subscribe", "symbols": ["AAPL"]})
        assert (await watcher.recv_type("quote"))["data"]["price"] == 100.0  # the last
        daemon.tick("AAPL", 101.0)
        assert (await watcher.recv_type("quote"))["data"]["price"] == 101.0
        assert built["QuoteUpdated"] == 1

        await watcher.request({"type": "unsubscribe", "symbols": ["AAPL"]})
        # The emptied channel is kept while its messages are in the replay window
        # (two here): the third quote after it emptied finds it stale.
        for price in (102.0, 103.0, 104.0):
            daemon.tick("AAPL", price)
        await daemon.daemon.writer.flush()
        assert built["QuoteUpdated"] == 4
        daemon.tick("AAPL", 105.0)
        daemon.tick("AAPL", 106.0)
        await daemon.daemon.writer.flush()
        assert built["QuoteUpdated"] == 4


async def test_what_goes_to_everyone_reaches_a_server_only_while_a_client_is_there_or_may_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A daemon nobody watches hands its servers no indicators (nor builds them); a
    client that left is kept for a resume while its messages are in the replay window
    (two here), and the third message after it left finds the server deaf again."""
    config = test_config(nng={"enabled": False}, streams={"replay_window": 2})
    async with running_daemon(config) as daemon:
        fanout, stage = daemon.daemon.fanout, daemon.daemon.journal_stage
        server = daemon.daemon.servers["orchestrator"]
        built = count_builds(monkeypatch)
        lines = IndicatorsUpdated("sma", "AAPL", "1m", START, (("fast", 1.0),))
        assert not fanout.hears(Topic.STRATEGY_INDICATORS)
        daemon.daemon.bus.publish(lines)
        assert stage.unheard == 1 and built["IndicatorsUpdated"] == 0

        async with daemon.client() as client:
            assert fanout.hears(Topic.STRATEGY_INDICATORS)
            daemon.daemon.bus.publish(lines)
            assert (await client.recv_type("strategy_indicators"))["data"]["symbol"] == "AAPL"
        await until(lambda: server.client_count == 0)
        for _ in range(3):
            assert fanout.hears(Topic.STRATEGY_INDICATORS)
            daemon.daemon.bus.publish(lines)
        assert not fanout.hears(Topic.STRATEGY_INDICATORS)
        daemon.daemon.bus.publish(lines)
        assert built["IndicatorsUpdated"] == 4
        assert stage.unheard == 2
        assert fanout.published[Topic.STRATEGY_INDICATORS] == 6  # heard or not
