"""What a server's replay window holds in memory, the figure docs/limits-and-security.md
gives: bytes per kept message and megabytes at the default ``streams.replay_window``.

The messages are what a server keeps while a strategy trades, encoded by the
daemon's own encoders (``gateways.api.outbound``) and kept by its ``StreamLog``:
one ``strategy_signal`` and one ``strategy_trade`` per order, as on 8082. The
baseline is the same frames kept as the encoder returned them (which is what
the window did before it kept right-sized copies), measured in the same run with
``tracemalloc``; the figure counts the frames, their records and the window.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from bench.report import Verdict, machine, table
from gateways.api import outbound
from gateways.config import StreamConfig
from gateways.ws.stream import Logged, StreamLog
from orchestrator.model.events import SignalEmitted, TradeExecuted
from orchestrator.model.orders import Fill, Side, Signal, TradeStatus

EPOCH = 1_700_000_000_000
TS = 1_700_000_000.0


def frames(count: int) -> list[bytes]:
    """``count`` messages of a trading strategy on 8082: signal, trade, signal, ..."""
    made = []
    for i in range(count):
        order = i // 2
        if i % 2 == 0:
            signal = Signal(
                f"sig_{order:06d}",
                "strategy-123",
                "Moving Average Crossover",
                "AAPL",
                Side.BUY if order % 2 == 0 else Side.SELL,
                152.75 + order * 0.01,
                50.0,
                0.52,
                TS + order,
                {"orderType": "MARKET", "reason": "entry", "fast": 152.9, "slow": 152.1},
            )
            kind, data = outbound.signal(SignalEmitted(signal))
        else:
            fill = Fill(
                f"trade_{order:06d}",
                f"order_{order:06d}",
                "strategy-123",
                "AAPL",
                Side.BUY if order % 2 == 0 else Side.SELL,
                50.0,
                152.77 + order * 0.01,
                0.0,
                TS + order,
                TradeStatus.FILLED,
            )
            kind, data = outbound.trade(TradeExecuted(fill, None))
        position = outbound.StreamPosition(i + 1, EPOCH)
        made.append(outbound.encode(kind, data, TS + order, None, position))
    return made


def held_bytes(window: int, keep: Callable[[list[bytes]], object]) -> float:
    """Bytes allocated per message by what ``keep`` keeps of ``window`` frames."""
    tracemalloc.start()
    try:
        kept = keep(frames(window))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return held / window


def by_stream_log(made: list[bytes]) -> StreamLog:
    log = StreamLog(EPOCH, len(made))
    for frame in made:
        log.append(log.next_seq(), "*", frame)
    return log


def as_encoded(made: list[bytes]) -> list[Logged]:
    return [Logged(seq, "*", frame) for seq, frame in enumerate(made, start=1)]


def main() -> list[Verdict]:
    window = StreamConfig().replay_window
    size = sum(len(frame) for frame in frames(1000)) / 1000
    baseline = held_bytes(window, as_encoded)
    ours = held_bytes(window, by_stream_log)
    rows = [
        ("as encoded (before)", baseline, baseline * window / 2**20, 1.0),
        ("StreamLog, right-sized", ours, ours * window / 2**20, baseline / ours),
    ]
    print(
        table(
            f"replay window of {window:,} messages (mean frame {size:.0f} B); {machine()}",
            ("held as", "B/message", "MiB/server", "x smaller"),
            rows,
        )
    )
    documented = 5.0  # MiB per server at the default, docs/limits-and-security.md
    verdict = "PASS" if ours * window / 2**20 <= documented else "FAIL"
    print(
        f"verdict: {verdict}: {ours * window / 2**20:.1f} MiB per server at the default "
        f"window, documented as at most {documented:g} MiB\n"
    )
    held = ours * window / 2**20
    name = f"replay window held, default {window:,} messages"
    figure, target = f"{held:.1f} MiB per server", f"<= {documented:g} MiB"
    return [Verdict(name, figure, target, held <= documented)]
