"""The venue benchmark's loads do what its figures claim (nothing timed): each daemon
round is one order filled by the venue and told on 8082, the baseline's orders reach
the same venue, and the reconciliation recovers every fill the journal was missing."""

from __future__ import annotations

import pytest

import bench.venue_bench as venue_bench


async def test_every_round_is_one_venue_order_and_every_missing_fill_is_recovered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(venue_bench, "ROUNDS", 6)
    monkeypatch.setattr(venue_bench, "WARMUP", 2)
    monkeypatch.setattr(venue_bench, "BLOCK", 3)
    monkeypatch.setattr(venue_bench, "RECONCILED_ORDERS", 40)
    samples, recon = await venue_bench.run_all()
    assert [len(samples[k]) for k in ("ack", "told", "bare")] == [6, 6, 6]
    assert all(a <= t for a, t in zip(samples["ack"], samples["told"], strict=True))
    assert (recon["checked"], recon["recovered"]) == (40, 40)
    _, verdicts = venue_bench.report(samples, recon)
    assert verdicts[-1].passed is True
