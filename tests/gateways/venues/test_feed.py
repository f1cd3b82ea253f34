"""The ccxt feed against the loopback exchange, through ccxt's unmodified binance class:
each poll driven by the test on a manual clock (the loopback's clock too), so every
tick, backoff and gap is deterministic."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt
import pytest
import structlog
from pydantic import ValidationError

from gateways.venues.feed import CcxtFeed
from orchestrator.marketdata.config import CcxtFeedConfig
from orchestrator.marketdata.feeds import build_feed
from orchestrator.marketdata.history import FeedError
from orchestrator.model.clock import ManualClock
from orchestrator.model.events import FeedCondition, FeedState
from orchestrator.model.market import Tick
from tests.support import test_config
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket
from tests.venues.test_loopback_exchange import KEY, SECRET, plain_binance

START = 1_700_000_000.0
BTC = LoopbackMarket("BTC", "USDT", 30_000.0)
ETH = LoopbackMarket("ETH", "USDT", 2_000.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def exchange(clock: ManualClock) -> AsyncIterator[LoopbackExchange]:
    markets = [BTC, ETH]
    venue = LoopbackExchange(KEY, SECRET, markets, {"USDT": 1e6}, seed=11, clock=clock.now)
    async with venue:
        yield venue


@pytest.fixture
async def binance(exchange: LoopbackExchange) -> AsyncIterator[ccxt.binance]:
    client = plain_binance(exchange, timeout=1_000)
    try:
        yield client
    finally:
        await client.close()


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.states: list[FeedState] = []

    def __call__(self, tick: Tick) -> None:
        self.ticks.append(tick)


def make_feed(
    binance: ccxt.binance, clock: ManualClock, **settings: Any
) -> tuple[CcxtFeed, Recorder]:
    config = CcxtFeedConfig(
        venue="main", symbols=("BTC/USDT", "ETH/USDT"), interval_seconds=1.0, **settings
    )
    feed = CcxtFeed(config, clock)
    feed.attach(binance)
    recorder = Recorder()
    feed.on_state = recorder.states.append
    return feed, recorder


async def test_each_public_trade_since_the_start_is_a_tick_with_its_size(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    exchange.print_trades(3)  # before the start: history, not ticks
    clock.advance(1)
    feed, sink = make_feed(binance, clock)
    await feed.poll(sink)
    assert sink.ticks == []
    clock.advance(1)
    exchange.print_trades(2)
    await feed.poll(sink)
    tape = [t for t in exchange.tape if t.time_ms >= (START + 2) * 1000]
    expected = sorted(
        (Tick(f"{t.symbol[:-4]}/USDT", t.price, t.qty, t.time_ms / 1000) for t in tape),
        key=lambda tick: tick.ts,
    )
    assert len(sink.ticks) == 4
    assert sorted(sink.ticks, key=repr) == sorted(expected, key=repr)
    assert [s.condition for s in sink.states] == [FeedCondition.LIVE]
    await feed.poll(sink)  # nothing new: no tick twice
    assert len(sink.ticks) == 4


async def test_the_accounts_own_fills_are_on_the_tape_too(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock)
    await feed.poll(sink)
    # ccxt signs with the machine's clock: the loopback's runs on it for the order.
    exchange.skew_ms = int((time.time() - clock.now()) * 1000)
    await binance.create_order("BTC/USDT", "market", "buy", 0.01)
    await feed.poll(sink)
    [tick] = sink.ticks
    assert (tick.symbol, tick.size, tick.price) == ("BTC/USDT", 0.01, exchange.prices["BTCUSDT"])


async def test_a_full_page_is_followed_at_once_by_the_next(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    exchange.print_trades()  # the first poll starts from the last trade before the start
    clock.advance(1)
    feed, sink = make_feed(binance, clock, trades_per_poll=3)
    await feed.poll(sink)
    exchange.print_trades(4)  # 4 trades per symbol: a full page of 3, then 1
    assert await feed.poll(sink) is True
    assert await feed.poll(sink) is False
    assert len(sink.ticks) == 8


async def test_the_ticker_source_gives_the_last_price_when_it_changes(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, source="ticker")
    await feed.poll(sink)
    assert {(t.symbol, t.price, t.size) for t in sink.ticks} == {
        ("BTC/USDT", 30_000.0, 0.0),
        ("ETH/USDT", 2_000.0, 0.0),
    }
    await feed.poll(sink)
    assert len(sink.ticks) == 2  # nothing moved
    clock.advance(1)
    exchange.set_price("BTC/USDT", 30_100.0)
    await feed.poll(sink)
    assert sink.ticks[-1] == Tick("BTC/USDT", 30_100.0, 0.0, START + 1)


async def test_a_venue_clock_ahead_never_stamps_a_tick_in_the_future(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock)
    await feed.poll(sink)
    exchange.skew_ms = 5_000
    exchange.print_trades()
    await feed.poll(sink)
    assert sink.ticks and all(t.ts == START for t in sink.ticks)


async def test_errors_back_off_exponentially_and_an_answer_resets_it(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, max_backoff_seconds=5.0)
    await feed.poll(sink)
    assert feed.backoff() == 1.0
    await exchange.go_down()
    waits = []
    for _ in range(4):
        await feed.poll(sink)
        waits.append(feed.backoff())
    assert waits == [2.0, 4.0, 5.0, 5.0]
    await exchange.come_back()
    await feed.poll(sink)
    assert (feed.failures, feed.backoff()) == (0, 1.0)


async def test_the_venue_down_opens_a_gap_and_its_return_ends_it_with_the_missed_trades(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, gap_intervals=3)
    await feed.poll(sink)
    await exchange.go_down()
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            clock.advance(1)
            await feed.poll(sink)
        assert sink.states[-1].condition is FeedCondition.LIVE  # 3 s silent: not yet
        clock.advance(1)
        await feed.poll(sink)
        gap = sink.states[-1]
        assert gap.condition is FeedCondition.GAP
        assert gap.since == START and gap.last_data == START
        assert "venue main cannot be reached" in (gap.reason or "")
        exchange.print_trades(2)  # while the daemon cannot see them
        await exchange.come_back()
        clock.advance(1)
        await feed.poll(sink)
    assert sink.states[-1] == FeedState(
        "ccxt", "main", FeedCondition.LIVE, START + 5, None, START + 5
    )
    assert len(sink.ticks) == 4  # the trades of the gap, read from the last id seen
    events = [entry for entry in logs if entry["event"].startswith("market_feed_")]
    assert [e["event"] for e in events if e["event"] != "market_feed_request_failed"] == [
        "market_feed_gap",
        "market_feed_recovered",
    ]
    recovered = events[-1]
    assert (recovered["gap_seconds"], recovered["ticks_caught_up"]) == (5.0, 4)


async def test_a_symbol_the_venue_does_not_list_is_a_gap_of_that_symbol_only(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT", "DOGE/USDT"), gap_intervals=2)
    feed = CcxtFeed(config, clock)
    feed.attach(binance)
    states: list[FeedState] = []
    feed.on_state = states.append
    ticks: list[Tick] = []
    await feed.poll(ticks.append)
    clock.advance(1)
    exchange.print_trades()
    clock.advance(2)
    await feed.poll(ticks.append)
    assert [t.symbol for t in ticks] == ["BTC/USDT"]
    [gap] = states
    assert gap.condition is FeedCondition.GAP
    assert (gap.reason or "").startswith("DOGE/USDT: venue main has no such market")


async def test_a_venue_that_never_answers_goes_from_connecting_to_a_gap(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    await exchange.go_down()
    feed, sink = make_feed(binance, clock, gap_intervals=2)
    assert feed.state.condition is FeedCondition.CONNECTING
    await feed.poll(sink)
    assert sink.states == []
    clock.advance(3)
    await feed.poll(sink)
    assert [s.condition for s in sink.states] == [FeedCondition.GAP]
    assert sink.states[0].last_data is None


def test_the_feed_must_read_a_configured_venue() -> None:
    feed = {"kind": "ccxt", "venue": "elsewhere", "symbols": ["BTC/USDT"]}
    with pytest.raises(ValidationError, match="reads venue 'elsewhere', which is not in"):
        test_config(market_data={"feed": feed}, venues={"main": {"exchange": "binance"}})


def test_the_core_does_not_build_a_ccxt_feed() -> None:
    config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT",))
    with pytest.raises(FeedError, match="built by the daemon"):
        build_feed(config, ManualClock(START))
