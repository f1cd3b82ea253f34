"""Bar aggregation against hand-made tick streams, and the shared bar hub."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.marketdata.bars import BarAggregator, BarHub, aggregate
from orchestrator.model.market import RESOLUTION_SECONDS, Bar, Tick

T0 = 1_700_000_040.0  # a whole minute (and a whole 5 s, 15 s) in UTC


def tick(ts: float, price: float, size: float = 1.0, symbol: str = "AAPL") -> Tick:
    return Tick(symbol, price, size, ts)


def utc(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def feed(aggregator: BarAggregator, ticks: list[Tick]) -> list[Bar]:
    closed: list[Bar] = []
    for t in ticks:
        closed.extend(aggregator.on_tick(t))
    return closed


# --------------------------------------------------------------------------- aggregator


def test_ohlcv_of_one_bucket_is_exact() -> None:
    aggregator = BarAggregator("AAPL", "1m")
    ticks = [tick(T0, 10.0, 2), tick(T0 + 5, 12.5, 3), tick(T0 + 20, 9.0, 1), tick(T0 + 59.9, 11)]
    assert feed(aggregator, ticks) == []

    [bar] = aggregator.on_tick(tick(T0 + 60, 11.2))

    assert bar == Bar("AAPL", "1m", T0, 10.0, 12.5, 9.0, 11.0, 7.0, 4)
    assert bar.end == T0 + 60


def test_tick_exactly_on_the_boundary_opens_the_new_bucket() -> None:
    aggregator = BarAggregator("AAPL", "5s")
    feed(aggregator, [tick(T0, 1.0), tick(T0 + 4.999, 2.0)])

    [bar] = aggregator.on_tick(tick(T0 + 5, 3.0))
    [next_bar] = aggregator.on_time(T0 + 10)

    assert (bar.start, bar.close, bar.ticks) == (T0, 2.0, 2)
    assert (next_bar.start, next_bar.open, next_bar.ticks) == (T0 + 5, 3.0, 1)


def test_skipped_buckets_close_as_flat_bars_at_the_last_close() -> None:
    aggregator = BarAggregator("AAPL", "1s")
    feed(aggregator, [tick(T0, 5.0, 2), tick(T0 + 0.5, 6.0, 1)])

    closed = aggregator.on_tick(tick(T0 + 3.2, 7.0))

    assert closed == [
        Bar("AAPL", "1s", T0, 5.0, 6.0, 5.0, 6.0, 3.0, 2),
        Bar("AAPL", "1s", T0 + 1, 6.0, 6.0, 6.0, 6.0, 0.0, 0),
        Bar("AAPL", "1s", T0 + 2, 6.0, 6.0, 6.0, 6.0, 0.0, 0),
    ]


def test_on_time_closes_due_buckets_without_ticks() -> None:
    aggregator = BarAggregator("AAPL", "5s")
    aggregator.on_tick(tick(T0 + 1, 4.0))

    assert aggregator.on_time(T0 + 4.99) == []
    [first] = aggregator.on_time(T0 + 5)
    assert aggregator.on_time(T0 + 9) == []
    flats = aggregator.on_time(T0 + 17)

    assert (first.start, first.ticks) == (T0, 1)
    assert [(b.start, b.close, b.volume, b.ticks) for b in flats] == [
        (T0 + 5, 4.0, 0.0, 0),
        (T0 + 10, 4.0, 0.0, 0),
    ]
    assert aggregator.open_bucket_end == T0 + 20


def test_nothing_closes_before_the_first_tick() -> None:
    aggregator = BarAggregator("AAPL", "1s")

    assert aggregator.on_time(T0 + 1_000) == []
    assert aggregator.open_bucket_end is None


def test_a_tick_into_an_empty_bucket_after_on_time_sets_its_open() -> None:
    aggregator = BarAggregator("AAPL", "5s")
    aggregator.on_tick(tick(T0, 4.0))
    aggregator.on_time(T0 + 5)

    aggregator.on_tick(tick(T0 + 6, 3.0, 2))
    [bar] = aggregator.on_time(T0 + 10)

    assert bar == Bar("AAPL", "5s", T0 + 5, 3.0, 3.0, 3.0, 3.0, 2.0, 1)


def test_late_ticks_are_dropped_and_counted() -> None:
    aggregator = BarAggregator("AAPL", "5s")
    feed(aggregator, [tick(T0, 1.0), tick(T0 + 6, 2.0)])
    aggregator.on_time(T0 + 10)

    assert aggregator.on_tick(tick(T0 + 4, 100.0)) == []
    assert aggregator.on_tick(tick(T0 + 9.9, 100.0)) == []
    assert aggregator.late_ticks == 2
    [bar] = aggregator.on_tick(tick(T0 + 15, 3.0))
    assert (bar.start, bar.high, bar.ticks) == (T0 + 10, 2.0, 0)


def test_each_bucket_closes_exactly_once_whatever_the_mix_of_ticks_and_time() -> None:
    aggregator = BarAggregator("AAPL", "1s")
    closed: list[Bar] = []
    for step in range(200):
        now = T0 + step * 0.37
        closed.extend(aggregator.on_tick(tick(now, 10 + step % 7)))
        if step % 3 == 0:
            closed.extend(aggregator.on_time(now + 0.5))
        closed.extend(aggregator.on_time(now - 2))

    starts = [bar.start for bar in closed]
    assert starts == [T0 + i for i in range(len(starts))]
    assert sum(bar.ticks for bar in closed) + aggregator.late_ticks <= 200


@pytest.mark.parametrize(
    ("resolution", "expected_start"),
    [
        ("1s", "2024-03-05T13:52:38"),
        ("5s", "2024-03-05T13:52:35"),
        ("15s", "2024-03-05T13:52:30"),
        ("1m", "2024-03-05T13:52:00"),
        ("5m", "2024-03-05T13:50:00"),
        ("15m", "2024-03-05T13:45:00"),
        ("1h", "2024-03-05T13:00:00"),
        ("4h", "2024-03-05T12:00:00"),
        ("1d", "2024-03-05T00:00:00"),
    ],
)
def test_buckets_are_aligned_to_utc_wall_clock(resolution: str, expected_start: str) -> None:
    ts = utc("2024-03-05T13:52:38.25")
    aggregator = BarAggregator("AAPL", resolution)
    aggregator.on_tick(tick(ts, 1.0))

    [bar] = aggregator.on_time(ts + RESOLUTION_SECONDS[resolution])

    assert bar.start == utc(expected_start)
    assert bar.end - bar.start == RESOLUTION_SECONDS[resolution]


def test_several_resolutions_from_one_stream_agree() -> None:
    hour = utc("2024-03-05T13:00:00")
    ticks = [tick(hour + i * 0.5, 100 + (i * 37 % 11), size=i % 4 + 1) for i in range(7_200)]

    by_resolution = {res: aggregate(ticks, "AAPL", res) for res in ("1s", "5s", "15s", "1m", "5m")}

    for resolution, bars in by_resolution.items():
        seconds = RESOLUTION_SECONDS[resolution]
        assert len(bars) == 3_600 // seconds
        assert (bars[0].start, bars[-1].end) == (hour, hour + 3_600)
        assert sum(bar.volume for bar in bars) == sum(t.size for t in ticks)
        assert sum(bar.ticks for bar in bars) == len(ticks)
    one_minute = by_resolution["1m"]
    five_minutes = by_resolution["5m"]
    for i, coarse in enumerate(five_minutes):
        parts = one_minute[5 * i : 5 * i + 5]
        assert coarse.open == parts[0].open
        assert coarse.close == parts[-1].close
        assert coarse.high == max(p.high for p in parts)
        assert coarse.low == min(p.low for p in parts)


def test_unknown_resolution_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'7m'"):
        BarAggregator("AAPL", "7m")


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=600, allow_nan=False),
            st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_bars_account_for_every_tick_in_order(raw: list[tuple[float, float]]) -> None:
    ticks = [tick(T0 + offset, price) for offset, price in sorted(raw)]

    bars = aggregate(ticks, "AAPL", "15s")

    assert sum(bar.ticks for bar in bars) == len(ticks)
    assert bars[0].open == ticks[0].price
    assert bars[-1].close == ticks[-1].price
    assert max(bar.high for bar in bars) == max(t.price for t in ticks)
    assert min(bar.low for bar in bars) == min(t.price for t in ticks)
    assert all(b.start + 15 == after.start for b, after in pairwise(bars))


# --------------------------------------------------------------------------- hub


class Recorder:
    def __init__(self) -> None:
        self.bars: list[Bar] = []

    def __call__(self, bar: Bar) -> None:
        self.bars.append(bar)


def test_subscribers_of_one_pair_share_one_aggregator() -> None:
    seen = Recorder()
    hub = BarHub(seen)
    hub.subscribe("AAPL", "1s")
    hub.subscribe("AAPL", "1s")

    hub.on_tick(tick(T0, 1.0))
    hub.on_tick(tick(T0 + 1, 2.0))

    assert hub.aggregator_count == 1
    assert hub.subscriber_count("AAPL", "1s") == 2
    assert [bar.start for bar in seen.bars] == [T0]


def test_unsubscribe_is_reference_counted() -> None:
    hub = BarHub(Recorder())
    hub.subscribe("AAPL", "1s")
    hub.subscribe("AAPL", "1s")
    hub.on_tick(tick(T0, 1.0))
    hub.on_tick(tick(T0 + 1, 2.0))
    shared = hub.aggregator("AAPL", "1s")

    hub.unsubscribe("AAPL", "1s")
    assert hub.aggregator("AAPL", "1s") is shared

    hub.unsubscribe("AAPL", "1s")
    assert hub.aggregator_count == 0
    assert hub.aggregator("AAPL", "1s") is None
    with pytest.raises(KeyError):
        hub.unsubscribe("AAPL", "1s")


def test_subscribing_to_an_unknown_resolution_leaves_the_hub_unchanged() -> None:
    hub = BarHub(Recorder())

    with pytest.raises(ValueError, match="unknown resolution"):
        hub.subscribe("AAPL", "2m")

    assert hub.aggregator_count == 0
    assert hub.subscriber_count("AAPL", "2m") == 0


def test_ticks_reach_only_their_symbols_aggregators() -> None:
    seen = Recorder()
    hub = BarHub(seen)
    hub.subscribe("AAPL", "1s")
    hub.subscribe("AAPL", "5s")
    hub.subscribe("MSFT", "1s")

    for i in range(6):
        hub.on_tick(tick(T0 + i, 1.0 + i))

    assert {bar.symbol for bar in seen.bars} == {"AAPL"}
    assert [(b.resolution, b.start) for b in seen.bars if b.resolution == "5s"] == [("5s", T0)]
    assert hub.aggregator("MSFT", "1s") is not None
    assert hub.next_close() == T0 + 6


def test_on_time_delivers_due_bars_of_every_pair_in_closing_order() -> None:
    seen = Recorder()
    hub = BarHub(seen)
    hub.subscribe("AAPL", "5s")
    hub.subscribe("MSFT", "1s")
    hub.on_tick(tick(T0, 1.0))
    hub.on_tick(tick(T0, 2.0, symbol="MSFT"))
    assert hub.next_close() == T0 + 1

    hub.on_time(T0 + 5)

    assert [(b.symbol, b.end) for b in seen.bars] == [
        ("MSFT", T0 + 1),
        ("MSFT", T0 + 2),
        ("MSFT", T0 + 3),
        ("MSFT", T0 + 4),
        ("AAPL", T0 + 5),
        ("MSFT", T0 + 5),
    ]
    assert hub.next_close() == T0 + 6


def test_last_tick_is_kept_per_symbol_even_without_subscribers() -> None:
    hub = BarHub(Recorder())
    newest = tick(T0 + 2, 3.0, symbol="MSFT")
    hub.on_tick(newest)
    hub.on_tick(tick(T0 + 1, 2.0, symbol="MSFT"))

    assert hub.last_tick("MSFT") == newest
    assert hub.last_tick("AAPL") is None
    assert hub.next_close() is None


def test_a_late_subscriber_gets_bars_from_its_first_tick() -> None:
    seen = Recorder()
    hub = BarHub(seen)
    hub.subscribe("AAPL", "1s")
    hub.on_tick(tick(T0, 1.0))
    hub.subscribe("AAPL", "5s")

    hub.on_tick(tick(T0 + 5, 2.0))

    assert [(b.resolution, b.start) for b in seen.bars if b.resolution == "5s"] == []
    hub.on_time(T0 + 10)
    assert [b.open for b in seen.bars if b.resolution == "5s"] == [2.0]
