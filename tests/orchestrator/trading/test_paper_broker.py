"""The paper broker: next-tick fills, slippage, commission, timeouts and limits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from orchestrator.model.clock import ManualClock
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import Fill, Order, Side, TradeStatus
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook

T0 = 1_700_000_000.0


class RecordingBroker:
    """The broker under test, recording every fill its calls return (in ``fills``).

    It answers as the tests below ask: ``submit`` whether the order was queued
    (it returned no rejection), ``expire`` and the cancels how many orders they
    settled. The returned fills themselves are checked in test_broker.py.
    """

    def __init__(self, broker: PaperBroker, fills: list[Fill]) -> None:
        self._broker = broker
        self._fills = fills

    @property
    def pending_count(self) -> int:
        return self._broker.pending_count

    def pending_orders(self) -> list[Order]:
        return self._broker.pending_orders()

    def submit(self, order: Order) -> bool:
        return not self._record(self._broker.submit(order))

    def on_tick(self, tick: Tick) -> int:
        return self._record(self._broker.on_tick(tick))

    def expire(self, now: float | None = None) -> int:
        return self._record(self._broker.expire(now))

    def cancel_all(self, reason: str) -> int:
        return self._record(self._broker.cancel_all(reason))

    def cancel_strategy(self, strategy_id: str, reason: str) -> int:
        return self._record(self._broker.cancel_strategy(strategy_id, reason))

    def fill_at(self, order: Order, price: float, ts: float) -> Fill:
        return self._broker.fill_at(order, price, ts)

    def _record(self, fills: Sequence[Fill]) -> int:
        self._fills.extend(fills)
        return len(fills)


class Harness:
    """A broker on a manual clock that records every fill it reports."""

    def __init__(self, **config: float) -> None:
        self.clock = ManualClock(T0)
        self.fills: list[Fill] = []
        broker = PaperBroker(PaperBrokerConfig(**config), self.clock, SequentialIds())
        self.broker = RecordingBroker(broker, self.fills)

    def tick(self, symbol: str, price: float) -> int:
        return self.broker.on_tick(Tick(symbol, price, 100.0, self.clock.now()))


def order(
    order_id: str = "order_1",
    side: Side = Side.BUY,
    quantity: float = 10.0,
    symbol: str = "AAPL",
    strategy_id: str = "s1",
) -> Order:
    return Order(order_id, strategy_id, symbol, side, quantity, T0)


def test_sequential_ids_count_per_prefix() -> None:
    ids = SequentialIds()
    assert [ids("trade"), ids("trade"), ids("order")] == [
        "trade_000001",
        "trade_000002",
        "order_000001",
    ]


def test_fills_at_the_next_tick_not_at_submission() -> None:
    h = Harness(slippage_bps=0.0)
    h.tick("AAPL", 99.0)  # a price before the order: not the one it gets
    assert h.broker.submit(order())
    assert h.fills == []
    assert h.broker.pending_count == 1
    h.clock.advance(1.0)
    assert h.tick("AAPL", 101.0) == 1
    [fill] = h.fills
    assert fill.status is TradeStatus.FILLED
    assert fill.price == 101.0
    assert fill.ts == T0 + 1.0
    assert (fill.id, fill.order_id, fill.strategy_id) == ("trade_000001", "order_1", "s1")
    assert (fill.symbol, fill.side, fill.quantity) == ("AAPL", Side.BUY, 10.0)
    assert h.broker.pending_count == 0
    h.tick("AAPL", 102.0)
    assert len(h.fills) == 1  # filled once only


def test_slippage_moves_the_price_against_both_sides() -> None:
    h = Harness(slippage_bps=10.0)
    h.broker.submit(order("buy", Side.BUY))
    h.broker.submit(order("sell", Side.SELL))
    h.tick("AAPL", 200.0)
    prices = {f.order_id: f.price for f in h.fills}
    assert prices["buy"] == pytest.approx(200.0 * 1.001)
    assert prices["sell"] == pytest.approx(200.0 * 0.999)


def test_commission_per_share_plus_bps_with_a_minimum() -> None:
    h = Harness(slippage_bps=0.0, commission_per_share=0.01, commission_bps=5.0, min_commission=1.0)
    h.broker.submit(order("big", quantity=1000.0))
    h.broker.submit(order("small", quantity=1.0))
    h.tick("AAPL", 50.0)
    commissions = {f.order_id: f.commission for f in h.fills}
    # 1000 * 0.01 + 5 bps of 50_000 = 10 + 25
    assert commissions["big"] == pytest.approx(35.0)
    # 0.01 + 5 bps of 50 = 0.035, below the minimum
    assert commissions["small"] == 1.0


def test_commission_is_on_the_slipped_notional() -> None:
    h = Harness(slippage_bps=100.0, commission_bps=10.0)
    h.broker.submit(order(quantity=10.0))
    h.tick("AAPL", 100.0)
    [fill] = h.fills
    assert fill.price == pytest.approx(101.0)
    assert fill.commission == pytest.approx(10 * 101.0 * 10 / 1e4)


def test_orders_of_other_symbols_are_untouched() -> None:
    h = Harness()
    h.broker.submit(order("aapl", symbol="AAPL"))
    h.broker.submit(order("msft", symbol="MSFT"))
    assert h.tick("MSFT", 300.0) == 1
    assert [f.order_id for f in h.fills] == ["msft"]
    assert [o.id for o in h.broker.pending_orders()] == ["aapl"]
    assert h.tick("NVDA", 10.0) == 0


def test_an_order_with_no_price_in_time_is_rejected_with_a_reason() -> None:
    h = Harness(fill_timeout_seconds=5.0)
    h.broker.submit(order(symbol="MSFT"))
    h.clock.advance(5.0)
    assert h.broker.expire() == 0  # exactly at the limit is still in time
    h.clock.advance(0.5)
    assert h.broker.expire() == 1
    [fill] = h.fills
    assert fill.status is TradeStatus.REJECTED
    assert fill.reason == "no price for MSFT within 5.0 s"
    assert fill.price == 0.0 and fill.commission == 0.0
    assert fill.ts == T0 + 5.5
    assert h.broker.pending_count == 0
    h.tick("MSFT", 100.0)
    assert len(h.fills) == 1


def test_expire_takes_an_explicit_moment_and_keeps_fresh_orders() -> None:
    h = Harness(fill_timeout_seconds=5.0)
    h.broker.submit(order("old"))
    h.clock.advance(3.0)
    h.broker.submit(order("new", symbol="MSFT"))
    assert h.broker.expire(T0 + 6.0) == 1
    assert [f.order_id for f in h.fills] == ["old"]
    assert [o.id for o in h.broker.pending_orders()] == ["new"]


def test_a_late_tick_rejects_rather_than_fills_a_stale_order() -> None:
    h = Harness(fill_timeout_seconds=5.0)
    h.broker.submit(order())
    h.clock.advance(6.0)
    h.tick("AAPL", 100.0)  # expire() never ran
    [fill] = h.fills
    assert fill.status is TradeStatus.REJECTED
    assert fill.reason == "no price for AAPL within 5.0 s"


def test_a_broken_print_fills_nothing() -> None:
    h = Harness()
    h.broker.submit(order())
    assert h.tick("AAPL", float("nan")) == 0
    assert h.tick("AAPL", 0.0) == 0
    assert h.fills == [] and h.broker.pending_count == 1


def test_pending_orders_are_capped() -> None:
    h = Harness(max_pending_orders=2)
    assert h.broker.submit(order("a"))
    assert h.broker.submit(order("b", symbol="MSFT"))
    assert not h.broker.submit(order("c"))
    [fill] = h.fills
    assert fill.order_id == "c"
    assert fill.status is TradeStatus.REJECTED
    assert fill.reason == "too many pending orders (2)"
    h.tick("AAPL", 10.0)
    assert h.broker.submit(order("d"))  # room again once one filled


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        (0.0, "quantity must be positive, got 0.0"),
        (-5.0, "quantity must be positive, got -5.0"),
        (float("nan"), "quantity must be a finite number, got nan"),
        (float("inf"), "quantity must be a finite number, got inf"),
    ],
)
def test_invalid_quantity_is_rejected_at_once(quantity: float, reason: str) -> None:
    h = Harness()
    assert not h.broker.submit(order(quantity=quantity))
    [fill] = h.fills
    assert fill.status is TradeStatus.REJECTED
    assert fill.reason == reason
    assert fill.ts == T0
    assert h.broker.pending_count == 0


def test_reusing_a_pending_order_id_is_a_caller_bug() -> None:
    h = Harness()
    h.broker.submit(order("x"))
    with pytest.raises(ValueError, match="order x is already pending"):
        h.broker.submit(order("x"))
    assert h.fills == []
    assert h.broker.pending_count == 1


def test_cancel_strategy_and_cancel_all() -> None:
    h = Harness()
    h.broker.submit(order("a", strategy_id="s1"))
    h.broker.submit(order("b", strategy_id="s2"))
    h.broker.submit(order("c", strategy_id="s1", symbol="MSFT"))
    assert h.broker.cancel_strategy("s1", "strategy s1 stopped") == 2
    assert {f.order_id for f in h.fills} == {"a", "c"}
    assert all(f.reason == "strategy s1 stopped" for f in h.fills)
    assert h.broker.cancel_all("kill switch engaged") == 1
    assert h.fills[-1].order_id == "b"
    assert h.broker.pending_count == 0
    assert h.tick("AAPL", 10.0) == 0


def test_fill_at_uses_the_same_arithmetic_for_backtests() -> None:
    h = Harness(slippage_bps=20.0, commission_bps=10.0)
    fill = h.broker.fill_at(order(side=Side.SELL, quantity=4.0), 50.0, T0 + 60)
    assert fill.status is TradeStatus.FILLED
    assert fill.price == pytest.approx(50.0 * 0.998)
    assert fill.commission == pytest.approx(4 * 50.0 * 0.998 * 10 / 1e4)
    assert fill.ts == T0 + 60
    assert h.fills == []  # a backtest fill is returned, not reported
    bad = h.broker.fill_at(order(), float("nan"), T0)
    assert bad.status is TradeStatus.REJECTED
    assert bad.reason == "no valid price for AAPL: got nan"


def test_broker_fills_flow_into_the_book() -> None:
    clock = ManualClock(T0)
    book = PortfolioBook()
    broker = PaperBroker(PaperBrokerConfig(slippage_bps=0.0), clock)
    for fill in [
        *broker.submit(order("a", side=Side.BUY, quantity=10.0)),
        *broker.on_tick(Tick("AAPL", 100.0, 1.0, T0)),
    ]:
        book.apply_fill(fill)
    clock.advance(60.0)
    for fill in [
        *broker.submit(order("b", side=Side.SELL, quantity=10.0)),
        *broker.on_tick(Tick("AAPL", 103.0, 1.0, T0 + 60.0)),
    ]:
        book.apply_fill(fill)
    portfolio = book.portfolio("s1")
    assert portfolio.position("AAPL") == 0
    assert portfolio.realized_pnl == pytest.approx(30.0)


@pytest.mark.parametrize(
    "field",
    [
        {"slippage_bps": -1.0},
        {"slippage_bps": 1001.0},
        {"fill_timeout_seconds": 0.0},
        {"max_pending_orders": 0},
        {"commission_bps": float("nan")},
        {"slipage_bps": 1.0},
    ],
)
def test_config_rejects_out_of_bounds_and_unknown_fields(field: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        PaperBrokerConfig.model_validate(field)


def test_config_defaults_and_descriptions() -> None:
    config = PaperBrokerConfig()
    assert config.slippage_bps == 1.0
    assert config.fill_timeout_seconds == 5.0
    assert config.max_pending_orders == 10_000
    assert all(f.description for f in PaperBrokerConfig.model_fields.values())
