"""The bus, and the NNG publisher seen from a subscriber in another process."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.api import outbound
from gateways.api.outbound import Outgoing
from gateways.client.nng_client import LossTracker
from gateways.client.nng_wire import FrameError, split_event_frame, topic_prefix
from gateways.config import DaemonConfig
from gateways.daemon import BindFailed, Daemon
from gateways.nng.publisher import NngPublisher, nng_message
from orchestrator.bus import EventBus
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import (
    Event,
    ExecutionStatus,
    ExecutionStatusChanged,
    HaltSource,
    IndicatorsUpdated,
    JobStateChanged,
    JobStatus,
    QuoteUpdated,
    Topic,
)
from orchestrator.model.market import Tick
from orchestrator.risk.guardian import Halt
from tests.gateways.nng.nng_support import subscriber_process, until
from tests.gateways.test_strategy_runtime import config_with
from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import START, TestDaemon, running_daemon, test_config


def nng_config(tmp_path: Path, **nng: object) -> DaemonConfig:
    return test_config(nng={"publish_address": f"ipc://{tmp_path}/events.ipc", **nng})


def publisher(daemon: TestDaemon) -> NngPublisher:
    assert daemon.daemon.nng is not None
    return daemon.daemon.nng


# ---------------------------------------------------------------- the bus


def test_the_bus_delivers_in_publish_order_to_subscribers_in_subscribe_order() -> None:
    bus = EventBus()
    seen: list[tuple[str, float]] = []

    def first(event: Event) -> None:
        assert isinstance(event, QuoteUpdated | ExecutionStatusChanged)
        seen.append(("first", event.tick.price if isinstance(event, QuoteUpdated) else -1))

    def broken(event: Event) -> None:
        raise RuntimeError("a broken subscriber")

    def quotes_only(event: Event) -> None:
        assert isinstance(event, QuoteUpdated)
        seen.append(("quotes", event.tick.price))

    bus.subscribe(first)
    bus.subscribe(broken)
    bus.subscribe(quotes_only, [Topic.MARKET_QUOTE])
    for price in (1.0, 2.0):
        bus.publish(QuoteUpdated(Tick("AAPL", price, 1.0, START)))
    bus.publish(ExecutionStatusChanged(ExecutionStatus.RUNNING, START))
    bus.publish(QuoteUpdated(Tick("AAPL", 3.0, 1.0, START)))

    assert seen == [
        ("first", 1.0),
        ("quotes", 1.0),
        ("first", 2.0),
        ("quotes", 2.0),
        ("first", -1),
        ("first", 3.0),
        ("quotes", 3.0),
    ]
    assert bus.published == 4
    assert bus.handler_errors == 4


# ---------------------------------------------------------------- encoding


def test_every_event_is_published_as_its_websocket_message() -> None:
    status = ExecutionStatusChanged(ExecutionStatus.STOPPED, START, "halted")
    assert nng_message(status) == outbound.event_message(status)
    quote = QuoteUpdated(Tick("AAPL", 190.5, 3.0, START))
    kind, data = nng_message(quote)
    assert (kind, data["symbol"], data["price"], data["size"]) == ("quote", "AAPL", 190.5, 3.0)


def test_job_events_are_published_as_the_dgbit_messages() -> None:
    done = JobStateChanged("job-1", "backtest", JobStatus.COMPLETED, START, {"total_trades": 3})
    assert nng_message(done) == (
        "job.completed",
        {
            "job_id": "job-1",
            "job_type": "backtest",
            "status": "completed",
            "result": {"total_trades": 3},
        },
    )


def test_a_frame_is_the_topic_a_space_and_a_json_object() -> None:
    assert topic_prefix("strategy.signal") == b"strategy.signal "
    assert split_event_frame(b'risk.stop_loss {"seq": 1}') == ("risk.stop_loss", {"seq": 1})
    for bad in (b'{"seq": 1}', b"risk.stop_loss [1]", b"risk.stop_loss nope"):
        with pytest.raises(FrameError):
            split_event_frame(bad)


def test_loss_tracking_by_seq_or_by_topic_seq() -> None:
    everything = LossTracker(per_topic=False)
    assert everything.see("a", 5, 1, 100) == (0, False)  # joined late: history, not loss
    assert everything.see("b", 6, 1, 100) == (0, False)
    assert everything.see("a", 9, 2, 100) == (2, False)
    some = LossTracker(per_topic=True)
    assert some.see("a", 5, 1, 100) == (0, False)
    assert some.see("a", 9, 2, 100) == (0, False)  # seq jumped over other topics
    assert some.see("a", 12, 4, 100) == (1, False)
    assert some.see("a", 3, 3, 200) == (2, True)  # restarted: numbering began at 1
    assert (some.missed, some.gaps, some.restarts) == (3, 2, 1)


# ---------------------------------------------------------------- a subscriber process

MARKET_DATA_TOPICS = ("market.quote", "market.bar")


def market_data_apart(
    messages: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(topic, type) pairs split into market data and the rest, each in its order."""
    market = [m for m in messages if m[0] in MARKET_DATA_TOPICS]
    return market, [m for m in messages if m[0] not in MARKET_DATA_TOPICS]


async def test_a_subscriber_process_receives_every_event_with_its_topic_in_order(
    tmp_path: Path,
) -> None:
    config = nng_config(tmp_path)
    async with running_daemon(config) as daemon, daemon.client() as client:
        nng = publisher(daemon)
        recorded: list[Event] = []
        async with subscriber_process(nng.address) as subscriber:
            await until(lambda: nng.subscribers == 1)
            first_seq = nng.seq + 1
            daemon.daemon.bus.subscribe(recorded.append)

            reply = await client.request({"type": "start_strategy", "id": "strategy-123"})
            assert reply["type"] == "strategy_started"
            await drive_uptrend(daemon, 12)
            signal = await client.recv_type("strategy_signal")
            trade = await client.recv_type("strategy_trade")
            await client.request({"type": "pause_strategy", "id": "strategy-123"})

            events = await subscriber.wait_for(nng.seq - first_seq + 1)

    assert [e["seq"] for e in events] == list(range(first_seq, nng.seq + 1))
    # In bus order, but for quotes and bars: the journal tells them at once, ahead
    # of the trades still committing; each of the two streams keeps its own order.
    published = [(str(event.topic), nng_message(event)[0]) for event in recorded]
    received = [(e["topic"], e["type"]) for e in events]
    assert market_data_apart(received) == market_data_apart(published)
    assert {e["epoch"] for e in events} == {daemon.daemon.epoch}
    assert not any(e["missed"] or e["restarted"] for e in events)
    assert nng.dropped == 0
    assert nng.unheard == first_seq - 1  # numbered before anyone listened: not encoded
    assert nng.sent == nng.seq - nng.unheard
    by_topic: dict[str, list[int]] = {}
    for e in events:
        by_topic.setdefault(e["topic"], []).append(e["topicSeq"])
    for numbers in by_topic.values():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert set(by_topic) >= {
        "strategy.status",
        "strategy.signal",
        "order.submitted",
        "strategy.trade",
        "market.quote",
        "market.bar",
    }
    # One encoder per event: the NNG data is the WebSocket data.
    nng_signal = next(e for e in events if e["type"] == "strategy_signal")
    assert nng_signal["data"] == signal["data"]
    nng_trade = next(e for e in events if e["type"] == "strategy_trade")
    assert nng_trade["data"] == trade["data"]


async def test_gaps_are_reported_only_where_the_publisher_dropped_events(
    tmp_path: Path,
) -> None:
    """A queue of 4 events: one event at a time passes, a burst of 24 loses 20."""
    config = nng_config(tmp_path, queue_size=4)
    # The burst must reach the publisher at once, as one committed group: the writer's
    # thread would otherwise commit it in as many groups as it happens to find, so a
    # group waits (up to a second, never reached) for the flush that sends it.
    journal = config.journal.model_copy(update={"batch_max_delay_ms": 1000.0})
    config = config.model_copy(update={"journal": journal})
    async with running_daemon(config) as daemon:
        nng = publisher(daemon)
        execution = daemon.daemon.core.execution

        def halt() -> None:
            execution.engage_kill_switch(Halt("test", False, HaltSource.COMMAND, START))

        def drained() -> bool:
            return nng.counters()["queued"] == 0

        async def settle() -> None:
            # Events reach the publisher once the journal has committed them.
            await daemon.daemon.writer.flush()
            await until(drained)

        async with (
            subscriber_process(nng.address) as everything,
            subscriber_process(nng.address, "risk.") as risk_only,
        ):
            await until(lambda: nng.subscribers == 2)
            # No loss: each action's events fit in the queue before the next action.
            for step in range(3):
                daemon.tick("AAPL", 100.0 + step)
                await settle()
                halt()  # risk.kill_switch and execution.status
                await settle()
                execution.release_kill_switch("test")
                await settle()
            await everything.wait_for(3 * 5)  # a quote, then two events per switch
            await risk_only.wait_for(6)
            assert nng.dropped == 0
            assert everything.missed == 0 and risk_only.missed == 0
            seqs = [e["seq"] for e in risk_only.events]
            assert seqs != list(range(seqs[0], seqs[0] + len(seqs)))  # others filtered out

            # Loss: six halts and releases at once (24 events: the kill switch's and
            # execution's, alternately); 4 fit in the queue. Not quotes: the journal
            # tells those one by one as they come, never as a burst.
            for _ in range(6):
                halt()
                execution.release_kill_switch("test")
            await daemon.daemon.writer.flush()  # one committed group, delivered at once
            assert nng.dropped == 20
            await until(drained)
            halt()  # delivered: the next number after the gap
            await everything.wait_for(15 + 4 + 2)
            await risk_only.wait_for(6 + 2 + 1)

    assert everything.missed == 20 == nng.dropped
    assert sum(1 for e in everything.events if e["missed"]) == 1
    kill_switch_drops = nng.dropped_by_topic["risk.kill_switch"]
    assert kill_switch_drops == 10
    assert risk_only.missed == kill_switch_drops
    assert [e["missed"] for e in risk_only.events] == [0] * 8 + [10]
    assert not any(e["restarted"] for e in everything.events + risk_only.events)


async def test_with_no_subscriber_the_publisher_is_handed_nothing_yet_numbers_every_event(
    tmp_path: Path,
) -> None:
    """An idle daemon's ticks cost the publisher nothing while nobody subscribes; the
    first subscriber still finds every event of the run counted in ``seq``."""
    async with running_daemon(nng_config(tmp_path)) as daemon:
        nng, fanout = publisher(daemon), daemon.daemon.fanout
        assert not fanout.hears(Topic.MARKET_QUOTE)
        for price in (100.0, 101.0, 102.0):
            daemon.tick("AAPL", price)
        await daemon.daemon.writer.flush()
        assert nng.seq == 0 and fanout.published[Topic.MARKET_QUOTE] == 3
        async with subscriber_process(nng.address) as subscriber:
            await until(lambda: fanout.hears(Topic.MARKET_QUOTE))
            assert nng.seq == nng.unheard == sum(fanout.published.values())
            daemon.daemon.core.execution.announce()
            (event,) = await subscriber.wait_for(1)
            assert event["seq"] == sum(fanout.published.values()) == nng.seq
            assert event["missed"] == 0  # its first message is where it starts
        await until(lambda: not fanout.hears(Topic.MARKET_QUOTE))
        daemon.tick("AAPL", 103.0)
        async with subscriber_process(nng.address) as again:
            await until(lambda: fanout.hears(Topic.MARKET_QUOTE))
            daemon.daemon.core.execution.announce()
            (event,) = await again.wait_for(1)
            assert event["seq"] == sum(fanout.published.values())


async def test_an_event_nobody_hears_is_dropped_before_the_outbox_and_still_numbered(
    tmp_path: Path,
) -> None:
    """With no subscriber (and no client), a strategy's indicators go no further than
    the journal stage, yet a later subscriber's first event is numbered after them."""
    async with running_daemon(nng_config(tmp_path)) as daemon:
        nng, fanout, stage = publisher(daemon), daemon.daemon.fanout, daemon.daemon.journal_stage
        assert not fanout.hears(Topic.STRATEGY_INDICATORS)
        handed: list[Outgoing] = []
        fanout.add(handed.append, (Topic.STRATEGY_INDICATORS,), deaf=(Topic.STRATEGY_INDICATORS,))
        lines = IndicatorsUpdated("s1", "AAPL", "1m", START, (("fast", 1.0),))
        for _ in range(3):
            daemon.daemon.bus.publish(lines)
        assert stage.unheard == 3 and not handed
        assert fanout.published[Topic.STRATEGY_INDICATORS] == 3
        async with subscriber_process(nng.address) as subscriber:
            await until(lambda: fanout.hears(Topic.STRATEGY_INDICATORS))
            daemon.daemon.bus.publish(lines)  # heard now: handed on and sent
            (event,) = await subscriber.wait_for(1)
            assert event["topicSeq"] == 4
            assert event["seq"] == sum(fanout.published.values()) == nng.seq
            assert stage.unheard == 3


async def test_a_restarted_daemon_is_reported_as_a_new_epoch(tmp_path: Path) -> None:
    config = nng_config(tmp_path)
    first = Daemon(config, clock=ManualClock(START))
    await first.start()
    assert first.nng is not None
    async with subscriber_process(first.nng.address) as subscriber:
        try:
            await until(lambda: first.nng is not None and first.nng.subscribers == 1)
            first.core.execution.announce()
            await subscriber.wait_for(1)
        finally:
            await first.stop()
        second = Daemon(config, clock=ManualClock(START + 60))
        await second.start()  # announces RUNNING (seq 1) before the subscriber is back
        try:
            assert second.nng is not None
            nng = second.nng
            await until(lambda: nng.subscribers == 1)
            second.core.execution.announce()
            await until(lambda: subscriber.events[-1]["seq"] == nng.seq == 2)
        finally:
            await second.stop()

    before, after, *_ = subscriber.events
    assert before["epoch"] == first.epoch != after["epoch"] == second.epoch
    assert after["restarted"] and not before["restarted"]
    # Numbering starts at 1 again, so what it could not hear (the announcement at
    # start, unless it was back in time) counts as missed, not as history.
    assert after["missed"] == after["seq"] - 1
    assert sum(e["missed"] for e in subscriber.events) == 2 - len(subscriber.events[1:])


async def test_an_nng_address_in_use_fails_start_and_leaves_nothing_listening(
    tmp_path: Path,
) -> None:
    config = nng_config(tmp_path)
    # Its own journal: a second daemon on the same one is refused before it binds.
    journal = config.journal.model_copy(update={"state_dir": tmp_path / "second"})
    async with running_daemon(config):
        second = Daemon(config.model_copy(update={"journal": journal}), clock=ManualClock(START))
        with pytest.raises(BindFailed) as caught:
            await second.start()
        assert caught.value.server == "nng_publisher"
        assert caught.value.host == config.nng.publish_address
        for server in second.servers.values():  # bound first, closed again
            assert server._server is not None and not server._server.sockets


async def test_order_lifecycle_events_reach_a_subscriber_of_the_order_prefix(
    tmp_path: Path,
) -> None:
    config = config_with(
        {"id": "rest", "kind": "tests.scripted_strategies:RestingBracket", "symbols": ["AAPL"]},
        nng={"publish_address": f"ipc://{tmp_path}/events.ipc"},
    )
    async with running_daemon(config) as daemon, daemon.client() as client:
        nng = publisher(daemon)
        async with subscriber_process(nng.address, "order.") as subscriber:
            await until(lambda: nng.subscribers == 1)
            await client.request({"type": "start_strategy", "id": "rest"})
            daemon.tick("AAPL", 100.0)
            daemon.advance(1.0)
            daemon.tick("AAPL", 100.0)  # the bar closes: a limit buy rests
            accepted = await client.recv_type("order_accepted")
            await client.request({"type": "cancel_order", "orderId": accepted["data"]["orderId"]})
            events = await subscriber.wait_for(2)
    assert [(e["topic"], e["type"]) for e in events] == [
        ("order.accepted", "order_accepted"),
        ("order.cancelled", "order_cancelled"),
    ]
    assert events[0]["data"] == accepted["data"]
