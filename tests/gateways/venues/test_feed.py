"""The ccxt feed against the loopback exchange, through ccxt's unmodified binance class:
each poll driven by the test on a manual clock (the loopback's clock too), so every
tick, backoff and gap is deterministic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import ccxt.async_support as ccxt
import pytest
import structlog
from aiohttp import web
from pydantic import ValidationError

from gateways.venues.config import VenueConfig
from gateways.venues.connector import build_stream_exchange
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
from tests.venues.test_loopback_streams import pro_binance

START = 1_700_000_000.0
BTC = LoopbackMarket("BTC", "USDT", 30_000.0)
ETH = LoopbackMarket("ETH", "USDT", 2_000.0)
WAIT = 30.0
"""Generous: a loaded 2-core machine may take seconds where an idle one takes 0.1 s."""


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
        self._changed = asyncio.Event()

    def __call__(self, tick: Tick) -> None:
        self.ticks.append(tick)
        self._changed.set()

    def state(self, state: FeedState) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition`` holds, checked at each tick and state the feed delivers."""
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def make_feed(
    binance: ccxt.binance, clock: ManualClock, **settings: Any
) -> tuple[CcxtFeed, Recorder]:
    settings = {"interval_seconds": 1.0, **settings}
    config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT", "ETH/USDT"), **settings)
    feed = CcxtFeed(config, clock)
    feed.attach(binance)
    recorder = Recorder()
    feed.on_state = recorder.state
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


# ------------------------------------------------------------ streaming (ccxt.pro)
# The feed runs on the loop's own sleep (its polls and backoffs are short) and the test's
# manual clock (ticks stamped START); the loopback pushes each trade it prints.

STREAMING = {"interval_seconds": 0.05, "max_backoff_seconds": 0.2, "gap_intervals": 3}


@contextlib.asynccontextmanager
async def running(feed: CcxtFeed, sink: Recorder) -> AsyncIterator[None]:
    task = asyncio.create_task(feed.run(sink))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def print_until(
    exchange: LoopbackExchange, sink: Recorder, done: Callable[[], bool], per_round: int = 2
) -> None:
    """Print rounds of trades, each once its ``per_round`` ticks reached the sink
    (one per symbol of the feed), until ``done``."""
    for _ in range(200):
        if done():
            return
        expected = len(sink.ticks) + per_round
        exchange.print_trades()
        await sink.until(lambda: len(sink.ticks) >= expected)  # noqa: B023
    raise AssertionError("never done")


def the_tape_since(exchange: LoopbackExchange, start_ms: float) -> list[Tick]:
    """The public trades printed since ``start_ms``, as the feed's ticks, by id."""
    return [
        Tick(f"{t.symbol[:-4]}/USDT", t.price, t.qty, t.time_ms / 1000)
        for t in sorted(exchange.tape, key=lambda t: t.trade_id)
        if t.time_ms >= start_ms
    ]


def by_symbol(ticks: list[Tick]) -> dict[str, list[Tick]]:
    return {s: [t for t in ticks if t.symbol == s] for s in ("BTC/USDT", "ETH/USDT")}


def aggtrades(exchange: LoopbackExchange) -> int:
    return exchange.requests.count(("GET", "aggTrades"))


async def test_streamed_trades_are_ticks_and_a_dropped_stream_loses_or_doubles_none(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=lambda: pro_binance(exchange))
    with structlog.testing.capture_logs() as logs:
        async with running(feed, sink):
            await print_until(exchange, sink, lambda: feed.streaming)
            assert exchange.streams.subscriptions == [["btcusdt@aggTrade", "ethusdt@aggTrade"]]
            polls = aggtrades(exchange)
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 10)
            assert aggtrades(exchange) == polls  # streamed: no poll while it is up
            await exchange.drop_streams()
            await sink.until(lambda: sink.states[-1].condition is FeedCondition.GAP)
            gap = sink.states[-1]
            assert (gap.reason or "").startswith("trade stream down, polling REST")
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 16)  # by REST
            assert not feed.streaming and feed.stream_failures >= 1
            exchange.restore_streams()
            await print_until(exchange, sink, lambda: feed.streaming)
            await sink.until(lambda: sink.states[-1].condition is FeedCondition.LIVE)
            polls, target = aggtrades(exchange), len(sink.ticks) + 4
            await print_until(exchange, sink, lambda: len(sink.ticks) >= target)
            assert aggtrades(exchange) == polls  # the stream took over again
    assert by_symbol(sink.ticks) == by_symbol(the_tape_since(exchange, START * 1000))
    assert feed.stream_failures == 0
    events = [e["event"] for e in logs if e["event"].startswith("market_feed_")]
    assert "market_feed_stream_down" in events
    assert events[-2:] == ["market_feed_streaming", "market_feed_recovered"]
    assert events.count("market_feed_gap") == 1


async def test_trades_made_while_the_venue_is_away_are_read_once_when_it_is_back(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=lambda: pro_binance(exchange))
    async with running(feed, sink):
        await print_until(exchange, sink, lambda: feed.streaming)
        await print_until(exchange, sink, lambda: len(sink.ticks) >= 6)  # streamed
        await exchange.go_down()  # REST and stream away: nothing reads these
        await sink.until(lambda: sink.states[-1].condition is FeedCondition.GAP)
        exchange.print_trades(3)
        await exchange.come_back()
        await sink.until(lambda: len(sink.ticks) >= len(exchange.tape))
        await print_until(exchange, sink, lambda: feed.streaming)
        await sink.until(lambda: sink.states[-1].condition is FeedCondition.LIVE)
    assert by_symbol(sink.ticks) == by_symbol(the_tape_since(exchange, START * 1000))


async def test_an_exchange_without_a_trade_stream_is_polled(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    def without_watch() -> Any:
        streams = pro_binance(exchange)
        streams.has = {**streams.has, "watchTrades": False, "watchTradesForSymbols": False}
        return streams

    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=without_watch)
    with structlog.testing.capture_logs() as logs:
        async with running(feed, sink):
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 4)
    assert not feed.streaming and exchange.streams.connections_opened == 0
    assert aggtrades(exchange) >= 2
    assert by_symbol(sink.ticks) == by_symbol(the_tape_since(exchange, START * 1000))
    assert "market_feed_polling" in [e["event"] for e in logs]


async def test_stream_off_polls_even_where_the_exchange_streams(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    feed, sink = make_feed(binance, clock, stream="off", **STREAMING)
    feed.attach(binance, stream=lambda: pro_binance(exchange))
    async with running(feed, sink):
        await print_until(exchange, sink, lambda: len(sink.ticks) >= 4)
    assert not feed.streaming and exchange.streams.connections_opened == 0


async def test_a_watch_per_symbol_where_the_exchange_has_no_watch_for_symbols(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    def one_by_one() -> Any:
        streams = pro_binance(exchange)
        streams.has = {**streams.has, "watchTradesForSymbols": False}
        return streams

    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=one_by_one)
    async with running(feed, sink):
        await print_until(exchange, sink, lambda: feed.streaming)
        await print_until(exchange, sink, lambda: len(sink.ticks) >= 10)
    assert sorted(exchange.streams.subscriptions) == [["btcusdt@aggTrade"], ["ethusdt@aggTrade"]]
    assert by_symbol(sink.ticks) == by_symbol(the_tape_since(exchange, START * 1000))


async def test_an_exchange_the_channel_table_does_not_list_streams_ccxt_pros_default(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    def unlisted() -> Any:
        streams = pro_binance(exchange)
        streams.id = "notbinance"  # STREAM_PARAMS names no channel for it
        return streams

    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=unlisted)
    async with running(feed, sink):
        await print_until(exchange, sink, lambda: feed.streaming)
    assert exchange.streams.subscriptions == [["btcusdt@trade", "ethusdt@trade"]]


async def test_a_stream_exchange_that_cannot_be_built_is_logged_and_the_feed_polls(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    venue = VenueConfig(exchange="binance", stream_urls={"spott": exchange.ccxt_ws_urls()["spot"]})
    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=lambda: build_stream_exchange("main", venue))
    with structlog.testing.capture_logs() as logs:
        async with running(feed, sink):
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 4)
    [error] = [e for e in logs if e["event"] == "market_feed_stream_unavailable"]
    assert "stream_urls names spott" in error["error"]
    assert not feed.streaming and exchange.streams.connections_opened == 0


async def test_a_symbol_the_venue_does_not_list_is_a_gap_while_the_others_stream(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT", "DOGE/USDT"), **STREAMING)
    feed, sink = CcxtFeed(config, clock), Recorder()
    feed.attach(binance, stream=lambda: pro_binance(exchange))
    feed.on_state = sink.state
    async with running(feed, sink):
        await print_until(exchange, sink, lambda: feed.streaming, per_round=1)
        clock.advance(1)  # DOGE silent for longer than the gap threshold
        await print_until(exchange, sink, lambda: len(sink.ticks) >= 10, per_round=1)
    assert exchange.streams.subscriptions[-1] == ["btcusdt@aggTrade"]
    assert {t.symbol for t in sink.ticks} == {"BTC/USDT"}
    gap = sink.states[-1]
    assert gap.condition is FeedCondition.GAP
    assert (gap.reason or "").startswith("DOGE/USDT: venue main has no such market")


class HeldStream:
    """ccxt.pro's binance on the loopback with a small ``tradesLimit``, whose watch the
    test can hold: the feed does not wake while it is held, and ccxt.pro keeps filling
    its cache (evicting the oldest) meanwhile, as when the feed's loop is busy."""

    def __init__(self, exchange: LoopbackExchange, trades_limit: int) -> None:
        self.streams = pro_binance(exchange)
        self.streams.options["tradesLimit"] = trades_limit
        self.held = False
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()
        watch, handle = self.streams.watch_trades_for_symbols, self.streams.handle_trade

        async def held_watch(symbols: list[str], **settings: Any) -> Any:
            trades = await watch(symbols, **settings)
            while self.held:
                await self._released.wait()
            return trades

        def noticed_trade(client: Any, message: Any) -> None:
            handle(client, message)
            self._arrived.set()

        self.streams.watch_trades_for_symbols = held_watch
        self.streams.handle_trade = noticed_trade

    def hold(self) -> None:
        self.held = True
        self._released.clear()

    def release(self) -> None:
        self.held = False
        self._released.set()

    async def until_cached(self, symbol: str, agg_id: int) -> None:
        """Until ccxt.pro's cache of ``symbol`` holds the trade of aggregate id ``agg_id``
        (the feed streams Binance's @aggTrade)."""
        async with asyncio.timeout(WAIT):
            while agg_id not in [int(t["id"]) for t in self.streams.trades.get(symbol) or []]:
                self._arrived.clear()
                await self._arrived.wait()


async def overflow_the_cache(
    exchange: LoopbackExchange, held: HeldStream, sink: Recorder, rounds: int
) -> None:
    """Print ``rounds`` trades per market while the feed is held, then let it wake once."""
    held.hold()
    exchange.print_trades(rounds)
    for market in exchange.markets.values():
        last = max(t.agg_id for t in exchange.tape if t.symbol == market.id)
        await held.until_cached(f"{market.base}/{market.quote}", last)
    held.release()
    last_tick = the_tape_since(exchange, START * 1000)[-1]
    await sink.until(lambda: bool(sink.ticks) and sink.ticks[-1] == last_tick)


async def test_trades_a_burst_pushed_out_of_the_stream_cache_are_read_again_by_rest(
    clock: ManualClock,
) -> None:
    # One market: its aggregate ids are consecutive, as Binance numbers each symbol's.
    async with LoopbackExchange(
        KEY, SECRET, [BTC], {"USDT": 1e6}, seed=3, clock=clock.now
    ) as venue:
        binance = plain_binance(venue, timeout=1_000)
        held = HeldStream(venue, trades_limit=5)
        config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT",), **STREAMING)
        feed, sink = CcxtFeed(config, clock), Recorder()
        feed.attach(binance, stream=lambda: held.streams)
        feed.on_state = sink.state
        try:
            with structlog.testing.capture_logs() as logs:
                async with running(feed, sink):
                    await print_until(venue, sink, lambda: feed.streaming, per_round=1)
                    polls = aggtrades(venue)
                    await print_until(venue, sink, lambda: len(sink.ticks) >= 8, per_round=1)
                    assert aggtrades(venue) == polls  # consecutive ids: no loss, no re-read
                    await overflow_the_cache(venue, held, sink, rounds=12)
                    re_read = aggtrades(venue) - polls
                    await print_until(venue, sink, lambda: len(sink.ticks) >= 24, per_round=1)
        finally:
            await binance.close()
    assert sink.ticks == the_tape_since(venue, START * 1000)  # each id once, in order
    assert re_read >= 1
    [overflow] = [e for e in logs if e["event"] == "market_feed_stream_overflow"]
    assert overflow["symbol"] == "BTC/USDT" and overflow["rule"] == "consecutive ids"
    assert overflow["re_read"] >= 12 - 5 and overflow["complete"] is True
    assert overflow["first_cached_id"] - overflow["last_seen_id"] == 12 - 5 + 1


async def test_a_full_stream_cache_past_the_last_trade_seen_is_read_again_where_ids_skip(
    exchange: LoopbackExchange, binance: ccxt.binance, clock: ManualClock
) -> None:
    # Two markets: the loopback numbers trades across them, so a symbol's ids skip.
    held = HeldStream(exchange, trades_limit=5)
    feed, sink = make_feed(binance, clock, **STREAMING)
    feed.attach(binance, stream=lambda: held.streams)
    with structlog.testing.capture_logs() as logs:
        async with running(feed, sink):
            await print_until(exchange, sink, lambda: feed.streaming)
            polls = aggtrades(exchange)
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 14)
            assert aggtrades(exchange) == polls  # the caches filled, never past the last seen
            await overflow_the_cache(exchange, held, sink, rounds=9)
            await print_until(exchange, sink, lambda: len(sink.ticks) >= 40)
    assert by_symbol(sink.ticks) == by_symbol(the_tape_since(exchange, START * 1000))
    overflows = [e for e in logs if e["event"] == "market_feed_stream_overflow"]
    assert sorted(e["symbol"] for e in overflows) == ["BTC/USDT", "ETH/USDT"]
    assert {e["rule"] for e in overflows} == {"full cache"}
    assert all(e["re_read"] >= 9 - 5 for e in overflows)


async def test_a_re_read_that_fails_keeps_the_cached_trades_for_the_next_wake(
    clock: ManualClock,
) -> None:
    async with LoopbackExchange(
        KEY, SECRET, [BTC], {"USDT": 1e6}, seed=4, clock=clock.now
    ) as venue:
        binance = plain_binance(venue, timeout=1_000)
        held = HeldStream(venue, trades_limit=4)
        config = CcxtFeedConfig(venue="main", symbols=("BTC/USDT",), **STREAMING)
        feed, sink = CcxtFeed(config, clock), Recorder()
        feed.attach(binance, stream=lambda: held.streams)
        refused = asyncio.Event()

        def refuse_one_read(method: str, endpoint: str) -> None:
            if endpoint == "aggTrades" and not refused.is_set():
                refused.set()
                raise web.HTTPServiceUnavailable()

        try:
            with structlog.testing.capture_logs() as logs:
                async with running(feed, sink):
                    await print_until(venue, sink, lambda: len(sink.ticks) >= 4, per_round=1)
                    await sink.until(lambda: feed.streaming)
                    venue.on_request = refuse_one_read
                    held.hold()
                    venue.print_trades(10)
                    await held.until_cached("BTC/USDT", venue.tape[-1].agg_id)
                    held.release()
                    async with asyncio.timeout(WAIT):
                        await refused.wait()
                    await print_until(venue, sink, lambda: len(sink.ticks) >= 16, per_round=1)
        finally:
            await binance.close()
    assert sink.ticks == the_tape_since(venue, START * 1000)  # each id once, in order
    overflows = [e for e in logs if e["event"] == "market_feed_stream_overflow"]
    assert [e["complete"] for e in overflows] == [False, True]
    assert overflows[0]["re_read"] == 0 and overflows[1]["re_read"] >= 10 - 4
