"""The broker router: paper strategies stay on the paper broker, a live one goes to the
venue it was started on, and a venue that cannot take orders says why."""

from __future__ import annotations

from collections.abc import Collection

from orchestrator.model.clock import ManualClock
from orchestrator.model.events import VenueState
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Tick
from orchestrator.model.orders import Order, Side
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.routing import BrokerRouter


class VenueOnPaper(PaperBroker):
    """A venue's stand-in: paper fills, a connection state and a list of markets."""

    def __init__(self, clock: ManualClock, markets: set[str]) -> None:
        super().__init__(PaperBrokerConfig(slippage_bps=0.0), clock, SequentialIds())
        self.markets = markets
        self.state = VenueState("main", True)

    def trading_problem(self, symbols: Collection[str]) -> str | None:
        missing = sorted(set(symbols) - self.markets)
        return f"no market {', '.join(missing)}" if missing else None


def order(strategy_id: str, number: int) -> Order:
    return Order(f"order_{number}", strategy_id, "BTC/USDT", Side.BUY, 1.0, 0.0)


def test_orders_go_where_their_strategy_is_routed() -> None:
    clock = ManualClock(0.0)
    paper = PaperBroker(PaperBrokerConfig(), clock, SequentialIds())
    venue = VenueOnPaper(clock, {"BTC/USDT"})
    router = BrokerRouter(paper)
    router.add_venue("main", venue)
    router.route("live", "main")
    router.submit(order("live", 1))
    router.submit(order("paper", 2))
    assert [o.id for o in venue.pending_orders()] == ["order_1"]
    assert [o.id for o in paper.pending_orders()] == ["order_2"]
    assert router.pending_count == 2 and router.venue_of("live") == "main"
    fills = router.on_tick(Tick("BTC/USDT", 100.0, 1.0, 0.0))
    assert sorted(fill.order_id for fill in fills) == ["order_1", "order_2"]
    router.route("live", None)
    router.submit(order("live", 3))
    assert [o.id for o in paper.pending_orders()] == ["order_3"]
    assert router.venue_of("live") is None


def test_a_venue_that_cannot_trade_says_why() -> None:
    clock = ManualClock(0.0)
    router = BrokerRouter(PaperBroker(PaperBrokerConfig(), clock, SequentialIds()))
    assert "none is configured" in (router.problem("main", ["BTC/USDT"]) or "")
    venue = VenueOnPaper(clock, {"BTC/USDT"})
    router.add_venue("main", venue)
    assert router.problem(None, ["BTC/USDT"]) is not None
    assert router.problem("main", ["BTC/USDT"]) is None
    assert router.problem("main", ["ETH/USDT"]) == "no market ETH/USDT"
    venue.state = VenueState("main", False, "venue main cannot be reached")
    assert router.problem("main", ["BTC/USDT"]) == (
        "venue main is not connected (venue main cannot be reached); no order is sent blind"
    )
    assert router.states() == (venue.state,)
