"""The Broker port: every call returns the fills it settled; nothing is called back.

Each contract test runs against every broker of the project: the paper broker of
live trading and the replay broker of backtests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from orchestrator.backtest.broker import ReplayBroker
from orchestrator.model.clock import ManualClock
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import Order, Side, TradeStatus
from orchestrator.trading.broker import Broker
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker

T0 = 1_700_000_000.0
CONFIG = PaperBrokerConfig(slippage_bps=0.0, commission_per_share=0.5)

BrokerFactory = Callable[[ManualClock], Broker]


def paper(clock: ManualClock) -> Broker:
    return PaperBroker(CONFIG, clock, SequentialIds())


def replay(clock: ManualClock) -> Broker:
    ids = SequentialIds()
    return ReplayBroker(PaperBroker(CONFIG, clock, ids), clock, ids)


BROKERS = pytest.mark.parametrize("make", [paper, replay], ids=["paper", "replay"])


def order(order_id: str, strategy_id: str = "s1", symbol: str = "AAPL") -> Order:
    return Order(order_id, strategy_id, symbol, Side.BUY, 10.0, T0)


def tick(price: float, symbol: str = "AAPL", ts: float = T0) -> Tick:
    return Tick(symbol, price, 1.0, ts)


@BROKERS
def test_an_order_waits_then_its_fill_is_returned_by_the_tick_that_fills_it(
    make: BrokerFactory,
) -> None:
    clock = ManualClock(T0)
    broker = make(clock)
    assert list(broker.submit(order("a"))) == []
    assert [o.id for o in broker.pending_orders()] == ["a"]
    assert list(broker.on_tick(tick(50.0, symbol="MSFT"))) == []
    [fill] = broker.on_tick(tick(100.0))
    assert (fill.order_id, fill.status, fill.price, fill.commission) == (
        "a",
        TradeStatus.FILLED,
        100.0,
        5.0,
    )
    assert broker.pending_count == 0
    assert list(broker.on_tick(tick(101.0))) == []  # returned once only


@BROKERS
def test_a_tick_returns_every_fill_of_its_symbol_in_submission_order(
    make: BrokerFactory,
) -> None:
    broker = make(ManualClock(T0))
    for order_id, symbol in [("a", "AAPL"), ("b", "MSFT"), ("c", "AAPL")]:
        broker.submit(order(order_id, symbol=symbol))
    assert [f.order_id for f in broker.on_tick(tick(100.0))] == ["a", "c"]
    assert [o.id for o in broker.pending_orders()] == ["b"]


@BROKERS
def test_cancels_return_the_rejections(make: BrokerFactory) -> None:
    clock = ManualClock(T0)
    broker = make(clock)
    broker.submit(order("a", strategy_id="s1"))
    broker.submit(order("b", strategy_id="s2"))
    broker.submit(order("c", strategy_id="s1"))
    clock.advance(1.0)
    cancelled = broker.cancel_strategy("s1", "strategy stopped")
    assert [(f.order_id, f.status, f.reason, f.ts) for f in cancelled] == [
        ("a", TradeStatus.REJECTED, "strategy stopped", T0 + 1.0),
        ("c", TradeStatus.REJECTED, "strategy stopped", T0 + 1.0),
    ]
    assert [f.order_id for f in broker.cancel_all("shutting down")] == ["b"]
    assert broker.pending_count == 0
    assert list(broker.cancel_all("again")) == []


@pytest.mark.parametrize("cls", [PaperBroker, ReplayBroker])
def test_a_broker_is_given_no_fill_handler(cls: type) -> None:
    parameters = inspect.signature(cls).parameters
    assert not any("fill" in name or "handler" in name for name in parameters)


def test_the_paper_broker_returns_a_rejection_from_submit_and_from_expire() -> None:
    clock = ManualClock(T0)
    broker = PaperBroker(PaperBrokerConfig(max_pending_orders=1), clock, SequentialIds())
    assert list(broker.submit(order("a"))) == []
    [refused] = broker.submit(order("b"))
    assert (refused.order_id, refused.reason) == ("b", "too many pending orders (1)")
    clock.advance(CONFIG.fill_timeout_seconds + 1.0)
    [expired] = broker.expire()
    assert expired.order_id == "a" and expired.status is TradeStatus.REJECTED
    assert broker.pending_count == 0


def test_the_replay_broker_has_no_wall_clock_an_order_waits_for_the_next_price() -> None:
    clock = ManualClock(T0)
    broker = replay(clock)
    broker.submit(order("a"))
    clock.advance(3 * 86_400.0)  # a weekend between two daily bars
    assert list(broker.expire()) == []
    [fill] = broker.on_tick(tick(100.0, ts=clock.now()))
    assert fill.status is TradeStatus.FILLED and fill.ts == T0 + 3 * 86_400.0


def test_the_replay_broker_rejects_an_order_at_a_broken_price_as_the_paper_arithmetic_does() -> (
    None
):
    broker = replay(ManualClock(T0))
    broker.submit(order("a"))
    [fill] = broker.on_tick(tick(float("nan")))
    assert fill.status is TradeStatus.REJECTED
    assert fill.reason == "no valid price for AAPL: got nan"
