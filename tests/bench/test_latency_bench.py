"""The tick-to-trade benchmark's verdicts: issue #15's four targets, each against
its bound or against bare websockets in the same run."""

from __future__ import annotations

from bench.latency_bench import BARE, DAEMON, Result, verdicts


def result(name: str, clients: int, p50_ms: float, p99_ms: float, lost: int = 0) -> Result:
    """100 trades to each client: 50 at ``p50_ms``, 48 between, the last 2 at ``p99_ms``."""
    ms = ([p50_ms] * 50 + [(p50_ms + p99_ms) / 2] * 48 + [p99_ms] * 2) * clients
    latencies = sorted(int(v * 1e6) for v in ms)[lost:]
    return Result(name, clients, 100, latencies, [], 0.0)


def marks(results: list[Result]) -> dict[str, tuple[str, bool | None]]:
    return {v.name: (v.target, v.passed) for v in verdicts(results)}


def runs(
    one: tuple[float, float], ten: float, hundred: float, bare: tuple[float, float, float, float]
) -> list[Result]:
    bare_p50, bare_p99, bare_ten, bare_hundred = bare
    return [
        result(DAEMON, 1, *one),
        result(BARE, 1, bare_p50, bare_p99),
        result(DAEMON, 10, 0.5, ten),
        result(BARE, 10, 0.4, bare_ten),
        result(DAEMON, 100, 2.0, hundred),
        result(BARE, 100, 2.0, bare_hundred),
    ]


def test_each_target_of_the_issue_is_its_own_verdict() -> None:
    got = marks(runs((0.45, 0.9), 2.9, 6.4, (0.2, 0.35, 1.5, 5.0)))
    assert got == {
        "tick-to-trade p99, 1 client": ("< 1 ms", True),
        "tick-to-trade p50, 1 client": ("within 0.3 ms of bare", True),
        "tick-to-trade p99, 10 clients": ("< 2x bare", True),
        "tick-to-trade p99, 100 clients": ("< 1.3x bare", True),
    }


def test_the_ratios_are_taken_against_bare_websockets_of_the_same_run() -> None:
    got = marks(runs((0.55, 1.2), 3.1, 6.6, (0.2, 0.35, 1.5, 5.0)))
    assert {name: passed for name, (_, passed) in got.items()} == {
        "tick-to-trade p99, 1 client": False,
        "tick-to-trade p50, 1 client": False,
        "tick-to-trade p99, 10 clients": False,
        "tick-to-trade p99, 100 clients": False,
    }


def test_a_lost_delivery_fails_its_target_whatever_the_figure() -> None:
    results = runs((0.45, 0.9), 2.9, 6.4, (0.2, 0.35, 1.5, 5.0))
    results[0] = result(DAEMON, 1, 0.45, 0.9, lost=1)
    made = {v.name: v for v in verdicts(results)}
    assert made["tick-to-trade p99, 1 client"].passed is False
    assert made["tick-to-trade p99, 1 client"].figure.endswith(", lost")
