"""Positions and P&L, worked by hand, plus a cash-flow property over random fills."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.model.orders import Fill, Side, TradeStatus
from orchestrator.trading.portfolio import (
    Pnl,
    Portfolio,
    PortfolioBook,
    Position,
    account,
    reduces_position,
    reducing_part,
    reverses_position,
    utc_day,
)

T0 = 1_700_000_000.0


def fill(
    side: Side,
    quantity: float,
    price: float,
    *,
    symbol: str = "AAPL",
    strategy_id: str = "s1",
    commission: float = 0.0,
    ts: float = T0,
    status: TradeStatus = TradeStatus.FILLED,
) -> Fill:
    return Fill(
        id="trade_000001",  # positions never look at fill ids
        order_id="order",
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        quantity=quantity,
        price=price,
        commission=commission,
        ts=ts,
        status=status,
    )


def buy(quantity: float, price: float, **kwargs: Any) -> Fill:
    return fill(Side.BUY, quantity, price, **kwargs)


def sell(quantity: float, price: float, **kwargs: Any) -> Fill:
    return fill(Side.SELL, quantity, price, **kwargs)


# --- one position -------------------------------------------------------------


def test_open_long_sets_entry_and_open_time() -> None:
    position = Position("AAPL")
    change = position.apply_fill(buy(10, 100.0, ts=T0))
    assert position.quantity == 10
    assert position.entry_price == 100.0
    assert position.opened_at == T0
    assert position.realized_pnl == 0.0
    assert change.quantity_before == 0 and change.quantity_after == 10
    assert change.opened_quantity == 10 and change.closed_quantity == 0
    assert change.is_entry and not change.is_exit
    assert change.opened_direction == 1
    assert change.closed_duration is None


def test_adding_averages_the_entry_price_and_keeps_open_time() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0, ts=T0))
    change = position.apply_fill(buy(30, 120.0, ts=T0 + 60))
    assert position.quantity == 40
    assert position.entry_price == pytest.approx((10 * 100 + 30 * 120) / 40)  # 115
    assert position.opened_at == T0
    assert change.entry_price_before == 100.0
    assert change.entry_price_after == pytest.approx(115.0)
    assert change.opened_quantity == 30


def test_partial_close_realizes_on_closed_quantity_and_keeps_entry() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0, ts=T0))
    change = position.apply_fill(sell(4, 110.0, ts=T0 + 600))
    assert position.quantity == 6
    assert position.entry_price == 100.0
    assert position.opened_at == T0
    assert position.realized_pnl == pytest.approx(40.0)
    assert change.closed_quantity == 4 and change.opened_quantity == 0
    assert change.realized_pnl == pytest.approx(40.0)
    assert change.closed_pnl_pct == pytest.approx(10.0)
    assert change.closed_duration == 600
    assert change.closed_duration_minutes == 10
    assert change.closed_direction == 1
    assert change.exit_price == 110.0


def test_full_close_resets_entry_and_open_time() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0, ts=T0))
    change = position.apply_fill(sell(10, 95.0, ts=T0 + 2700))
    assert position.quantity == 0
    assert not position.is_open
    assert position.entry_price == 0.0
    assert position.opened_at is None
    assert position.realized_pnl == pytest.approx(-50.0)
    assert change.quantity_after == 0
    assert change.entry_price_before == 100.0 and change.entry_price_after == 0.0
    assert change.closed_pnl_pct == pytest.approx(-5.0)
    assert change.closed_duration_minutes == 45


def test_reversal_long_to_short_in_one_fill() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0, ts=T0))
    change = position.apply_fill(sell(25, 110.0, ts=T0 + 300))
    assert position.quantity == -15
    assert position.entry_price == 110.0
    assert position.opened_at == T0 + 300
    assert position.realized_pnl == pytest.approx(100.0)  # only the 10 closed
    assert change.is_reversal
    assert change.closed_quantity == 10 and change.opened_quantity == 15
    assert change.closed_direction == 1 and change.opened_direction == -1
    assert change.entry_price_before == 100.0 and change.entry_price_after == 110.0
    assert change.closed_duration == 300


def test_reversal_short_to_long_in_one_fill() -> None:
    position = Position("AAPL")
    position.apply_fill(sell(10, 100.0, ts=T0))
    change = position.apply_fill(buy(12, 90.0, ts=T0 + 120))
    assert position.quantity == 2
    assert position.entry_price == 90.0
    assert position.opened_at == T0 + 120
    assert change.realized_pnl == pytest.approx(100.0)  # short 10 from 100 to 90
    assert change.closed_direction == -1 and change.opened_direction == 1
    assert change.closed_pnl_pct == pytest.approx(10.0)


def test_short_pnl_signs() -> None:
    position = Position("AAPL")
    position.apply_fill(sell(10, 100.0))
    position.apply_fill(sell(10, 110.0))
    assert position.quantity == -20
    assert position.entry_price == pytest.approx(105.0)
    position.mark(115.0, T0 + 1)
    assert position.unrealized_pnl == pytest.approx(-200.0)
    assert position.market_value == pytest.approx(-2300.0)
    assert position.notional == pytest.approx(2300.0)
    change = position.apply_fill(buy(5, 95.0))
    assert change.realized_pnl == pytest.approx(50.0)
    assert position.quantity == -15
    assert position.entry_price == pytest.approx(105.0)


def test_commission_reduces_realized_pnl_on_every_fill() -> None:
    position = Position("AAPL")
    opening = position.apply_fill(buy(10, 100.0, commission=1.5))
    assert opening.realized_pnl == -1.5
    assert position.realized_pnl == -1.5
    closing = position.apply_fill(sell(10, 101.0, commission=2.0))
    assert closing.closed_pnl == pytest.approx(10.0)
    assert closing.realized_pnl == pytest.approx(8.0)
    assert position.realized_pnl == pytest.approx(6.5)
    assert position.commission_paid == pytest.approx(3.5)


def test_marks_drive_unrealized_pnl() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0))
    assert position.last_price == 100.0  # never marked: the fill is the price
    position.mark(104.0, T0 + 5)
    assert position.last_price == 104.0 and position.marked_at == T0 + 5
    assert position.unrealized_pnl == pytest.approx(40.0)
    assert position.market_value == pytest.approx(1040.0)
    position.mark(float("nan"), T0 + 6)
    position.mark(-1.0, T0 + 6)
    assert position.last_price == 104.0 and position.marked_at == T0 + 5


def test_fill_does_not_overwrite_an_existing_mark() -> None:
    position = Position("AAPL")
    position.mark(100.0, T0)
    position.apply_fill(buy(10, 100.01))  # paid slippage
    assert position.last_price == 100.0
    assert position.unrealized_pnl == pytest.approx(-0.1)


def test_rejected_fill_changes_nothing() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(10, 100.0))
    change = position.apply_fill(
        fill(Side.SELL, 10, 0.0, status=TradeStatus.REJECTED, commission=0.0)
    )
    assert not change.applied
    assert position.quantity == 10 and position.entry_price == 100.0
    assert change.quantity_before == change.quantity_after == 10
    assert change.realized_pnl == 0.0 and change.closed_quantity == 0


def test_float_dust_counts_as_flat() -> None:
    position = Position("AAPL")
    position.apply_fill(buy(0.1, 10.0))
    position.apply_fill(buy(0.2, 10.0))
    position.apply_fill(sell(0.3, 10.0))  # 0.1 + 0.2 - 0.3 is 5.5e-17
    assert position.quantity == 0.0
    assert position.opened_at is None


def test_a_filled_fill_with_a_bad_price_is_refused() -> None:
    position = Position("AAPL")
    with pytest.raises(ValueError, match="price"):
        position.apply_fill(buy(1, float("nan")))
    with pytest.raises(ValueError, match="MSFT"):
        position.apply_fill(buy(1, 10.0, symbol="MSFT"))


# --- one strategy -------------------------------------------------------------


def test_portfolio_totals_and_open_positions() -> None:
    portfolio = Portfolio("s1")
    portfolio.apply_fill(buy(10, 100.0, commission=1.0))
    portfolio.apply_fill(sell(5, 50.0, symbol="MSFT"))
    portfolio.apply_fill(buy(3, 20.0, symbol="TSLA"))
    portfolio.apply_fill(sell(3, 25.0, symbol="TSLA"))
    portfolio.mark("AAPL", 110.0)
    portfolio.mark("MSFT", 40.0)
    assert portfolio.position("AAPL") == 10
    assert portfolio.position("MSFT") == -5
    assert portfolio.position("TSLA") == 0
    assert portfolio.position("NVDA") == 0
    # Flat positions are kept for their realized P&L but are not "open".
    assert [p.symbol for p in portfolio.open_positions()] == ["AAPL", "MSFT"]
    assert [p.symbol for p in portfolio] == ["AAPL", "MSFT", "TSLA"]
    assert portfolio.realized_pnl == pytest.approx(15.0 - 1.0)
    assert portfolio.unrealized_pnl == pytest.approx(100.0 + 50.0)
    assert portfolio.gross_exposure == pytest.approx(1100.0 + 200.0)


def test_portfolio_refuses_another_strategys_fill() -> None:
    with pytest.raises(ValueError, match="s2"):
        Portfolio("s1").apply_fill(buy(1, 10.0, strategy_id="s2"))


def test_rejected_fill_creates_no_position() -> None:
    portfolio = Portfolio("s1")
    change = portfolio.apply_fill(fill(Side.BUY, 1, 0.0, status=TradeStatus.REJECTED))
    assert not change.applied
    assert portfolio.get("AAPL") is None


# --- every strategy -----------------------------------------------------------


def test_book_routes_fills_by_strategy() -> None:
    book = PortfolioBook()
    book.apply_fill(buy(10, 100.0, strategy_id="s1"))
    book.apply_fill(sell(4, 100.0, strategy_id="s2"))
    assert book.portfolio("s1").position("AAPL") == 10
    assert book.portfolio("s2").position("AAPL") == -4
    assert sorted(book.strategy_ids()) == ["s1", "s2"]


def test_book_mark_touches_only_positions_in_that_symbol() -> None:
    book = PortfolioBook()
    for strategy in ("s1", "s2", "s3"):
        book.apply_fill(buy(1, 100.0, strategy_id=strategy, symbol="AAPL"))
        book.apply_fill(buy(1, 50.0, strategy_id=strategy, symbol="MSFT"))
    msft = [book.portfolio(s).get("MSFT") for s in ("s1", "s2", "s3")]
    touched = book.mark("AAPL", 101.0, T0 + 1)
    assert touched == 3
    assert book.mark("NVDA", 10.0, T0 + 1) == 0
    for strategy in ("s1", "s2", "s3"):
        aapl = book.portfolio(strategy).get("AAPL")
        assert aapl is not None and aapl.last_price == 101.0 and aapl.marked_at == T0 + 1
    for position in msft:
        assert position is not None and position.last_price == 50.0 and position.marked_at is None
    assert book.unrealized_pnl == pytest.approx(3.0)
    assert book.gross_exposure == pytest.approx(3 * 101.0 + 3 * 50.0)


def test_book_seeds_new_positions_with_the_last_mark() -> None:
    book = PortfolioBook()
    book.mark("AAPL", 100.0, T0)
    book.apply_fill(buy(10, 100.05))
    position = book.portfolio("s1").get("AAPL")
    assert position is not None and position.last_price == 100.0
    assert book.last_price("AAPL") == 100.0


# --- the accounting identity --------------------------------------------------

SYMBOLS = ("AAPL", "MSFT")
cents = st.integers(min_value=1, max_value=100_000).map(lambda n: n / 100)
fills = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from(list(Side)),
        cents,  # quantity 0.01 .. 1000
        cents,  # price 0.01 .. 1000
        st.integers(min_value=0, max_value=500).map(lambda n: n / 100),  # commission
    ),
    max_size=40,
)


@given(fills=fills, last=st.tuples(cents, cents))
def test_realized_plus_unrealized_equals_cash_flow_pnl(
    fills: list[tuple[str, Side, float, float, float]], last: tuple[float, float]
) -> None:
    portfolio = Portfolio("s1")
    cash = 0.0
    for symbol, side, quantity, price, commission in fills:
        portfolio.apply_fill(fill(side, quantity, price, symbol=symbol, commission=commission))
        cash += -side.sign * quantity * price - commission
    for symbol, price in zip(SYMBOLS, last, strict=True):
        portfolio.mark(symbol, price)
        cash += portfolio.position(symbol) * price
    assert portfolio.realized_pnl + portfolio.unrealized_pnl == pytest.approx(cash, abs=1e-6)


@pytest.mark.parametrize(
    ("held", "signed", "reduces", "reverses", "part"),
    [
        (10.0, -4.0, True, False, 4.0),  # partly closes a long
        (10.0, -10.0, True, False, 10.0),  # exactly to flat
        (10.0, -25.0, False, True, 10.0),  # through zero: only the 10 closes
        (-10.0, 25.0, False, True, 10.0),  # a short, reversed
        (10.0, 5.0, False, False, 0.0),  # adds to the long
        (0.0, 5.0, False, False, 0.0),  # opens from flat
        (0.0, -5.0, False, False, 0.0),
    ],
)
def test_what_an_order_does_to_a_position(
    held: float, signed: float, reduces: bool, reverses: bool, part: float
) -> None:
    assert reduces_position(held, signed) is reduces
    assert reverses_position(held, signed) is reverses
    assert reducing_part(held, signed) == part


# ---------------------------------------------------------------- P&L periods, account

MIDNIGHT = (T0 // 86_400 + 1) * 86_400
"""The first 00:00 UTC after T0 (22:13:20 UTC)."""


def test_realized_today_counts_the_fills_of_the_day_asked_for() -> None:
    book = PortfolioBook()
    book.apply_fill(fill(Side.BUY, 10, 100.0, commission=1.0, ts=MIDNIGHT - 60))
    book.apply_fill(fill(Side.SELL, 4, 110.0, commission=1.0, ts=MIDNIGHT - 30))  # +40 - 1
    portfolio = book.portfolio("s1")
    yesterday, today = utc_day(MIDNIGHT - 1), utc_day(MIDNIGHT)
    assert portfolio.pnl(yesterday) == Pnl(38.0, 38.0, 0.0)  # the opening commission too
    assert portfolio.pnl(today) == Pnl(0.0, 38.0, 0.0)  # midnight passed: nothing yet today
    book.apply_fill(fill(Side.SELL, 6, 90.0, commission=1.0, ts=MIDNIGHT + 30))  # -60 - 1
    assert portfolio.pnl(today) == Pnl(-61.0, -23.0, 0.0)
    assert portfolio.pnl(today + 1) == Pnl(0.0, -23.0, 0.0)  # a day without fills


def test_the_account_of_a_long_and_a_short() -> None:
    book = PortfolioBook()
    book.apply_fill(fill(Side.BUY, 10, 100.0, commission=2.0))
    book.apply_fill(fill(Side.SELL, 5, 50.0, symbol="MSFT", strategy_id="s2"))
    book.mark("AAPL", 104.0)
    book.mark("MSFT", 52.0)
    day = utc_day(T0)
    shown = account(book, 1_000.0, day)
    # Cash: 1,000 - 2 commission - 1,000 paid for the long + 250 received for the short.
    assert shown.cash == pytest.approx(248.0)
    assert shown.exposure == pytest.approx(1_040.0 + 260.0)
    assert shown.pnl == Pnl(-2.0, -2.0, 40.0 - 10.0)
    # Equity is cash plus what the positions are worth: the start plus every P&L.
    assert shown.equity == pytest.approx(248.0 + 1_040.0 - 260.0)
    assert shown.equity == pytest.approx(1_000.0 - 2.0 + 30.0)


def test_a_rebuilt_book_has_the_same_pnl_as_the_live_one() -> None:
    """A restart replays the journal's fills: the three figures come back as they were."""
    fills = [
        fill(Side.BUY, 10, 100.0, commission=1.0, ts=MIDNIGHT - 100),
        fill(Side.SELL, 20, 105.0, commission=1.0, ts=MIDNIGHT - 50),  # a reversal
        fill(Side.BUY, 10, 101.0, commission=1.0, ts=MIDNIGHT + 50),
    ]
    live = PortfolioBook()
    for done in fills:
        live.apply_fill(done)
    rebuilt = PortfolioBook()
    for done in fills:
        rebuilt.apply_fill(done)
    for day in (utc_day(MIDNIGHT - 1), utc_day(MIDNIGHT)):
        assert rebuilt.portfolio("s1").pnl(day) == live.portfolio("s1").pnl(day)
    assert live.portfolio("s1").pnl(utc_day(MIDNIGHT)).realized_today == pytest.approx(40.0 - 1.0)
