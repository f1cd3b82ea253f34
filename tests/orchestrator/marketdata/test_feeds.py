"""Market data sources: the synthetic random walk and the CSV replay."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from orchestrator.marketdata.bars import aggregate
from orchestrator.marketdata.config import CsvReplayFeedConfig, FeedConfig, SyntheticFeedConfig
from orchestrator.marketdata.feeds import (
    MAX_SPEED_YIELD_EVERY,
    MAX_SYNTHETIC_LAG_SECONDS,
    CsvReplayFeed,
    FeedError,
    SyntheticFeed,
    build_feed,
    ohlcv_ticks,
    replay_bars,
)
from orchestrator.marketdata.history import load_ohlcv, write_parquet
from orchestrator.model.clock import ManualClock
from orchestrator.model.market import Bar, Tick

START = 1_700_000_000.0  # 20 s past a whole minute


class FeedStopped(Exception):
    """Raised by the fake sleep to end an endless feed at a chosen time."""


class FakeSleep:
    """Sleeps by advancing the manual clock; records every delay it was asked for."""

    def __init__(self, clock: ManualClock, stop_at: float = math.inf) -> None:
        self.clock = clock
        self.stop_at = stop_at
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock.now() + delay > self.stop_at:
            raise FeedStopped
        self.clock.advance(delay)


async def run_synthetic(feed: SyntheticFeed, sleep: FakeSleep) -> list[Tick]:
    received: list[Tick] = []
    with pytest.raises(FeedStopped):
        await feed.run(received.append)
    return received


def synthetic(clock: ManualClock, **overrides: object) -> SyntheticFeed:
    config = SyntheticFeedConfig.model_validate(overrides)
    return SyntheticFeed(config, clock, FakeSleep(clock))


def prices(ticks: list[Tick], symbol: str) -> list[float]:
    return [t.price for t in ticks if t.symbol == symbol]


# --------------------------------------------------------------------------- synthetic


def test_same_seed_and_start_give_the_same_ticks() -> None:
    first = synthetic(ManualClock(START), seed=11)
    second = synthetic(ManualClock(START), seed=11)

    assert first.history(START) == second.history(START)
    assert list(first.ticks(START, START + 30)) == list(second.ticks(START, START + 30))


def test_a_different_seed_gives_a_different_path() -> None:
    first = synthetic(ManualClock(START), seed=11)
    second = synthetic(ManualClock(START), seed=12)

    assert prices(first.history(START), "AAPL") != prices(second.history(START), "AAPL")


def test_a_symbols_path_does_not_depend_on_the_others() -> None:
    alone = synthetic(ManualClock(START), symbols={"AAPL": 190.0})
    together = synthetic(ManualClock(START), symbols={"MSFT": 420.0, "AAPL": 190.0, "X": 1.0})

    assert prices(alone.history(START), "AAPL") == prices(together.history(START), "AAPL")


def test_history_covers_the_configured_window_on_the_tick_grid() -> None:
    feed = synthetic(ManualClock(START), history_seconds=60, ticks_per_second=4)

    history = feed.history(START)

    assert len(history) == 60 * 4 * len(feed.symbols)
    assert [t.ts for t in history] == sorted(t.ts for t in history)
    assert history[0].ts == START - 60
    assert max(t.ts for t in history) == START - 0.25
    assert all(t.size == int(t.size) and 1 <= t.size <= 100 for t in history)
    # The path starts at the configured prices.
    assert {t.symbol: t.price for t in history[: len(feed.symbols)]} == dict(feed.config.symbols)


async def test_history_then_run_is_one_continuous_path() -> None:
    clock = ManualClock(START)
    sleep = FakeSleep(clock, stop_at=START + 10)
    feed = SyntheticFeed(SyntheticFeedConfig(history_seconds=20), clock, sleep)

    history = feed.history(clock.now())
    live = await run_synthetic(feed, sleep)

    assert live[0].ts == START
    assert history + live == list(feed.ticks(START - 20, START + 10.1))


async def test_run_emits_each_tick_when_the_clock_reaches_it() -> None:
    clock = ManualClock(START + 0.05)
    sleep = FakeSleep(clock, stop_at=START + 5)
    feed = SyntheticFeed(SyntheticFeedConfig(ticks_per_second=5), clock, sleep)
    emitted_at: list[tuple[float, float]] = []

    with pytest.raises(FeedStopped):
        await feed.run(lambda tick: emitted_at.append((tick.ts, clock.now())))

    assert emitted_at[0][0] == pytest.approx(START + 0.2)
    assert all(ts == pytest.approx(now, abs=1e-6) for ts, now in emitted_at)
    assert sleep.delays[0] == pytest.approx(0.15, abs=1e-6)
    assert sleep.delays[1:] == pytest.approx([0.2] * (len(sleep.delays) - 1), abs=1e-6)


async def test_run_skips_ticks_left_behind_by_a_clock_jump() -> None:
    clock = ManualClock(START)

    async def sleep_through_a_suspend(delay: float) -> None:
        suspended = 60 if clock.now() < START + 1 <= clock.now() + delay else 0
        clock.advance(delay + suspended)
        if clock.now() > START + 70:
            raise FeedStopped

    feed = SyntheticFeed(SyntheticFeedConfig(), clock, sleep_through_a_suspend)
    emitted_at: list[tuple[Tick, float]] = []

    with pytest.raises(FeedStopped):
        await feed.run(lambda tick: emitted_at.append((tick, clock.now())))

    assert all(now - tick.ts <= MAX_SYNTHETIC_LAG_SECONDS for tick, now in emitted_at)
    sent = [tick for tick, _ in emitted_at]
    assert sent == [
        t for t in feed.ticks(START, START + 70.1) if t.ts < START + 1 or t.ts >= START + 56
    ]


def test_log_returns_match_drift_and_volatility() -> None:
    config = SyntheticFeedConfig(
        symbols={"X": 100.0}, ticks_per_second=1, drift=0.05, volatility=0.6, history_seconds=0
    )
    feed = SyntheticFeed(config, ManualClock(START))
    path = prices(list(feed.ticks(START, START + 50_000)), "X")
    returns = [math.log(after / before) for before, after in pairwise(path)]

    dt = 1 / (365 * 24 * 3600)
    expected_std = 0.6 * math.sqrt(dt)
    expected_mean = (0.05 - 0.6**2 / 2) * dt
    standard_error = expected_std / math.sqrt(len(returns))
    assert statistics.stdev(returns) == pytest.approx(expected_std, rel=0.03)
    assert abs(statistics.fmean(returns) - expected_mean) < 5 * standard_error


def test_synthetic_config_is_bounded_and_strict() -> None:
    with pytest.raises(ValidationError, match="ticks_per_second"):
        SyntheticFeedConfig(ticks_per_second=0)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SyntheticFeedConfig.model_validate({"volatilty": 0.2})
    with pytest.raises(ValidationError, match="history would hold"):
        SyntheticFeedConfig(ticks_per_second=1000, history_seconds=86_400)
    with pytest.raises(ValidationError):
        SyntheticFeedConfig(symbols={"AAPL": -1.0})


def test_build_feed_picks_the_feed_by_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "timestamp,open,high,low,close,volume\n60,1,1,1,1,1\n")
    adapter: TypeAdapter[FeedConfig] = TypeAdapter(FeedConfig)
    clock = ManualClock(START)

    synthetic_feed = build_feed(adapter.validate_python({"kind": "synthetic"}), clock)
    csv_feed = build_feed(
        adapter.validate_python({"kind": "csv", "files": {"A": str(path)}, "speed": "max"}), clock
    )

    assert isinstance(synthetic_feed, SyntheticFeed)
    assert synthetic_feed.symbols == ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")
    assert isinstance(csv_feed, CsvReplayFeed)
    assert csv_feed.symbols == ("A",)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "csv", "files": {"A": str(path)}, "speed": 0.5})


# --------------------------------------------------------------------------- OHLCV files

HEADER = "timestamp,open,high,low,close,volume\n"
EPOCH_ROWS = (
    "1704205800,100,101.5,99.5,101,1200\n"
    "1704205860,101,101.2,100.1,100.3,1234567.123456789\n"
    "1704205920,100.3,100.3,100.3,100.3,0\n"
)
ISO_ROWS = (
    "2024-01-02T14:30:00Z,100,101.5,99.5,101,1200\n"
    "2024-01-02 14:31:00,101,101.2,100.1,100.3,1234567.123456789\n"
    "2024-01-02T15:32:00+01:00,100.3,100.3,100.3,100.3,0\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_both_timestamp_styles_parse_to_the_same_bars(tmp_path: Path) -> None:
    epoch = load_ohlcv(write(tmp_path / "epoch.csv", HEADER + EPOCH_ROWS), "AAPL")
    iso = load_ohlcv(write(tmp_path / "iso.csv", HEADER + ISO_ROWS), "AAPL")

    assert epoch == iso
    assert epoch[0] == Bar("AAPL", "1m", 1_704_205_800.0, 100, 101.5, 99.5, 101, 1200, 4)
    assert [bar.resolution for bar in epoch] == ["1m"] * 3


def test_resolution_is_the_smallest_gap_and_gaps_are_allowed(tmp_path: Path) -> None:
    text = HEADER + "0,1,1,1,1,1\n300,1,1,1,1,1\n1200,1,1,1,1,1\n"

    bars = load_ohlcv(write(tmp_path / "gappy.csv", text), "A")

    assert [(b.resolution, b.start) for b in bars] == [("5m", 0), ("5m", 300), ("5m", 1200)]


def test_a_byte_order_mark_before_the_header_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + EPOCH_ROWS).encode())

    assert len(load_ohlcv(path, "A")) == 3


def test_a_single_row_is_taken_as_a_one_minute_bar(tmp_path: Path) -> None:
    [bar] = load_ohlcv(write(tmp_path / "one.csv", HEADER + "120,1,2,1,2,5\n"), "A")

    assert bar.resolution == "1m"


def test_ticks_of_a_bar_follow_the_plausible_path() -> None:
    up = Bar("A", "1m", 600.0, 10, 12, 9, 11, 100, 4)
    down = Bar("A", "1m", 600.0, 11, 12, 9, 10, 7, 4)

    assert [(t.ts, t.price) for t in ohlcv_ticks(up)] == [(600, 10), (615, 9), (630, 12), (645, 11)]
    assert [t.price for t in ohlcv_ticks(down)] == [11, 12, 9, 10]
    assert [t.size for t in ohlcv_ticks(up)] == [25, 25, 25, 25]


def test_replayed_ticks_aggregate_back_to_the_files_bars(tmp_path: Path) -> None:
    bars = load_ohlcv(write(tmp_path / "a.csv", HEADER + EPOCH_ROWS), "AAPL")

    assert aggregate(replay_bars(bars), "AAPL", "1m") == bars


@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_replay_preserves_any_volume_exactly(volume: float) -> None:
    bar = Bar("A", "1s", 60.0, 2.0, 3.0, 1.0, 2.5, volume, 4)

    assert aggregate(ohlcv_ticks(bar), "A", "1s") == [bar]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "file is empty"),
        ("time,o,h,l,c,v\n1,1,1,1,1,1\n", 1, "column 'o' is unknown"),
        (HEADER, None, "no data rows"),
        (HEADER + "60,1,1,1,1,1\n120,1,abc,1,1,1\n", 3, "high 'abc' is not a number"),
        (HEADER + "60,1,1,1,1\n", 2, "5 fields, expected 6"),
        (HEADER + "yesterday,1,1,1,1,1\n", 2, "timestamp 'yesterday' is neither"),
        (HEADER + "1704205800000,1,1,1,1,1\n", 2, "looks like milliseconds"),
        (HEADER + "120,1,1,1,1,1\n60,1,1,1,1,1\n", 3, "does not increase"),
        (HEADER + "60,1,1,1,1,1\n60,1,1,1,1,1\n", 3, "does not increase"),
        (HEADER + "60,5,4,3,5,1\n", 2, "prices are inconsistent"),
        (HEADER + "60,1,1,1,1,-2\n", 2, "volume '-2' must be a finite number >= 0"),
        (HEADER + "60,1,1,1,1,1\n67,1,1,1,1,1\n", None, "7 s apart, which is no bar resolution"),
        (HEADER + "0,1,1,1,1,1\n60,1,1,1,1,1\n150,1,1,1,1,1\n", 4, "not a whole number of 60 s"),
    ],
)
def test_bad_files_are_refused_naming_file_and_line(
    tmp_path: Path, text: str, line: int | None, problem: str
) -> None:
    path = write(tmp_path / "bad.csv", text)

    with pytest.raises(FeedError) as caught:
        load_ohlcv(path, "A")

    where = str(path) if line is None else f"{path}:{line}:"
    assert str(caught.value).startswith(where)
    assert problem in str(caught.value)
    assert caught.value.line == line


def test_a_missing_file_is_refused_when_the_feed_is_built(tmp_path: Path) -> None:
    config = CsvReplayFeedConfig(files={"A": tmp_path / "nowhere.csv"})

    with pytest.raises(FeedError, match=r"nowhere\.csv: file not found"):
        build_feed(config, ManualClock(START))


# --------------------------------------------------------------------------- CSV replay


def replay_feed(
    tmp_path: Path, clock: ManualClock, sleep: FakeSleep, **config: object
) -> CsvReplayFeed:
    files = {
        "AAPL": write(tmp_path / "aapl.csv", HEADER + EPOCH_ROWS),
        "MSFT": write(
            tmp_path / "msft.csv",
            HEADER + "1704205800,400,402,399,401,10\n1704205805,401,401,400,400.5,20\n",
        ),
    }
    return CsvReplayFeed(
        CsvReplayFeedConfig.model_validate({"files": files, **config}), clock, sleep
    )


async def replay(feed: CsvReplayFeed) -> list[Tick]:
    received: list[Tick] = []
    await feed.run(received.append)
    return received


async def test_replay_merges_files_in_time_order_and_rebuilds_their_bars(tmp_path: Path) -> None:
    clock = ManualClock(START)
    feed = replay_feed(tmp_path, clock, FakeSleep(clock), speed="max", shift_to_now=False)

    ticks = await replay(feed)

    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)
    assert feed.history(START) == []
    by_symbol: dict[str, list[Tick]] = defaultdict(list)
    for tick in ticks:
        by_symbol[tick.symbol].append(tick)
    assert aggregate(by_symbol["AAPL"], "AAPL", "1m") == load_ohlcv(tmp_path / "aapl.csv", "AAPL")
    assert aggregate(by_symbol["MSFT"], "MSFT", "5s") == load_ohlcv(tmp_path / "msft.csv", "MSFT")


async def test_a_parquet_file_replays_as_its_csv_file_does(tmp_path: Path) -> None:
    csv = write(tmp_path / "aapl.csv", HEADER + EPOCH_ROWS)
    write_parquet(load_ohlcv(csv, "AAPL"), tmp_path / "AAPL.parquet")
    clock = ManualClock(START)

    def feed(path: Path) -> CsvReplayFeed:
        config = CsvReplayFeedConfig(files={"AAPL": path}, speed="max", shift_to_now=False)
        return CsvReplayFeed(config, clock, FakeSleep(clock))

    assert await replay(feed(tmp_path / "AAPL.parquet")) == await replay(feed(csv))


async def test_max_speed_never_waits_but_yields_to_the_loop(tmp_path: Path) -> None:
    rows = "".join(f"{60 * i},1,1,1,1,1\n" for i in range(1, 301))
    clock = ManualClock(START)
    sleep = FakeSleep(clock)
    config = CsvReplayFeedConfig(files={"A": write(tmp_path / "a.csv", HEADER + rows)}, speed="max")

    ticks = await replay(CsvReplayFeed(config, clock, sleep))

    assert len(ticks) == 1_200
    assert sleep.delays == [0] * (1_200 // MAX_SPEED_YIELD_EVERY)
    assert clock.now() == START


async def test_realtime_replay_is_shifted_to_the_next_bar_and_paced_by_the_clock(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    sleep = FakeSleep(clock)
    feed = replay_feed(tmp_path, clock, sleep, speed="realtime")
    emitted_at: list[tuple[float, float]] = []

    await feed.run(lambda tick: emitted_at.append((tick.ts, clock.now())))

    next_minute = math.ceil(START / 60) * 60
    assert emitted_at[0] == (next_minute, next_minute)
    assert all(ts == now for ts, now in emitted_at)
    assert sleep.delays[0] == next_minute - START
    assert sum(sleep.delays) == emitted_at[-1][0] - START


async def test_a_speed_multiplier_scales_the_waits(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sleep = FakeSleep(clock)
    feed = replay_feed(tmp_path, clock, sleep, speed=60, shift_to_now=False)

    ticks = await replay(feed)

    data_span = ticks[-1].ts - ticks[0].ts
    assert sum(sleep.delays) == pytest.approx(data_span / 60)
    # AAPL's 1-minute bars put their ticks 15 s apart: 0.25 s at 60x.
    aapl = [t.ts for t in ticks if t.symbol == "AAPL"]
    assert aapl[-1] - aapl[-2] == 15
    assert sleep.delays[-1] == pytest.approx(0.25)
    assert ticks[0].ts == 1_704_205_800


def test_a_yahoo_file_loads_its_close_not_its_adjusted_close(tmp_path: Path) -> None:
    path = write(
        tmp_path / "GOOG.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02,139.6,140.6,137.7,139.6,139.4,20071900\n"
        "2024-01-03,138.6,141.1,138.4,140.4,140.2,18974300\n",
    )
    bars = load_ohlcv(path, "GOOG")
    assert [(b.resolution, b.start, b.close, b.volume) for b in bars] == [
        ("1d", 1_704_153_600.0, 139.6, 20_071_900.0),
        ("1d", 1_704_240_000.0, 140.4, 18_974_300.0),
    ]


def test_a_pandas_file_with_its_columns_in_another_order_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path / "aapl.csv",
        "Datetime,Volume,Close,Low,High,Open,Dividends,Stock Splits\n"
        "2024-01-02 14:30:00+00:00,10,2.5,1,3,2,0.0,0.0\n",
    )
    [bar] = load_ohlcv(path, "AAPL")
    assert (bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        1_704_205_800.0,
        2.0,
        3.0,
        1.0,
        2.5,
        10.0,
    )


@pytest.mark.parametrize(
    ("header", "column", "problem"),
    [
        ("Date,Open,High,Low,Close,Volume,Notes", "Notes", "column 'Notes' is unknown"),
        ("Date,Open,Hi,Low,Close,Volume", "Hi", "column 'Hi' is unknown"),
        ("Date,Timestamp,Open,High,Low,Close,Volume", "Timestamp",
         "columns 'Date' and 'Timestamp' are both times"),
        ("Date,Open,High,Low,Close", "volume", "column 'volume' is missing"),
        ("Open,High,Low,Close,Volume", "timestamp", "column 'timestamp' is missing"),
        ("Date,Open,Open,High,Low,Close,Volume", "Open", "column 'Open' appears twice"),
    ],
)  # fmt: skip
def test_a_header_with_unknown_missing_or_repeated_columns_is_refused_naming_the_column(
    tmp_path: Path, header: str, column: str, problem: str
) -> None:
    path = write(tmp_path / "bad.csv", header + "\n")
    with pytest.raises(FeedError) as caught:
        load_ohlcv(path, "A")

    assert str(caught.value).startswith(f"{path}:1: ")
    assert problem in str(caught.value)
    assert (caught.value.line, caught.value.column) == (1, column)


# ---------------------------------------------------------------- continuing after a restart


def test_a_synthetic_path_continues_from_the_last_price_of_the_run_before() -> None:
    config = SyntheticFeedConfig(symbols={"AAPL": 190.0, "MSFT": 420.0}, history_seconds=30)
    clock = ManualClock(START)
    fresh = SyntheticFeed(config, clock)
    resumed = SyntheticFeed(config, clock, continue_from={"AAPL": 123.45})
    first = next(t for t in resumed.ticks(START) if t.symbol == "AAPL")
    assert first.price == 123.45  # the first live tick: where the last run left it
    history = [t.price for t in resumed.history(START) if t.symbol == "AAPL"]
    assert len(history) == 30 * config.ticks_per_second
    assert abs(math.log(history[-1] / 123.45)) < 0.01  # it leads up to it: no jump
    # A symbol without a last price keeps the path of a first start.
    same = [t for t in fresh.ticks(START - 30, START + 5) if t.symbol == "MSFT"]
    assert same == [t for t in resumed.ticks(START - 30, START + 5) if t.symbol == "MSFT"]
    # And the same restart gives the same ticks.
    again = SyntheticFeed(config, clock, continue_from={"AAPL": 123.45})
    assert list(again.ticks(START - 30, START + 5)) == list(resumed.ticks(START - 30, START + 5))
