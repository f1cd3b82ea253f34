"""NNG ingest: ticks and bars pushed by another process, into the strategies."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateways.client.nng_client import TickPublisher
from gateways.config import DaemonConfig, NngBusConfig, load_config
from gateways.nng.feed import Malformed, NngFeed, TickDecoder
from orchestrator.marketdata.config import NngFeedConfig, RecordingConfig
from orchestrator.marketdata.feeds import ohlcv_ticks
from orchestrator.marketdata.history import recorded_ticks
from orchestrator.marketdata.hub import MarketData
from orchestrator.model.clock import ManualClock
from orchestrator.model.errors import ConfigError
from orchestrator.model.market import Bar, Tick
from tests.gateways.nng.nng_support import until
from tests.support import START, TestDaemon, running_daemon, test_config

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")


def feed_config(tmp_path: Path, **feed: Any) -> DaemonConfig:
    address = f"ipc://{tmp_path}/ingest.ipc"
    return test_config(
        market_data={"feed": {"kind": "nng", "address": address, "symbols": SYMBOLS, **feed}}
    )


@asynccontextmanager
async def running_feed(daemon: TestDaemon) -> AsyncIterator[NngFeed]:
    """The feed task, which the test daemon does not run by itself."""
    feed = daemon.daemon.feed
    assert feed is not None
    task = asyncio.create_task(daemon.daemon.core.market.run_feed(), name="market-data-feed")
    try:
        yield feed
        assert not task.done(), "the feed stopped"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ticks_received(market: MarketData, count: int) -> None:
    await until(lambda: market.ticks_received == count)


# ---------------------------------------------------------------- decoding


def decoder(**config: Any) -> TickDecoder:
    return TickDecoder(NngFeedConfig(symbols=SYMBOLS, **config), ManualClock(START))


def message(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def test_a_tick_without_timestamp_is_stamped_on_arrival() -> None:
    decoded = decoder().decode(message(type="tick", symbol="AAPL", price=190.5, size=3))
    assert decoded == [Tick("AAPL", 190.5, 3.0, START)]


def test_timestamps_are_epoch_seconds_or_iso() -> None:
    iso = "2023-11-14T22:12:00Z"  # START - 60
    rows = [["AAPL", 1, 1, START - 1], ["MSFT", 2, 0, iso], ["GOOG", 3, 5]]
    decoded = decoder().decode(message(type="ticks", ticks=rows))
    assert decoded == [
        Tick("AAPL", 1.0, 1.0, START - 1),
        Tick("MSFT", 2.0, 0.0, START - 60),
        Tick("GOOG", 3.0, 5.0, START),
    ]
    naive = decoder().decode(
        message(type="tick", symbol="AAPL", price=1, size=1, timestamp="2023-11-14T22:12:00")
    )
    assert naive[0].ts == START - 60


def test_a_bar_enters_as_its_four_replay_ticks() -> None:
    fields = {"open": 10.0, "high": 12.0, "low": 9.0, "close": 11.0, "volume": 100.0}
    decoded = decoder().decode(
        message(type="bar", symbol="AAPL", resolution="1m", timestamp=START - 60, **fields)
    )
    bar = Bar("AAPL", "1m", START - 60, 10.0, 12.0, 9.0, 11.0, 100.0, 4)
    assert decoded == list(ohlcv_ticks(bar))
    assert [t.price for t in decoded] == [10.0, 9.0, 12.0, 11.0]


GOOD_BAR = {
    "type": "bar",
    "symbol": "AAPL",
    "resolution": "1m",
    "timestamp": START - 60,
    "open": 10.0,
    "high": 12.0,
    "low": 9.0,
    "close": 11.0,
    "volume": 100.0,
}
GOOD_TICK = {"type": "tick", "symbol": "AAPL", "price": 1.0, "size": 1.0}

MALFORMED: list[tuple[str, bytes]] = [
    ("invalid_json", b"not json"),
    ("invalid_json", b'{"type": "tick", "symbol": "AAPL", "price": NaN, "size": 1}'),
    ("not_an_object", b"[1, 2]"),
    ("unknown_type", message(type="quote", symbol="AAPL")),
    ("unknown_type", message(symbol="AAPL", price=1, size=1)),
    ("missing_field", message(type="tick", symbol="AAPL", price=1)),
    ("unknown_field", message(**GOOD_TICK, venue="X")),
    ("unknown_symbol", message(**{**GOOD_TICK, "symbol": "NOPE"})),
    ("unknown_symbol", message(**{**GOOD_TICK, "symbol": ["AAPL"]})),
    ("bad_price", message(**{**GOOD_TICK, "price": -1})),
    ("bad_price", message(**{**GOOD_TICK, "price": 0})),
    ("bad_price", message(**{**GOOD_TICK, "price": "1"})),
    ("bad_price", message(**{**GOOD_TICK, "price": True})),
    ("bad_price", message(**{**GOOD_TICK, "price": 1e13})),
    ("bad_size", message(**{**GOOD_TICK, "size": -1})),
    ("bad_size", message(**{**GOOD_TICK, "size": False})),
    ("bad_size", message(**{**GOOD_TICK, "size": "1"})),
    ("bad_size", message(**{**GOOD_TICK, "size": None})),
    ("invalid_json", b'{"type": "tick", "symbol": "AAPL", "price": 1, "size": 1e400}'),
    ("bad_timestamp", message(**GOOD_TICK, timestamp="yesterday")),
    ("bad_timestamp", message(**GOOD_TICK, timestamp=START * 1000)),
    ("future_timestamp", message(**GOOD_TICK, timestamp=START + 60)),
    ("bad_batch", message(type="ticks", ticks=[])),
    ("bad_batch", message(type="ticks", ticks=[["AAPL", 1]])),
    ("bad_batch", message(type="ticks", ticks={"AAPL": 1})),
    ("too_many_ticks", message(type="ticks", ticks=[["AAPL", 1, 1]] * 11)),
    ("bad_price", message(type="ticks", ticks=[["AAPL", 1, 1], ["AAPL", -1, 1]])),
    ("bad_bar", message(**{**GOOD_BAR, "high": 10.5})),
    ("bad_bar", message(**{**GOOD_BAR, "timestamp": START - 59})),
    ("bad_resolution", message(**{**GOOD_BAR, "resolution": "7m"})),
    ("future_timestamp", message(**{**GOOD_BAR, "timestamp": START})),  # not closed yet
    ("missing_field", message(**{k: v for k, v in GOOD_BAR.items() if k != "volume"})),
]


@pytest.mark.parametrize(("reason", "raw"), MALFORMED, ids=[r for r, _ in MALFORMED])
def test_malformed_messages_are_refused_with_a_reason(reason: str, raw: bytes) -> None:
    with pytest.raises(Malformed) as caught:
        decoder(max_ticks_per_message=10).decode(raw)
    assert caught.value.reason == reason


# ---------------------------------------------------------------- through a daemon


async def test_pushed_ticks_reach_a_strategy(tmp_path: Path) -> None:
    config = feed_config(tmp_path)
    async with (
        running_daemon(config) as daemon,
        running_feed(daemon) as feed,
        daemon.client() as client,
    ):
        market = daemon.daemon.core.market
        reply = await client.request({"type": "start_strategy", "id": "strategy-123"})
        assert reply["type"] == "strategy_started"
        with TickPublisher(feed.address) as ticks:
            for step in range(12):  # one tick per symbol per second, rising
                daemon.advance(1.0)
                rows = [("AAPL", 100.0 + step, 1.0), ("MSFT", 200.0 + step, 1.0)]
                await asyncio.to_thread(ticks.send_ticks, rows)
                await ticks_received(market, 2 * (step + 1))
        signal = await client.recv_type("strategy_signal")
        assert (signal["data"]["strategyId"], signal["data"]["action"]) == ("strategy-123", "BUY")
        trade = await client.recv_type("strategy_trade")
        assert trade["data"]["status"] == "FILLED"
        assert market.last_tick("AAPL") == Tick("AAPL", 111.0, 1.0, daemon.clock.now())
        assert not feed.malformed


async def test_malformed_input_is_counted_and_dropped_while_good_ticks_flow(
    tmp_path: Path,
) -> None:
    config = feed_config(tmp_path, max_ticks_per_message=10, max_message_bytes=1024)
    bad = [*MALFORMED, ("oversized", message(type="ticks", ticks=[["AAPL", 1.5, 1]] * 200))]
    async with running_daemon(config) as daemon, running_feed(daemon) as feed:
        market = daemon.daemon.core.market
        with TickPublisher(feed.address) as ticks:
            for number, (_, raw) in enumerate(bad):
                await asyncio.to_thread(ticks.send_raw, raw)
                await asyncio.to_thread(ticks.send_tick, "MSFT", 400.0 + number, 1.0)
            await asyncio.to_thread(ticks.send_raw, orjson.dumps(GOOD_BAR))
            await until(lambda: market.ticks_received == len(bad) + 4)

        assert feed.malformed == Counter(reason for reason, _ in bad)
        assert feed.messages == 2 * len(bad) + 1
        assert feed.ticks == market.ticks_received
        assert market.last_tick("MSFT") == Tick("MSFT", 400.0 + len(bad) - 1, 1.0, START)
        assert market.last_tick("AAPL") == Tick("AAPL", 11.0, 25.0, START - 15)


async def test_every_tick_of_a_fast_sender_arrives_in_order(tmp_path: Path) -> None:
    """Far more than the daemon's buffers hold: the sender waits, nothing is lost."""
    config = feed_config(tmp_path)
    count = 20_000
    prices = [100.0 + (i % 1000) / 100 for i in range(count)]
    async with running_daemon(config) as daemon, running_feed(daemon) as feed:
        market = daemon.daemon.core.market
        seen: list[float] = []
        market.on_tick(lambda tick: seen.append(tick.price))
        with TickPublisher(feed.address, batch=100) as ticks:
            rows = [("AAPL", price, 1.0) for price in prices[: count // 2]]
            await asyncio.to_thread(ticks.send_ticks, rows)

            def one_by_one() -> None:
                for price in prices[count // 2 :]:
                    ticks.send_tick("AAPL", price, 1.0)

            await asyncio.to_thread(one_by_one)
            await until(lambda: market.ticks_received == count)
    assert seen == prices


async def test_pushed_ticks_and_bars_are_recorded_as_the_ticks_they_became(tmp_path: Path) -> None:
    config = feed_config(tmp_path).model_copy(
        update={"recording": RecordingConfig(enabled=True, directory=tmp_path / "recording")}
    )
    async with running_daemon(config) as daemon, running_feed(daemon) as feed:
        market = daemon.daemon.core.market
        with TickPublisher(feed.address) as ticks:
            await asyncio.to_thread(ticks.send_tick, "MSFT", 401.5, 2.0)
            await asyncio.to_thread(ticks.send_raw, orjson.dumps(GOOD_BAR))
            await ticks_received(market, 5)
    # The daemon has stopped: what it buffered is on disk.
    recorded = recorded_ticks(tmp_path / "recording" / "ticks", "AAPL")
    assert recorded == list(ohlcv_ticks(Bar("AAPL", "1m", START - 60, 10, 12, 9, 11, 100, 4)))
    [msft] = recorded_ticks(tmp_path / "recording" / "ticks", "MSFT")
    assert msft == Tick("MSFT", 401.5, 2.0, START)


# ---------------------------------------------------------------- config


def test_a_config_file_selects_the_nng_feed(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text('[market_data.feed]\nkind = "nng"\nsymbols = ["AAPL"]\n', encoding="utf-8")
    feed = load_config(path).market_data.feed
    assert feed == NngFeedConfig(symbols=("AAPL",))
    path.write_text('[market_data.feed]\nkind = "nng"\ndrift = 0.1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    # drift is a synthetic feed's key: the nng feed's own keys are offered instead.
    assert problem.startswith("market_data.feed.drift: unknown key; expected one of address, ")
    assert problem.endswith(" (line 3)")


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("ipc://relative.ipc", "absolute path"),
        ("ipc:///" + "x" * 120, "longer than 103 bytes"),
        ("tcp://127.0.0.1", "port from 1 to 65535"),
        ("tcp://10.1.2.3:5555", "reachable beyond this machine"),
        ("inproc://feed", "ipc:///absolute/path or tcp://host:port"),
    ],
)
def test_nng_addresses_are_checked(address: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        NngFeedConfig(address=address)
    with pytest.raises(ValidationError, match=problem):
        NngBusConfig(publish_address=address)


def test_remote_addresses_need_an_explicit_yes() -> None:
    assert NngFeedConfig(address="tcp://0.0.0.0:5555", allow_remote=True).address
    assert NngBusConfig(publish_address="tcp://[::1]:5556").publish_address


def test_default_addresses_live_in_the_runtime_directory() -> None:
    nng = NngBusConfig()
    assert nng.resolved_publish_address({"RUNTIME_DIRECTORY": "/run/orchestrator"}) == (
        "ipc:///run/orchestrator/events.ipc"
    )
    xdg = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert nng.default_ingest_address(xdg) == "ipc:///run/user/1000/orchestrator/ingest.ipc"
    assert NngBusConfig(runtime_dir=Path("/srv/x")).resolved_publish_address({}) == (
        "ipc:///srv/x/events.ipc"
    )


def test_ingest_and_publish_need_their_own_addresses() -> None:
    address = "ipc:///tmp/same.ipc"
    with pytest.raises(ValidationError, match="need their own addresses"):
        DaemonConfig(
            market_data={"feed": {"kind": "nng", "address": address}},
            nng={"publish_address": address},
        )
