"""The report of a run against backtesting.py, the oracle: the same seeded bars and the
same rules give the same equity at every bar, the same trades and the same statistics;
then the downsampling, the pages and the wire shape."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as OracleStrategy
from backtesting.test import SMA

from orchestrator.backtest.engine import (
    END_OF_DATA,
    BacktestEngine,
    BacktestResult,
    SyntheticSource,
    load_bars,
)
from orchestrator.backtest.report import (
    PAGE_POINTS,
    PAGE_TRADES,
    SUMMARY_POINTS,
    SUMMARY_TRADES,
    BacktestReport,
    build_report,
    downsample,
)
from orchestrator.backtest.statistics import ClosedTrade, compute_statistics, trade_columns
from orchestrator.model.market import Bar
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig
from tests.orchestrator.backtest.test_statistics import REL_TOL, epoch_seconds, mismatches

pytestmark = [
    pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning:backtesting"),
]

SYMBOL = "TEST"
FAST, SLOW = 5, 20
STAKE = 10_000.0
"""maxPositionValue: the runtime sizes floor(STAKE * 0.95 / close) units."""
CAPITAL = 100_000.0
"""Far above the stake, so backtesting.py's margin check never refuses an order."""
COMMISSION = 0.002


class OracleSmaRegime(OracleStrategy):  # type: ignore[misc]
    """Our built-in sma_crossover with allow_short, in backtesting.py's words: long while
    the fast average is above the slow, short while below, sized as our runtime sizes
    (floor(0.95 * maxPositionValue / close)); exclusive_orders reverses in one go."""

    def init(self) -> None:
        self.fast_sma = self.I(SMA, self.data.Close, FAST)
        self.slow_sma = self.I(SMA, self.data.Close, SLOW)

    def next(self) -> None:
        fast, slow = self.fast_sma[-1], self.slow_sma[-1]
        size = math.floor(STAKE * 0.95 / self.data.Close[-1])
        if fast > slow and not self.position.is_long:
            self.buy(size=size)
        elif fast < slow and not self.position.is_short:
            self.sell(size=size)


def seeded_bars(seed: int = 5) -> list[Bar]:
    source = SyntheticSource(duration_seconds=3 * 86_400, ticks_per_second=0.2, seed=seed)
    return load_bars(source, SYMBOL, "1m")


def frame_of(bars: list[Bar]) -> pd.DataFrame:
    index = pd.to_datetime([bar.start for bar in bars], unit="s")
    columns = {
        "Open": [bar.open for bar in bars],
        "High": [bar.high for bar in bars],
        "Low": [bar.low for bar in bars],
        "Close": [bar.close for bar in bars],
        "Volume": [bar.volume for bar in bars],
    }
    return pd.DataFrame(columns, index=index)


def run_ours(bars: list[Bar]) -> BacktestResult:
    config = StrategyRunConfig(
        symbols=(SYMBOL,),
        data_resolution="1m",
        max_position_value=STAKE,
        stop_loss_percentage=0.0,
        max_orders_per_minute=100,
    )
    engine = BacktestEngine(
        SmaCrossover,
        SmaCrossoverParams(fast=FAST, slow=SLOW, allow_short=True),
        config,
        broker=PaperBrokerConfig(slippage_bps=0.0, commission_bps=COMMISSION * 1e4),
        risk=RiskConfig(max_daily_loss=1e9, max_gross_exposure=1e9),
        initial_capital=CAPITAL,
    )
    return engine.run(bars)


def run_oracle(frame: pd.DataFrame) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(
            frame, OracleSmaRegime, cash=CAPITAL, commission=COMMISSION, exclusive_orders=True
        )
        return backtest.run()


@pytest.fixture(scope="module")
def runs() -> tuple[BacktestResult, BacktestReport, pd.Series]:
    bars = seeded_bars()
    result = run_ours(bars)
    return result, build_report(result), run_oracle(frame_of(bars))


def close(ours: Any, theirs: Any) -> bool:
    return bool(np.allclose(ours, theirs, rtol=REL_TOL, atol=0.0))


def test_the_equity_at_every_bar_is_backtesting_pys(runs: Any) -> None:
    result, _, oracle = runs
    theirs = oracle._equity_curve["Equity"].to_numpy()
    assert len(result.curve.equity) == len(theirs) == result.bars
    assert close(result.curve.equity, theirs)
    assert result.curve.equity[-1] == pytest.approx(result.final_equity, rel=1e-12)


def test_every_trade_is_backtesting_pys(runs: Any) -> None:
    _, report, oracle = runs
    theirs = oracle._trades
    assert len(theirs) > 30
    assert len(report.trades) == len(theirs)
    ours = report.trades
    assert [t.entry_bar for t in ours] == theirs["EntryBar"].tolist()
    assert [t.exit_bar for t in ours] == theirs["ExitBar"].tolist()
    assert [t.entry_time for t in ours] == epoch_seconds(theirs["EntryTime"]).tolist()
    assert [t.exit_time for t in ours] == epoch_seconds(theirs["ExitTime"]).tolist()
    sizes = [t.quantity if t.side == "long" else -t.quantity for t in ours]
    assert sizes == theirs["Size"].tolist()
    for name, column in (
        ("entry_price", "EntryPrice"),
        ("exit_price", "ExitPrice"),
        ("pnl", "PnL"),
        ("commission", "Commission"),
    ):
        assert close([getattr(t, name) for t in ours], theirs[column]), name
    assert close([t.pnl_pct / 100 for t in ours], theirs["ReturnPct"])
    assert {t.exit_reason for t in ours} == {"signal"}


def test_the_statistics_are_backtesting_pys(runs: Any) -> None:
    _, report, oracle = runs
    assert mismatches(report.statistics, oracle) == {}


def test_the_position_open_at_the_end_is_reported_open_and_left_out(runs: Any) -> None:
    result, report, oracle = runs
    open_trade = report.open_trade
    assert open_trade is not None and result.open_quantity != 0
    assert open_trade.exit_reason == END_OF_DATA
    assert open_trade.exit_price == result.curve.closes[-1]
    [still_open] = oracle._strategy._broker.trades  # backtesting.py keeps it open too
    assert open_trade.entry_time == still_open.entry_time.timestamp()
    # its P&L net of the entry commission is what equity holds beyond the closed trades
    closed = sum(trade.pnl for trade in report.trades)
    assert CAPITAL + closed + open_trade.pnl == pytest.approx(result.final_equity, rel=1e-9)


def test_buy_and_hold_starts_at_the_last_warm_up_close(runs: Any) -> None:
    result, report, _ = runs
    closes, first = result.curve.closes, result.warmup_bars - 1
    assert (report.buy_and_hold[: first + 1] == CAPITAL).all()
    expected = CAPITAL * closes[-1] / closes[first]
    assert report.buy_and_hold[-1] == pytest.approx(expected, rel=1e-12)
    assert report.to_wire()["buy_and_hold_return"] == pytest.approx(
        expected / CAPITAL - 1, rel=1e-9
    )


# ---------------------------------------------------------------- downsampling


def test_downsampling_is_bounded_and_keeps_first_last_and_extremes() -> None:
    rng = np.random.default_rng(3)
    equity = 1_000 * np.exp(np.cumsum(rng.normal(0, 0.01, size=100_000)))
    equity[54_321] = 10.0  # a one-bar crash a stride would skip
    drawdown = equity / np.maximum.accumulate(equity) - 1
    for bound in (10, 500, 4_999):
        kept = downsample((equity, drawdown), bound)
        assert len(kept) <= bound
        assert kept[0] == 0 and kept[-1] == len(equity) - 1
        assert (np.diff(kept) > 0).all()
        assert equity[kept].min() == equity.min() and equity[kept].max() == equity.max()
        assert drawdown[kept].min() == drawdown.min()
    assert (downsample((equity[:300],), 500) == np.arange(300)).all()


def test_the_result_is_bounded_and_shows_the_deepest_drawdown(runs: Any) -> None:
    result, report, _ = runs
    wire = report.to_wire()
    series = wire["series"]
    assert result.bars > SUMMARY_POINTS
    assert {len(values) for values in series.values()} == {len(series["time"])}
    assert len(series["time"]) <= SUMMARY_POINTS
    assert min(series["drawdown_pct"]) == pytest.approx(
        wire["statistics"]["max_drawdown_pct"], rel=1e-12
    )
    assert max(series["equity"]) == wire["statistics"]["equity_peak"]
    assert series["equity"][-1] == wire["final_equity"]
    assert {"total_trades", "win_rate", "total_return"} <= set(wire)
    assert wire["total_trades"] == wire["statistics"]["trade_count"] > SUMMARY_TRADES
    assert len(wire["trades"]) == SUMMARY_TRADES and wire["trades_truncated"]
    assert wire["trades"] == [trade.to_wire() for trade in report.trades[:SUMMARY_TRADES]]


def test_the_pages_hold_every_point_and_trade(runs: Any) -> None:
    result, report, _ = runs
    equity: list[float] = []
    offset: int | None = 0
    while offset is not None:
        page = report.page(offset=offset)
        assert len(page["series"]["time"]) <= PAGE_POINTS
        equity += page["series"]["equity"]
        offset = page["next_offset"]
    assert equity == result.curve.equity.tolist()
    trades: list[dict[str, Any]] = []
    trade_offset: int | None = 0
    while trade_offset is not None:
        page = report.page(trade_offset=trade_offset)
        assert len(page["trades"]) <= PAGE_TRADES
        trades += page["trades"]
        trade_offset = page["next_trade_offset"]
    assert trades == [trade.to_wire() for trade in report.trades]
    assert report.page(trade_offset=len(report.trades))["trades"] == []


def test_a_stop_loss_exit_says_so() -> None:
    config = StrategyRunConfig(symbols=(SYMBOL,), data_resolution="1m", stop_loss_percentage=0.002)
    engine = BacktestEngine(SmaCrossover, SmaCrossoverParams(fast=FAST, slow=SLOW), config)
    report = build_report(engine.run(seeded_bars()))
    reasons = [trade.exit_reason for trade in report.trades]
    assert set(reasons) == {"signal", "stop_loss"}
    # a stop-loss exit fills at the price after the one that hit the stop: often within a bar
    stopped = [
        trade for trade, reason in zip(report.trades, reasons, strict=True) if reason == "stop_loss"
    ]
    assert any(trade.exit_time % 60 for trade in stopped)
    assert all(trade.side == "long" for trade in report.trades)


def test_the_columns_give_the_figures_the_trades_one_by_one_give(runs: Any) -> None:
    """build_report computes over trade columns; the same statistics from the records
    one by one (ClosedTrade, as an API user passes them) agree to the last bit."""
    result, report, _ = runs
    by_trade = compute_statistics(
        result.curve.times,
        result.curve.equity,
        result.curve.closes,
        [trade.closed_trade() for trade in report.trades],
        first_trading_bar=result.warmup_bars - 1,
    )
    assert by_trade.to_wire() == report.statistics.to_wire()
    assert all(trade.symbol == SYMBOL for trade in report.trades)


def test_bad_trade_columns_are_named() -> None:
    times = np.arange(5, dtype=np.float64)
    trade = ClosedTrade(1, 7, 1.0, 2.0, 10.0, 11.0, 1.0, 1.0, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"trade bars 1\.\.7 outside 0\.\.4"):
        compute_statistics(times, np.ones(5), np.ones(5), trade_columns([trade]))
    backwards = ClosedTrade(1, 2, 2.0, 1.0, 10.0, 11.0, 1.0, 1.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="must not precede"):
        compute_statistics(times, np.ones(5), np.ones(5), [backwards])
