"""The figures of a backtest report, as backtesting.py's stats table defines them.

``compute_statistics`` takes a run's per-bar equity, the bar times and closes and
its closed trades, and returns a ``Statistics``: every figure of backtesting.py's
``compute_stats`` that applies to our engine, computed with numpy alone and to the
same floating-point operations, so the two agree to rounding (the tests check it on
backtesting.py's own runs). docs/statistics.md defines each figure.

Conventions: times are epoch seconds (UTC), durations seconds, ``*_pct`` figures
percent (5.0 is 5 %), NaN where a figure has no value (no trades, a single day, a
zero denominator), as backtesting.py gives NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from orchestrator.model.clock import DAY_SECONDS, iso_utc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DATA_PERIOD_BARS = 100
"""The data period is the median bar spacing of the last this many bars."""
WEEKEND_SHARE = 2 / 7 * 0.6
"""Data with more bars than this share on Saturdays and Sundays trades every day."""
YEAR_DAYS = 365.25
"""Length of the year in CAGR."""
DURATION_UNITS_NS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)
"""Day, hour, minute, second, milli-, micro-, nanosecond: what durations round up to."""


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One closed trade, as the statistics read it."""

    entry_bar: int
    """Index of the bar the trade was entered on."""
    exit_bar: int
    """Index of the bar the trade was closed on (the trade holds bars entry..exit)."""
    entry_time: float
    """Epoch seconds of the entry."""
    exit_time: float
    """Epoch seconds of the exit."""
    entry_price: float
    exit_price: float
    size: float
    """Quantity, positive long, negative short."""
    pnl: float
    """Profit or loss in account currency, net of the trade's commissions."""
    return_fraction: float
    """``pnl / (abs(size) * entry_price)``: 0.05 is +5 % (backtesting.py's ReturnPct)."""
    commission: float
    """Commissions paid on entry and exit."""


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """Closed trades as columns, one entry per trade in order: what the statistics read.

    A run of a million bars closes tens of thousands of trades; the figures are computed
    over these arrays, never trade by trade (:func:`trade_columns` builds them from
    :class:`ClosedTrade` records, ``build_report`` from the engine's round trips).
    """

    entry_bar: IntArray
    exit_bar: IntArray
    entry_time: FloatArray
    exit_time: FloatArray
    pnl: FloatArray
    return_fraction: FloatArray
    commission: FloatArray

    def __len__(self) -> int:
        return len(self.pnl)


def trade_columns(trades: Sequence[ClosedTrade]) -> TradeColumns:
    """The columns of ``trades``."""

    def floats(name: str) -> FloatArray:
        return np.array([getattr(trade, name) for trade in trades], dtype=np.float64)

    def ints(name: str) -> IntArray:
        return np.array([getattr(trade, name) for trade in trades], dtype=np.int64)

    return TradeColumns(
        entry_bar=ints("entry_bar"),
        exit_bar=ints("exit_bar"),
        entry_time=floats("entry_time"),
        exit_time=floats("exit_time"),
        pnl=floats("pnl"),
        return_fraction=floats("return_fraction"),
        commission=floats("commission"),
    )


@dataclass(frozen=True, slots=True)
class Statistics:
    """A backtest's figures; docs/statistics.md defines each. NaN: no value."""

    start: float
    """Time of the first bar, epoch seconds."""
    end: float
    """Time of the last bar, epoch seconds."""
    duration_seconds: float
    """end - start."""
    exposure_time_pct: float
    """Share of bars with a trade open (entry bar to exit bar, both counted), %."""
    equity_final: float
    """Equity at the last bar."""
    equity_peak: float
    """Highest equity of any bar."""
    commissions: float
    """Sum of the closed trades' commissions."""
    return_pct: float
    """Final equity over initial equity, minus 1, %."""
    buy_and_hold_return_pct: float
    """Last close over the close of the first trading bar (after warm-up), minus 1, %."""
    annual_return_pct: float
    """Geometric mean daily (weekly, monthly) return compounded over a year, %."""
    annual_volatility_pct: float
    """Standard deviation of that year's compounded return, %."""
    cagr_pct: float
    """Compound annual growth rate of equity over the calendar duration, %."""
    sharpe_ratio: float
    """(annual return - risk-free rate) / annual volatility."""
    sortino_ratio: float
    """(annual return - risk-free rate) / annualised downside deviation."""
    calmar_ratio: float
    """Annual return / maximum drawdown."""
    alpha_pct: float
    """Jensen's alpha on the whole run: return - rf - beta * (buy & hold - rf), %."""
    beta: float
    """Covariance of equity and market bar log returns over the market's variance."""
    max_drawdown_pct: float
    """Deepest fall of equity below its running peak, % (zero or negative)."""
    avg_drawdown_pct: float
    """Mean depth of the drawdown episodes, % (negative)."""
    max_drawdown_duration_seconds: float
    """Longest drawdown episode, peak to recovery (or the last bar), rounded up."""
    avg_drawdown_duration_seconds: float
    """Mean drawdown episode duration, rounded up."""
    trade_count: int
    """Closed trades."""
    win_rate_pct: float
    """Trades with pnl > 0 over all trades, %."""
    best_trade_pct: float
    """Highest trade return, %."""
    worst_trade_pct: float
    """Lowest trade return, %."""
    avg_trade_pct: float
    """Geometric mean trade return, %."""
    max_trade_duration_seconds: float
    """Longest trade, entry to exit, rounded up."""
    avg_trade_duration_seconds: float
    """Mean trade duration, rounded up."""
    profit_factor: float
    """Sum of winning trade returns over the absolute sum of losing ones."""
    expectancy_pct: float
    """Arithmetic mean trade return, %."""
    sqn: float
    """System quality number: sqrt(trades) * mean pnl / standard deviation of pnl."""
    kelly_criterion: float
    """win rate - (1 - win rate) / (mean win / mean loss), as a fraction."""

    def to_wire(self, *, snake_case: bool = False) -> dict[str, float | int | str | None]:
        """camelCase keys (the field names with ``snake_case``, as a backtest job's
        result has them); start and end ISO-8601 UTC; NaN and infinities as None."""
        wire: dict[str, float | int | str | None] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            key = field.name if snake_case else _camel_case(field.name)
            wire[key] = iso_utc(value) if field.name in ("start", "end") else _json_number(value)
        return wire


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _json_number(value: float | int) -> float | int | None:
    if isinstance(value, int):
        return value
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- entry point


def compute_statistics(
    timestamps: npt.ArrayLike,
    equity: npt.ArrayLike,
    closes: npt.ArrayLike,
    trades: Sequence[ClosedTrade] | TradeColumns,
    *,
    first_trading_bar: int = 0,
    risk_free_rate: float = 0.0,
) -> Statistics:
    """The figures of a run of ``len(timestamps)`` bars.

    ``timestamps``: bar times, epoch seconds, strictly increasing; ``equity``: account
    equity at each bar; ``closes``: the traded symbol's close at each bar; ``trades``:
    the closed trades, as records or as columns (the same figures either way);
    ``first_trading_bar``: the first bar after the strategy's warm-up (buy & hold
    starts there); ``risk_free_rate``: annual, as a fraction. ValueError on inputs
    that do not fit together.
    """
    times, values, prices = _checked_arrays(timestamps, equity, closes)
    columns = trades if isinstance(trades, TradeColumns) else trade_columns(trades)
    _check_run(len(times), columns, first_trading_bar, risk_free_rate)
    with np.errstate(all="ignore"):
        return _statistics(times, values, prices, columns, first_trading_bar, risk_free_rate)


def _checked_arrays(
    timestamps: npt.ArrayLike, equity: npt.ArrayLike, closes: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    arrays = tuple(np.asarray(values, dtype=np.float64) for values in (timestamps, equity, closes))
    times, values, prices = arrays
    if any(array.ndim != 1 for array in arrays) or not len(times):
        raise ValueError("timestamps, equity and closes must be non-empty 1-d arrays")
    if not len(times) == len(values) == len(prices):
        raise ValueError("timestamps, equity and closes must have one value per bar")
    if not all(np.isfinite(array).all() for array in arrays):
        raise ValueError("timestamps, equity and closes must be finite")
    if np.any(np.diff(times) <= 0):
        raise ValueError("timestamps must be strictly increasing")
    return times, values, prices


def _check_run(
    bars: int, trades: TradeColumns, first_trading_bar: int, risk_free_rate: float
) -> None:
    if not 0 <= first_trading_bar < bars:
        raise ValueError(f"first_trading_bar must be in 0..{bars - 1}")
    if not -1 < risk_free_rate < 1:
        raise ValueError("risk_free_rate must be a fraction between -1 and 1")
    if len(trades):
        _check_trades(trades, bars)


def _check_trades(trades: TradeColumns, bars: int) -> None:
    """Every trade at once; the message names the first trade that is wrong."""
    entry, exit_ = trades.entry_bar, trades.exit_bar
    outside = (entry < 0) | (entry > exit_) | (exit_ >= bars)
    backwards = trades.exit_time < trades.entry_time
    numbers = (trades.entry_time, trades.exit_time, trades.pnl, trades.return_fraction)
    infinite = ~np.logical_and.reduce([np.isfinite(n) for n in (*numbers, trades.commission)])
    for trade in np.flatnonzero(outside | backwards | infinite)[:1].tolist():
        if outside[trade]:
            raise ValueError(f"trade bars {entry[trade]}..{exit_[trade]} outside 0..{bars - 1}")
        if backwards[trade]:
            raise ValueError("a trade's exit_time must not precede its entry_time")
        raise ValueError("a trade's times, pnl, return_fraction and commission must be finite")


def _statistics(
    times: FloatArray,
    equity: FloatArray,
    closes: FloatArray,
    trades: TradeColumns,
    first_trading_bar: int,
    risk_free_rate: float,
) -> Statistics:
    duration = float(times[-1] - times[0])
    unit = _duration_unit_seconds(times)
    returns = _returns(equity, closes, first_trading_bar)
    annual = _annualised(times, equity)
    drawdown = _drawdowns(times, equity)
    beta = _beta(equity, closes)
    closed = _trade_figures(trades)
    excess_return_pct = annual.annual_return * 100 - risk_free_rate * 100
    return Statistics(
        start=float(times[0]),
        end=float(times[-1]),
        duration_seconds=duration,
        exposure_time_pct=_exposure_time_pct(trades, len(times)),
        equity_final=float(equity[-1]),
        equity_peak=float(equity.max()),
        commissions=_sum_in_order(trades.commission),
        return_pct=returns.total_pct,
        buy_and_hold_return_pct=returns.buy_and_hold_pct,
        annual_return_pct=annual.annual_return * 100,
        annual_volatility_pct=annual.volatility_pct,
        cagr_pct=_cagr_pct(equity, duration),
        sharpe_ratio=_divide(excess_return_pct, _or_nan(annual.volatility_pct)),
        sortino_ratio=_sortino_ratio(annual, risk_free_rate),
        calmar_ratio=_divide(annual.annual_return, _or_nan(-drawdown.max_drawdown)),
        alpha_pct=_alpha_pct(returns, beta, risk_free_rate),
        beta=beta,
        max_drawdown_pct=drawdown.max_drawdown * 100,
        avg_drawdown_pct=-_mean(drawdown.peaks) * 100,
        max_drawdown_duration_seconds=_round_up(_max(drawdown.durations), unit),
        avg_drawdown_duration_seconds=_round_up(_mean(drawdown.durations), unit),
        trade_count=len(trades),
        win_rate_pct=closed.win_rate * 100,
        best_trade_pct=_max(closed.returns) * 100,
        worst_trade_pct=_min(closed.returns) * 100,
        avg_trade_pct=_geometric_mean(closed.returns) * 100,
        max_trade_duration_seconds=_round_up(_max(closed.durations), unit),
        avg_trade_duration_seconds=_round_up(_mean(closed.durations), unit),
        profit_factor=_profit_factor(closed.returns),
        expectancy_pct=_mean(closed.returns) * 100,
        sqn=_system_quality_number(closed.pnls),
        kelly_criterion=_kelly_criterion(closed.pnls, closed.win_rate),
    )


# --------------------------------------------------------------------------- equity and market


@dataclass(frozen=True, slots=True)
class _Returns:
    total_pct: float
    buy_and_hold_pct: float


def _returns(equity: FloatArray, closes: FloatArray, first_trading_bar: int) -> _Returns:
    entry_close = closes[first_trading_bar]
    return _Returns(
        total_pct=_divide(equity[-1] - equity[0], equity[0]) * 100,
        buy_and_hold_pct=_divide(closes[-1] - entry_close, entry_close) * 100,
    )


def _exposure_time_pct(trades: TradeColumns, bars: int) -> float:
    """Bars with a position over all bars, %: "n bars" time, not clock time. (Each
    trade adds 1 from its entry bar and takes it away after its exit bar: a bar is
    held where the running count is above 0.)"""
    starts = np.zeros(bars + 1, dtype=np.int64)
    np.add.at(starts, trades.entry_bar, 1)
    np.add.at(starts, trades.exit_bar + 1, -1)
    holding = (np.cumsum(starts[:-1]) > 0).astype(np.int64)
    return float(holding.mean() * 100)


def _cagr_pct(equity: FloatArray, duration_seconds: float) -> float:
    """Growth per year of 365.25 days; the duration counts whole seconds, as pandas'
    ``Timedelta.days + .seconds / 86400`` does."""
    days, rest = divmod(duration_seconds, DAY_SECONDS)
    years = (days + math.floor(rest) / DAY_SECONDS) / YEAR_DAYS
    if not years:
        return math.nan
    growth = np.float64(equity[-1]) / np.float64(equity[0])
    return float((growth ** (1 / years) - 1) * 100)


def _beta(equity: FloatArray, closes: FloatArray) -> float:
    """Covariance of the bar log returns of equity and closes over the closes' variance."""
    equity_log_returns = np.log(equity[1:] / equity[:-1])
    market_log_returns = np.log(closes[1:] / closes[:-1])
    if len(equity_log_returns) < 2:
        return math.nan
    covariance = np.cov(equity_log_returns, market_log_returns)
    return float(covariance[0, 1] / covariance[1, 1])


def _alpha_pct(returns: _Returns, beta: float, risk_free_rate: float) -> float:
    risk_free_pct = risk_free_rate * 100
    return returns.total_pct - risk_free_pct - beta * (returns.buy_and_hold_pct - risk_free_pct)


# --------------------------------------------------------------------------- annualised figures


@dataclass(frozen=True, slots=True)
class _Annualised:
    period_returns: FloatArray
    """Simple returns between the last equities of consecutive periods (days mostly)."""
    periods_per_year: int
    annual_return: float
    """A fraction."""
    volatility_pct: float


def _annualised(times: FloatArray, equity: FloatArray) -> _Annualised:
    """backtesting.py's compounding model: the geometric mean period return g over
    n periods a year gives (1 + g)^n - 1, its risk sqrt((var + (1+g)^2)^n - (1+g)^2n)."""
    keys, periods_per_year = _period_keys(times)
    period_returns = _simple_returns(_last_of_each_period(equity, keys))
    growth = np.float64(1 + _geometric_mean(period_returns))
    variance = _variance(period_returns)
    volatility = np.sqrt(
        (variance + growth**2) ** periods_per_year - growth ** (2 * periods_per_year)
    )
    return _Annualised(
        period_returns=period_returns,
        periods_per_year=periods_per_year,
        annual_return=float(growth**periods_per_year - 1),
        volatility_pct=float(volatility * 100),
    )


def _period_keys(times: FloatArray) -> tuple[IntArray, int]:
    """One key per bar naming its UTC calendar period, and periods a year: weeks (52),
    months (12) or years (1) for data that far apart, else days, 365 of them for data
    that trades at weekends and 252 for data that does not."""
    period = _data_period_seconds(times)
    spacing_days = math.floor(period / DAY_SECONDS) if math.isfinite(period) else 0
    moments = np.floor(times).astype(np.int64).astype("datetime64[s]")
    days = moments.astype("datetime64[D]").astype(np.int64)
    if spacing_days == 7:
        return (days + 3) // 7, 52  # 1970-01-01 was a Thursday: weeks run Monday-Sunday
    if spacing_days == 31:
        return moments.astype("datetime64[M]").astype(np.int64), 12
    if spacing_days == 365:
        return moments.astype("datetime64[Y]").astype(np.int64), 1
    return days, 365 if _trades_at_weekends(days) else 252


def _data_period_seconds(times: FloatArray) -> float:
    """Median bar spacing of the last DATA_PERIOD_BARS bars; NaN for a single bar."""
    spacing = np.diff(times[-DATA_PERIOD_BARS:])
    return float(np.median(spacing)) if len(spacing) else math.nan


def _trades_at_weekends(days: IntArray) -> bool:
    weekdays = (days + 3) % 7  # Monday 0 ... Sunday 6
    return bool(np.mean(weekdays >= 5) > WEEKEND_SHARE)


def _last_of_each_period(equity: FloatArray, keys: IntArray) -> FloatArray:
    """Equity at the last bar of each period, in time order (the keys of increasing
    times never decrease: a period ends where the next bar's key differs)."""
    last = np.r_[np.flatnonzero(keys[1:] != keys[:-1]), len(keys) - 1]
    return equity[last]


def _simple_returns(values: FloatArray) -> FloatArray:
    """values[i] / values[i-1] - 1, without the NaN of 0 / 0 (pandas' pct_change().dropna())."""
    returns = values[1:] / values[:-1] - 1
    return returns[~np.isnan(returns)]


def _sortino_ratio(annual: _Annualised, risk_free_rate: float) -> float:
    downside = np.clip(annual.period_returns, -np.inf, 0)
    downside_deviation = np.sqrt(_mean(downside**2)) * np.sqrt(annual.periods_per_year)
    return _divide(annual.annual_return - risk_free_rate, downside_deviation)


# --------------------------------------------------------------------------- drawdowns


@dataclass(frozen=True, slots=True)
class _Drawdowns:
    max_drawdown: float
    """Deepest drawdown as a negative fraction (-0.0 without any)."""
    peaks: FloatArray
    """Depth of each drawdown episode, positive fractions."""
    durations: FloatArray
    """Seconds of each drawdown episode."""


def _drawdowns(times: FloatArray, equity: FloatArray) -> _Drawdowns:
    """Episodes run from a bar at the running peak to the next one, or to the last bar;
    an episode of no bar in between is none. backtesting.py's rule when no episode is
    found (only the last bar below the peak): its depth counts, it has no duration."""
    drawdown = 1 - equity / np.maximum.accumulate(equity)
    at_peak = np.flatnonzero(drawdown == 0)  # increasing: only the last bar may repeat
    last = len(drawdown) - 1
    bounds = at_peak if len(at_peak) and at_peak[-1] == last else np.r_[at_peak, last]
    starts, stops = bounds[:-1], bounds[1:]
    episodes = stops > starts + 1
    if episodes.any():
        # the deepest point from each bound to the next (the next is 0 or the last bar)
        peaks = np.maximum.reduceat(drawdown, starts)[episodes]
        durations = times[stops[episodes]] - times[starts[episodes]]
    else:
        peaks, durations = drawdown[drawdown != 0], np.array([], dtype=np.float64)
    max_drawdown = -float(np.nan_to_num(drawdown.max()))
    return _Drawdowns(max_drawdown=max_drawdown, peaks=peaks, durations=durations)


# --------------------------------------------------------------------------- trades


@dataclass(frozen=True, slots=True)
class _TradeFigures:
    returns: FloatArray
    pnls: FloatArray
    durations: FloatArray
    win_rate: float
    """Fraction of trades with pnl > 0; NaN without trades."""


def _trade_figures(trades: TradeColumns) -> _TradeFigures:
    pnls = trades.pnl
    return _TradeFigures(
        returns=trades.return_fraction,
        pnls=pnls,
        durations=trades.exit_time - trades.entry_time,
        win_rate=_mean((pnls > 0).astype(np.float64)),
    )


def _profit_factor(returns: FloatArray) -> float:
    """Summed returns, not P&L, as backtesting.py does."""
    gains = returns[returns > 0].sum()
    losses = abs(returns[returns < 0].sum())
    return _divide(gains, _or_nan(losses))


def _system_quality_number(pnls: FloatArray) -> float:
    return _divide(np.sqrt(len(pnls)) * _mean(pnls), _or_nan(_standard_deviation(pnls)))


def _kelly_criterion(pnls: FloatArray, win_rate: float) -> float:
    win_loss_ratio = _divide(_mean(pnls[pnls > 0]), -_mean(pnls[pnls < 0]))
    return win_rate - _divide(1 - win_rate, win_loss_ratio)


# --------------------------------------------------------------------------- durations


def _duration_unit_seconds(times: FloatArray) -> float:
    """What durations round up to: the finest non-zero part (day, hour, minute, second,
    ...) of the data period, as pandas' ``Timedelta.resolution_string``; 0 (no rounding)
    for a single bar."""
    period = _data_period_seconds(times)
    if math.isnan(period):
        return 0.0
    period_ns = round(period * 1e9)
    unit_ns = next(unit for unit in DURATION_UNITS_NS if period_ns % unit == 0)
    return unit_ns / 1e9


def _round_up(seconds: float, unit: float) -> float:
    """``seconds`` rounded up to a multiple of ``unit`` (pandas' ``Timedelta.ceil``)."""
    if math.isnan(seconds) or not unit:
        return seconds
    return math.ceil(seconds / unit) * unit


# --------------------------------------------------------------------------- arithmetic


def _divide(numerator: float, denominator: float) -> float:
    """IEEE division: inf or NaN where Python would raise ZeroDivisionError."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(numerator) / np.float64(denominator))


def _or_nan(value: float) -> float:
    """NaN for 0 (Python's ``value or nan``, backtesting.py's guard on denominators)."""
    return math.nan if value == 0 else float(value)


def _geometric_mean(returns: FloatArray) -> float:
    """exp(mean(log(1 + r))) - 1; 0 when any return loses everything, NaN for none."""
    growth = returns + 1
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(_divide(np.log(growth).sum(), len(growth) or math.nan)) - 1)


def _sum_in_order(values: FloatArray) -> float:
    """The sum added up first to last, as Python's ``sum`` does (numpy's ``sum`` pairs
    the terms, which rounds otherwise)."""
    return float(np.cumsum(values)[-1]) if len(values) else 0.0


def _mean(values: FloatArray) -> float:
    """Arithmetic mean; NaN for no values."""
    return float(values.sum() / len(values)) if len(values) else math.nan


def _variance(values: FloatArray) -> float:
    """Sample variance (n - 1), computed as pandas does; NaN for fewer than two values."""
    if len(values) < 2:
        return math.nan
    mean = values.sum() / len(values)
    return float(((mean - values) ** 2).sum() / (len(values) - 1))


def _standard_deviation(values: FloatArray) -> float:
    return math.sqrt(_variance(values)) if len(values) > 1 else math.nan


def _max(values: FloatArray) -> float:
    return float(values.max()) if len(values) else math.nan


def _min(values: FloatArray) -> float:
    return float(values.min()) if len(values) else math.nan
