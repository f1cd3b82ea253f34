"""A backtest's report: its figures, its trades, and its curves, for a trader to judge.

:func:`build_report` turns what the engine measured (a :class:`BacktestResult`:
per-bar equity, closes and round trips) into a :class:`BacktestReport`: the
statistics of :mod:`orchestrator.backtest.statistics`, every trade with its times,
prices, P&L and exit reason, the equity, drawdown and buy-and-hold curves. Two
wire shapes (snake_case keys, as the job result's neighbours ``total_trades``...):

- :meth:`BacktestReport.to_wire`: the job's result (``job.completed`` and
  ``backtest_job``), bounded whatever the run's length: the curves downsampled to
  at most ``SUMMARY_POINTS`` points (each bucket keeps its extremes, so the
  deepest drawdown and the equity's peak and trough stay visible), the first
  ``SUMMARY_TRADES`` trades.
- :meth:`BacktestReport.page`: the full curves and trades, a page at a time
  (``get_backtest_report``): at most ``PAGE_POINTS`` points and ``PAGE_TRADES``
  trades per reply, so one reply stays far below a connection's outbound limit.

docs/statistics.md describes the figures and the bounds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from orchestrator.backtest.engine import BacktestResult, EquityCurve, RoundTrip
from orchestrator.backtest.statistics import (
    ClosedTrade,
    Statistics,
    TradeColumns,
    compute_statistics,
)
from orchestrator.model.clock import iso_utc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Payload = dict[str, Any]

SUMMARY_POINTS = 500
"""Most points of each curve in a job's result (downsampled, extremes kept)."""
SUMMARY_TRADES = 200
"""Most trades in a job's result (the first ones; ``get_backtest_report`` has all)."""
PAGE_POINTS = 2_000
"""Most points of each curve in one ``get_backtest_report`` reply (about 170 kB)."""
PAGE_TRADES = 500
"""Most trades in one ``get_backtest_report`` reply (about 170 kB): a page stays far
below a connection's default max_outbound_bytes (1 MiB)."""


class TradeRecord(NamedTuple):
    """One trade as a trader reads it (a named tuple: a report of a million bars makes
    tens of thousands, and a tuple is built several times faster than a dataclass)."""

    side: str
    """"long" or "short"."""
    quantity: float
    """The largest quantity held during the trade."""
    entry_time: float
    """Epoch seconds of the entry fill."""
    exit_time: float
    """Epoch seconds of the exit fill (for the trade open at the end: the last bar's end)."""
    entry_price: float
    """Average entry price of the quantity held when it closed."""
    exit_price: float
    pnl: float
    """Net of the trade's commissions, account currency."""
    pnl_pct: float
    """pnl over the entry notional (quantity x entry price), %."""
    commission: float
    duration_seconds: float
    exit_reason: str
    """"signal", "stop_loss", ... (why the closing order was sent) or "end_of_data"."""
    entry_bar: int
    """Index of the bar the entry filled in (warm-up bars counted)."""
    exit_bar: int
    symbol: str = ""
    """The traded symbol."""

    def to_wire(self) -> Payload:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "quantity": self.quantity,
            "entry_time": iso_utc(self.entry_time),
            "exit_time": iso_utc(self.exit_time),
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "pnl": self.pnl,
            "pnl_pct": self.pnl_pct,
            "commission": self.commission,
            "duration_seconds": self.duration_seconds,
            "exit_reason": self.exit_reason,
            "entry_bar": self.entry_bar,
            "exit_bar": self.exit_bar,
        }

    def closed_trade(self) -> ClosedTrade:
        return ClosedTrade(
            entry_bar=self.entry_bar,
            exit_bar=self.exit_bar,
            entry_time=self.entry_time,
            exit_time=self.exit_time,
            entry_price=self.entry_price,
            exit_price=self.exit_price,
            size=self.quantity if self.side == "long" else -self.quantity,
            pnl=self.pnl,
            return_fraction=self.pnl_pct / 100,
            commission=self.commission,
        )


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """Everything a backtest job shows; picklable (it crosses from the worker process)."""

    summary: Payload
    """The engine's counts: ``BacktestResult.to_payload()`` (total_trades, win_rate...)."""
    statistics: Statistics
    trades: tuple[TradeRecord, ...]
    """Closed trades, in order."""
    open_trade: TradeRecord | None
    """Still open after the last bar, marked at its close; not in the statistics."""
    times: FloatArray
    """Start of each bar, epoch seconds."""
    equity: FloatArray
    """Account equity at each bar's close."""
    closes: FloatArray
    """The traded symbol's close of each bar (the price chart of the HTML report)."""
    buy_and_hold: FloatArray
    """Equity of buying the initial capital's worth at the last warm-up bar's close
    and holding it (the initial capital before it), as backtesting.py's Buy & Hold."""
    open_trades: tuple[TradeRecord, ...] = ()
    """Every trade still open after the last bar: ``open_trade``, or each symbol's."""
    parts: tuple[BacktestReport, ...] = ()
    """Several symbols on one account: each symbol's report (its trades, its P&L over the
    account's capital, its closes), in the job's order; () for one symbol."""

    @property
    def symbol(self) -> str:
        """The symbol of a one-symbol report ("" for an account of several)."""
        symbols = self.summary.get("symbols") or [""]
        return str(symbols[0]) if len(symbols) == 1 else ""

    @property
    def points(self) -> int:
        return len(self.times)

    @property
    def drawdown_pct(self) -> FloatArray:
        """Equity's fall below its running peak at each bar, % (zero or negative)."""
        drawdown: FloatArray = (self.equity / np.maximum.accumulate(self.equity) - 1) * 100
        return drawdown

    def to_wire(self) -> Payload:
        """The job's result: bounded curves and trades (module docstring)."""
        kept = downsample((self.equity, self.drawdown_pct), SUMMARY_POINTS)
        return {
            **self.summary,
            "statistics": self.statistics.to_wire(snake_case=True),
            "buy_and_hold_return": self.statistics.buy_and_hold_return_pct / 100,
            "trades": [trade.to_wire() for trade in self.trades[:SUMMARY_TRADES]],
            "trades_truncated": len(self.trades) > SUMMARY_TRADES,
            "open_trade": self.open_trade.to_wire() if self.open_trade is not None else None,
            "open_trades": [trade.to_wire() for trade in self.open_trades],
            "series": self._series(kept),
            "series_points": self.points,
            "per_symbol": [
                part.symbol_summary(SUMMARY_TRADES // len(self.parts)) for part in self.parts
            ],
        }

    def symbol_summary(self, trades: int) -> Payload:
        """One symbol of an account's result: its counts, statistics and first ``trades``
        trades (the account's ``trades`` and the pages hold them all)."""
        return {
            **self.summary,
            "symbol": self.symbol,
            "statistics": self.statistics.to_wire(snake_case=True),
            "buy_and_hold_return": self.statistics.buy_and_hold_return_pct / 100,
            "trades": [trade.to_wire() for trade in self.trades[:trades]],
            "trades_truncated": len(self.trades) > trades,
            "open_trade": self.open_trade.to_wire() if self.open_trade is not None else None,
        }

    def page(self, offset: int = 0, trade_offset: int = 0) -> Payload:
        """Every point and trade from the offsets on, up to PAGE_POINTS and PAGE_TRADES;
        ``next_offset`` and ``next_trade_offset`` name the next page (None: no more)."""
        points = np.arange(min(offset, self.points), min(offset + PAGE_POINTS, self.points))
        trades = self.trades[trade_offset : trade_offset + PAGE_TRADES]
        return {
            "points": self.points,
            "offset": offset,
            "next_offset": _next_page(offset, PAGE_POINTS, self.points),
            "series": self._series(points),
            "trade_count": len(self.trades),
            "trade_offset": trade_offset,
            "next_trade_offset": _next_page(trade_offset, PAGE_TRADES, len(self.trades)),
            "trades": [trade.to_wire() for trade in trades],
            "open_trade": self.open_trade.to_wire() if self.open_trade is not None else None,
            "open_trades": [trade.to_wire() for trade in self.open_trades],
            "statistics": self.statistics.to_wire(snake_case=True),
            "per_symbol": [
                {"symbol": part.symbol, "statistics": part.statistics.to_wire(snake_case=True)}
                for part in self.parts
            ],
        }

    def _series(self, kept: IntArray) -> Payload:
        return {
            "time": [iso_utc(ts) for ts in self.times[kept].tolist()],
            "equity": self.equity[kept].tolist(),
            "drawdown_pct": self.drawdown_pct[kept].tolist(),
            "buy_and_hold": self.buy_and_hold[kept].tolist(),
        }


REPORT_KEYS = (
    "statistics",
    "buy_and_hold_return",
    "trades",
    "trades_truncated",
    "open_trade",
    "open_trades",
    "series",
    "series_points",
    "per_symbol",
)
"""The keys of a job's result that ``counts_only`` drops: what the report added."""


def counts_only(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A job's result without its report (statistics, trades, curves): the engine's
    counts, ``BacktestResult.to_payload()``. What a job listing shows and an old job
    keeps, so that a thousand of them stay small (about 400 bytes of JSON each)."""
    if result is None:
        return None
    return {key: value for key, value in result.items() if key not in REPORT_KEYS}


def build_report(result: BacktestResult) -> BacktestReport:
    """The figures, trades and curves of a finished run."""
    curve = result.curve
    columns = _trade_columns(result.trades, curve.times)
    # backtesting.py holds from the close before the first bar its strategy trades on:
    # the last warm-up bar's (its warm-up counts one bar less than ours).
    first_trading_bar = result.first_trading_bar
    if first_trading_bar is None:
        first_trading_bar = max(result.warmup_bars - 1, 0)
    statistics = compute_statistics(
        curve.times,
        curve.equity,
        curve.closes,
        columns.statistics,
        first_trading_bar=first_trading_bar,
    )
    open_trades = _trade_columns(result.open_trades, curve.times).records()
    return BacktestReport(
        summary=result.to_payload(),
        statistics=statistics,
        trades=columns.records(),
        open_trade=None if result.parts else next(iter(open_trades), None),
        open_trades=open_trades,
        parts=tuple(build_report(part) for part in result.parts),
        times=curve.times,
        equity=curve.equity,
        closes=curve.closes,
        buy_and_hold=buy_and_hold(curve, result.initial_capital, first_trading_bar),
    )


def buy_and_hold(curve: EquityCurve, capital: float, first_trading_bar: int) -> FloatArray:
    """``capital`` held in the symbol from the first trading bar's close on (fractional
    units, no commission): the line the strategy's equity is judged against."""
    closes = curve.closes
    held: FloatArray = capital * closes / closes[first_trading_bar]
    held[:first_trading_bar] = capital
    return held


def _next_page(offset: int, size: int, total: int) -> int | None:
    following = offset + size
    return following if following < total else None


@dataclass(frozen=True, slots=True)
class _TripColumns:
    """Round trips as columns: the trade records and the statistics' trades are computed
    from them for all trades at once, not trade by trade."""

    trips: Sequence[RoundTrip]
    quantity: FloatArray
    entry_time: FloatArray
    exit_time: FloatArray
    entry_price: FloatArray
    pnl: FloatArray
    pnl_pct: FloatArray
    commission: FloatArray
    entry_bar: IntArray
    exit_bar: IntArray

    @property
    def statistics(self) -> TradeColumns:
        return TradeColumns(
            entry_bar=self.entry_bar,
            exit_bar=self.exit_bar,
            entry_time=self.entry_time,
            exit_time=self.exit_time,
            pnl=self.pnl,
            return_fraction=self.pnl_pct / 100,
            commission=self.commission,
        )

    def records(self) -> tuple[TradeRecord, ...]:
        trips = self.trips
        sides = ["long" if trip.direction > 0 else "short" for trip in trips]
        return tuple(
            map(
                TradeRecord,
                sides,
                self.quantity.tolist(),
                self.entry_time.tolist(),
                self.exit_time.tolist(),
                self.entry_price.tolist(),
                [trip.exit_price for trip in trips],
                self.pnl.tolist(),
                self.pnl_pct.tolist(),
                self.commission.tolist(),
                (self.exit_time - self.entry_time).tolist(),
                [trip.exit_reason for trip in trips],
                self.entry_bar.tolist(),
                self.exit_bar.tolist(),
                [trip.symbol for trip in trips],
            )
        )


def _trade_columns(trips: Sequence[RoundTrip], times: FloatArray) -> _TripColumns:
    """The trades' columns, each with the bars its fills fell in (found for all at once:
    one search per trade would cost more than the statistics of a million bars)."""

    def column(values: list[float]) -> FloatArray:
        return np.array(values, dtype=np.float64)

    entry_time = column([trip.entry_ts for trip in trips])
    exit_time = column([trip.exit_ts for trip in trips])
    quantity = column([trip.quantity for trip in trips])
    entry_price = column([trip.entry_price for trip in trips])
    pnl = column([trip.pnl for trip in trips])
    notional = quantity * entry_price
    with np.errstate(divide="ignore", invalid="ignore"):
        pnl_pct = np.where(notional != 0, pnl / notional * 100, 0.0)
    return _TripColumns(
        trips=trips,
        quantity=quantity,
        entry_time=entry_time,
        exit_time=exit_time,
        entry_price=entry_price,
        pnl=pnl,
        pnl_pct=pnl_pct,
        commission=column([trip.commission for trip in trips]),
        entry_bar=np.searchsorted(times, entry_time, side="right") - 1,
        exit_bar=np.searchsorted(times, exit_time, side="right") - 1,
    )


def downsample(series: Sequence[FloatArray], max_points: int) -> IntArray:
    """Indexes of at most ``max_points`` points of equally long ``series`` to draw them.

    All points when there are few enough; else the first and the last, and in each of
    equal buckets of the points between, the lowest and the highest of every series:
    a chart of them shows each series' global minimum and maximum, where a plain
    stride would skip a one-bar crash. Indexes in time order.
    """
    length = len(series[0])
    if length <= max_points:
        return np.arange(length)
    per_bucket = 2 * len(series)
    buckets = max(1, (max_points - 2) // per_bucket)
    bounds = np.linspace(1, length - 1, buckets + 1).astype(np.int64)
    kept = [np.array([0, length - 1])]
    for start, stop in itertools.pairwise(bounds):
        if stop > start:
            for values in series:
                part = values[start:stop]
                kept.append(start + np.array([part.argmin(), part.argmax()]))
    return np.unique(np.concatenate(kept))


__all__ = [
    "PAGE_POINTS",
    "PAGE_TRADES",
    "SUMMARY_POINTS",
    "SUMMARY_TRADES",
    "BacktestReport",
    "TradeRecord",
    "build_report",
    "buy_and_hold",
    "counts_only",
    "downsample",
]
