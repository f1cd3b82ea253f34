"""journal_impact's summary rows: one per durability mode, against the journal off."""

from __future__ import annotations

from bench.journal_impact_bench import DURABILITY, OFF, Latency, summary_verdicts


def run(name: str, clients: int, ms: float) -> Latency:
    return Latency(name, clients, 1, [int(ms * 1e6)], [])


def test_each_durability_mode_has_its_row_against_the_journal_off() -> None:
    results = [run(name, clients, ms) for name, ms in zip(DURABILITY, (1.2, 0.7), strict=True)
               for clients in (1, 10)]  # fmt: skip
    results += [run(OFF, 1, 0.3), run(OFF, 10, 0.6)]
    made = summary_verdicts(results)
    assert [v.name for v in made] == [
        "journal FULL, tick-to-trade, 1 client",
        "journal NORMAL, tick-to-trade, 1 client",
    ]
    assert made[1].figure == "p50 0.70 / p99 0.70 ms (journal off 0.30 / 0.30 ms)"
    assert all(v.passed is None for v in made)
