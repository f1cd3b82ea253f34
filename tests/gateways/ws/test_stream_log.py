"""The replay window holds each message in an allocation of its own size."""

from __future__ import annotations

import tracemalloc

from gateways.api import outbound
from gateways.ws.stream import StreamLog
from orchestrator.model.events import TradeExecuted
from orchestrator.model.orders import Fill, Side, TradeStatus

WINDOW = 2_000


def trade_frame(i: int) -> bytes:
    fill = Fill(
        f"trade_{i:06d}",
        f"order_{i:06d}",
        "strategy-123",
        "AAPL",
        Side.BUY,
        50.0,
        152.77,
        0.0,
        1_700_000_000.0 + i,
        TradeStatus.FILLED,
    )
    kind, data = outbound.trade(TradeExecuted(fill, None))
    position = outbound.StreamPosition(i, 1_700_000_000_000)
    return outbound.encode(kind, data, fill.ts, None, position)


def test_a_held_message_costs_about_its_size_not_the_encoders_buffer() -> None:
    log = StreamLog(epoch=1, window=WINDOW)
    size = len(trade_frame(0))
    tracemalloc.start()
    try:
        for i in range(WINDOW):
            log.append(log.next_seq(), "*", trade_frame(i))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_message = held / WINDOW
    # The frame, its bytes header and the window's record; orjson's own buffer is
    # about 4 KB whatever the message.
    assert per_message < size + 200, (per_message, size)
