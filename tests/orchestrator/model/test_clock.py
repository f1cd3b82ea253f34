"""iso_utc: the text every message's timestamp is, exactly as datetime formats it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator.model.clock import iso_utc


def formatted_by_datetime(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
@example(0.0)
@example(1_700_000_000.9995)  # rounds up to the next microsecond, not the next ms
@example(1_700_000_000.9999996)  # rounds up into the next second
@example(-0.0000004)  # before the epoch, rounding to it
@example(-1.5)
@example(1_700_000_000.0005)
def test_iso_utc_is_what_datetime_gives(ts: float) -> None:
    assert iso_utc(ts) == formatted_by_datetime(ts)


def test_iso_utc_within_one_second_and_across_it() -> None:
    assert iso_utc(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
    assert iso_utc(1_700_000_000.999) == "2023-11-14T22:13:20.999Z"
    assert iso_utc(1_700_000_001.0) == "2023-11-14T22:13:21.000Z"
