"""The statistics against backtesting.py, the oracle: its own runs on its bundled
data (GOOG daily, EURUSD hourly) and its compute_stats on synthetic series for the
sampling rules its runs do not reach (weekends, weeks, months, years, minutes); then
hand-computed edge cases (no trades, one trade, flat and falling equity)."""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting._stats import compute_stats
from backtesting._util import _indicator_warmup_nbars
from backtesting.lib import crossover
from backtesting.test import EURUSD, GOOG, SMA

from orchestrator.backtest import statistics
from orchestrator.backtest.statistics import ClosedTrade, Statistics, compute_statistics

REL_TOL = 1e-9

pytestmark = [  # what backtesting.py's compute_stats warns of, not ours
    pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning:backtesting"),
]

LABELS = {
    "start": "Start",
    "end": "End",
    "duration_seconds": "Duration",
    "exposure_time_pct": "Exposure Time [%]",
    "equity_final": "Equity Final [$]",
    "equity_peak": "Equity Peak [$]",
    "commissions": "Commissions [$]",
    "return_pct": "Return [%]",
    "buy_and_hold_return_pct": "Buy & Hold Return [%]",
    "annual_return_pct": "Return (Ann.) [%]",
    "annual_volatility_pct": "Volatility (Ann.) [%]",
    "cagr_pct": "CAGR [%]",
    "sharpe_ratio": "Sharpe Ratio",
    "sortino_ratio": "Sortino Ratio",
    "calmar_ratio": "Calmar Ratio",
    "alpha_pct": "Alpha [%]",
    "beta": "Beta",
    "max_drawdown_pct": "Max. Drawdown [%]",
    "avg_drawdown_pct": "Avg. Drawdown [%]",
    "max_drawdown_duration_seconds": "Max. Drawdown Duration",
    "avg_drawdown_duration_seconds": "Avg. Drawdown Duration",
    "trade_count": "# Trades",
    "win_rate_pct": "Win Rate [%]",
    "best_trade_pct": "Best Trade [%]",
    "worst_trade_pct": "Worst Trade [%]",
    "avg_trade_pct": "Avg. Trade [%]",
    "max_trade_duration_seconds": "Max. Trade Duration",
    "avg_trade_duration_seconds": "Avg. Trade Duration",
    "profit_factor": "Profit Factor",
    "expectancy_pct": "Expectancy [%]",
    "sqn": "SQN",
    "kelly_criterion": "Kelly Criterion",
}


class SmaCross(Strategy):  # type: ignore[misc]
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_sma = self.I(SMA, self.data.Close, self.fast)
        self.slow_sma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_sma, self.slow_sma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_sma, self.fast_sma):
            self.position.close()
            self.sell()


# --------------------------------------------------------------------------- conversion


def epoch_seconds(index: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    values = index.to_numpy() if isinstance(index, pd.Series) else index.values
    return values.astype("datetime64[s]").astype(np.int64).astype(np.float64)


def closed_trades(frame: pd.DataFrame) -> list[ClosedTrade]:
    entry_times = epoch_seconds(frame["EntryTime"])
    exit_times = epoch_seconds(frame["ExitTime"])
    return [
        ClosedTrade(
            entry_bar=int(row.EntryBar),
            exit_bar=int(row.ExitBar),
            entry_time=float(entry_time),
            exit_time=float(exit_time),
            entry_price=float(row.EntryPrice),
            exit_price=float(row.ExitPrice),
            size=float(row.Size),
            pnl=float(row.PnL),
            return_fraction=float(row.ReturnPct),
            commission=float(row.Commission) if "Commission" in frame else 0.0,
        )
        for row, entry_time, exit_time in zip(
            frame.itertuples(index=False), entry_times, exit_times, strict=True
        )
    ]


def oracle_value(value: Any) -> float:
    """backtesting.py's figure as our unit: epoch seconds, seconds, plain numbers."""
    if isinstance(value, pd.Timestamp):
        return float(value.value / 10**9) if value.unit == "ns" else value.timestamp()
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    if value is None or value is pd.NaT:
        return math.nan
    return float(value)


def same(ours: float, theirs: float) -> bool:
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    return math.isclose(ours, theirs, rel_tol=REL_TOL)


def mismatches(ours: Statistics, oracle: pd.Series) -> dict[str, tuple[float, float]]:
    found = {}
    for name, label in LABELS.items():
        if label not in oracle:  # Commissions: only shown when non-zero or known
            continue
        theirs = oracle_value(oracle[label])
        if not same(float(getattr(ours, name)), theirs):
            found[name] = (getattr(ours, name), theirs)
    return found


# --------------------------------------------------------------------------- runs


def run_oracle(data: pd.DataFrame, cash: float, **options: Any) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(data, SmaCross, cash=cash, commission=0.002, **options)
        return backtest.run()


def ours_for(data: pd.DataFrame, oracle: pd.Series, risk_free_rate: float = 0.0) -> Statistics:
    return compute_statistics(
        epoch_seconds(data.index),
        oracle._equity_curve["Equity"].to_numpy(),
        data["Close"].to_numpy(),
        closed_trades(oracle._trades),
        first_trading_bar=_indicator_warmup_nbars(oracle._strategy),
        risk_free_rate=risk_free_rate,
    )


RUNS: dict[str, Callable[[], tuple[pd.DataFrame, pd.Series]]] = {
    "GOOG daily": lambda: (GOOG, run_oracle(GOOG, 10_000, finalize_trades=True)),
    "EURUSD hourly": lambda: (EURUSD, run_oracle(EURUSD, 100_000, finalize_trades=True)),
    "GOOG open at end": lambda: (GOOG, run_oracle(GOOG, 10_000)),
}


@pytest.fixture(scope="module", params=list(RUNS))
def run(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, pd.Series]:
    return RUNS[request.param]()


def test_every_figure_matches_backtesting_py(run: tuple[pd.DataFrame, pd.Series]) -> None:
    data, oracle = run
    ours = ours_for(data, oracle)
    assert oracle["# Trades"] > 50  # a real run: trades, drawdowns, commissions
    assert "Commissions [$]" in oracle
    assert mismatches(ours, oracle) == {}


def test_every_figure_field_is_compared() -> None:
    assert set(LABELS) == {field.name for field in fields(Statistics)}


def test_the_warm_up_is_the_slow_average(run: tuple[pd.DataFrame, pd.Series]) -> None:
    assert _indicator_warmup_nbars(run[1]._strategy) == SmaCross.slow - 1


def test_a_risk_free_rate_moves_the_figures_as_in_backtesting_py() -> None:
    data, oracle = RUNS["GOOG daily"]()
    ours = ours_for(data, oracle, risk_free_rate=0.02)
    theirs = compute_stats(
        oracle._trades, oracle._equity_curve["Equity"].to_numpy(), data, oracle._strategy, 0.02
    )
    assert mismatches(ours, theirs) == {}
    assert ours.sharpe_ratio < ours_for(data, oracle).sharpe_ratio


# --------------------------------------------------------------------------- synthetic series


def synthetic_trades(index: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Back-to-back trades of 1 to 9 bars, alternately long and short."""
    bounds = np.cumsum(rng.integers(1, 10, size=len(index)))
    bounds = bounds[bounds < len(index) - 1]
    entries, exits = bounds[:-1], bounds[1:]
    entry_prices = rng.uniform(50, 150, size=len(entries))
    exit_prices = entry_prices * rng.uniform(0.9, 1.12, size=len(entries))
    sizes = np.where(np.arange(len(entries)) % 2, -10.0, 10.0)
    commissions = rng.uniform(0, 2, size=len(entries))
    pnls = sizes * (exit_prices - entry_prices) - commissions
    return pd.DataFrame(
        {
            "Size": sizes,
            "EntryBar": entries,
            "ExitBar": exits,
            "EntryPrice": entry_prices,
            "ExitPrice": exit_prices,
            "PnL": pnls,
            "Commission": commissions,
            "ReturnPct": pnls / (np.abs(sizes) * entry_prices),
            "EntryTime": index[entries],
            "ExitTime": index[exits],
            "Duration": index[exits] - index[entries],
        }
    )


def random_walk(rng: np.random.Generator, bars: int, start: float) -> np.ndarray:
    return start * np.exp(np.cumsum(rng.normal(0, 0.01, size=bars)))


def synthetic_case(index: pd.DatetimeIndex, seed: int) -> tuple[Statistics, pd.Series]:
    rng = np.random.default_rng(seed)
    equity = random_walk(rng, len(index), 10_000)
    closes = random_walk(rng, len(index), 100)
    trades = synthetic_trades(index, rng)
    ours = compute_statistics(epoch_seconds(index), equity, closes, closed_trades(trades))
    theirs = compute_stats(trades, equity, pd.DataFrame({"Close": closes}, index=index), None)
    return ours, theirs


SAMPLINGS = {
    "hourly, every day (365 days a year)": pd.date_range("2021-01-01", periods=3000, freq="h"),
    "business days (252)": pd.bdate_range("2015-01-01", periods=800),
    "weekly (52)": pd.date_range("2000-01-02", periods=400, freq="W"),
    "monthly (12)": pd.date_range("1990-01-01", periods=300, freq="MS"),
    "yearly (1)": pd.date_range("1900-01-01", periods=120, freq="YS"),
    "minutes (durations in minutes)": pd.date_range("2022-03-01 09:30", periods=3000, freq="min"),
    "90 seconds (durations in seconds)": pd.date_range("2022-03-01", periods=2000, freq="90s"),
}


@pytest.mark.parametrize("sampling", list(SAMPLINGS))
def test_each_sampling_rule_matches_backtesting_py(sampling: str) -> None:
    ours, theirs = synthetic_case(SAMPLINGS[sampling], seed=len(sampling))
    assert ours.trade_count > 10
    assert mismatches(ours, theirs) == {}


# --------------------------------------------------------------------------- edge cases

NO_TRADES = pd.DataFrame(
    {column: [] for column in ("PnL", "ReturnPct", "EntryBar", "ExitBar", "EntryTime", "ExitTime")}
).assign(Duration=pd.to_timedelta([]))
MONDAY = pd.Timestamp("2024-01-01")  # a Monday: business days from it have no weekend
DAY = 86_400.0


def weekdays(bars: int) -> np.ndarray:
    return epoch_seconds(pd.bdate_range(MONDAY, periods=bars))


def oracle_for(equity: list[float], closes: list[float], trades: pd.DataFrame) -> pd.Series:
    index = pd.bdate_range(MONDAY, periods=len(equity))
    prices = pd.DataFrame({"Close": np.asarray(closes, dtype=np.float64)}, index=index)
    return compute_stats(trades, np.asarray(equity, dtype=np.float64), prices, None)


def winning_trade() -> ClosedTrade:
    """Long 1 at 100 on bar 1 (Tuesday), out at 110.5 on bar 3 (Thursday), 0.5 paid."""
    entry, exit_ = weekdays(5)[[1, 3]]
    return ClosedTrade(
        entry_bar=1,
        exit_bar=3,
        entry_time=float(entry),
        exit_time=float(exit_),
        entry_price=100.0,
        exit_price=110.5,
        size=1.0,
        pnl=10.0,
        return_fraction=0.1,
        commission=0.5,
    )


def as_frame(trades: list[ClosedTrade]) -> pd.DataFrame:
    def times(values: list[float]) -> pd.DatetimeIndex:
        return pd.to_datetime(values, unit="s")

    frame = pd.DataFrame(
        {
            "EntryBar": [t.entry_bar for t in trades],
            "ExitBar": [t.exit_bar for t in trades],
            "PnL": [t.pnl for t in trades],
            "ReturnPct": [t.return_fraction for t in trades],
            "EntryTime": times([t.entry_time for t in trades]),
            "ExitTime": times([t.exit_time for t in trades]),
        }
    )
    return frame.assign(Duration=frame["ExitTime"] - frame["EntryTime"])


def test_no_trades_and_flat_equity() -> None:
    equity, closes = [100.0] * 5, [10.0, 11.0, 12.0, 11.0, 10.0]
    ours = compute_statistics(weekdays(5), equity, closes, [])
    assert (ours.start, ours.duration_seconds) == (MONDAY.timestamp(), 4 * DAY)
    assert ours.exposure_time_pct == ours.commissions == ours.return_pct == 0
    assert ours.buy_and_hold_return_pct == 0  # from 10 back to 10
    assert ours.annual_return_pct == ours.annual_volatility_pct == ours.cagr_pct == 0
    assert ours.max_drawdown_pct == 0 and ours.beta == ours.alpha_pct == 0
    assert ours.trade_count == 0
    undefined = {  # a zero denominator, no drawdown episode, no trade
        "sharpe_ratio", "sortino_ratio", "calmar_ratio", "avg_drawdown_pct",
        "max_drawdown_duration_seconds", "avg_drawdown_duration_seconds", "win_rate_pct",
        "best_trade_pct", "worst_trade_pct", "avg_trade_pct", "max_trade_duration_seconds",
        "avg_trade_duration_seconds", "profit_factor", "expectancy_pct", "sqn",
        "kelly_criterion",
    }  # fmt: skip
    assert {name for name, value in vars_of(ours).items() if is_nan(value)} == undefined
    assert {key for key, value in ours.to_wire().items() if value is None} == {
        camel(name) for name in undefined
    }
    assert mismatches(ours, oracle_for(equity, closes, NO_TRADES)) == {}


def test_one_winning_trade() -> None:
    equity, closes = [100.0, 100.0, 105.0, 110.0, 110.0], [100.0, 100.0, 105.0, 110.5, 111.0]
    ours = compute_statistics(weekdays(5), equity, closes, [winning_trade()])
    assert ours.exposure_time_pct == 60  # bars 1, 2 and 3 of 5
    assert (ours.commissions, ours.return_pct, ours.trade_count) == (0.5, 10, 1)
    assert ours.buy_and_hold_return_pct == pytest.approx(11, rel=1e-12)
    assert ours.win_rate_pct == 100 and ours.best_trade_pct == ours.worst_trade_pct == 10
    assert ours.expectancy_pct == 10 and ours.avg_trade_pct == pytest.approx(10, rel=1e-12)
    assert ours.max_trade_duration_seconds == ours.avg_trade_duration_seconds == 2 * DAY
    assert ours.max_drawdown_pct == 0 and is_nan(ours.avg_drawdown_pct)
    assert ours.sortino_ratio == math.inf  # no losing day
    assert is_nan(ours.profit_factor)  # no losing trade
    assert is_nan(ours.sqn)  # the deviation of one trade
    assert is_nan(ours.kelly_criterion)  # no mean loss
    assert ours.to_wire()["sortinoRatio"] is None
    assert mismatches(ours, oracle_for(equity, closes, as_frame([winning_trade()]))) == {}


def test_equity_that_only_falls() -> None:
    """Monday 100, Tuesday 90, Wednesday 72: days of -10 % and -20 %."""
    equity, closes = [100.0, 90.0, 72.0], [10.0, 10.0, 10.0]
    ours = compute_statistics(weekdays(3), equity, closes, [])
    growth = math.sqrt(0.9 * 0.8)  # geometric mean day
    annual = growth**252 - 1
    variance = (0.05**2 + 0.05**2) / 1  # of -0.1 and -0.2 around -0.15
    assert ours.return_pct == pytest.approx(-28, rel=1e-12)
    assert ours.annual_return_pct == pytest.approx(annual * 100, rel=1e-12)
    assert ours.annual_volatility_pct == pytest.approx(
        math.sqrt((variance + growth**2) ** 252 - growth**504) * 100, rel=1e-9
    )
    assert ours.cagr_pct == pytest.approx((0.72 ** (365.25 / 2) - 1) * 100, rel=1e-12)
    assert ours.sortino_ratio == pytest.approx(
        annual / (math.sqrt((0.01 + 0.04) / 2) * math.sqrt(252)), rel=1e-12
    )
    assert ours.max_drawdown_pct == ours.avg_drawdown_pct == pytest.approx(-28, rel=1e-12)
    assert ours.calmar_ratio == pytest.approx(annual / 0.28, rel=1e-12)
    assert ours.max_drawdown_duration_seconds == ours.avg_drawdown_duration_seconds == 2 * DAY
    assert is_nan(ours.beta)  # the market did not move: zero variance
    assert mismatches(ours, oracle_for(equity, closes, NO_TRADES)) == {}


def test_a_fall_on_the_last_bar_counts_only_when_it_is_the_only_one() -> None:
    """backtesting.py's episodes need a bar between two bars at the peak (or the last)."""
    alone = compute_statistics(weekdays(4), [100.0, 110.0, 120.0, 90.0], [1.0] * 4, [])
    after_another = compute_statistics(
        weekdays(5), [100.0, 90.0, 100.0, 110.0, 99.0], [1.0] * 5, []
    )
    assert alone.avg_drawdown_pct == pytest.approx(-25, rel=1e-12)
    assert after_another.avg_drawdown_pct == pytest.approx(-10, rel=1e-12)
    assert after_another.max_drawdown_pct == pytest.approx(-10, rel=1e-12)
    assert after_another.max_drawdown_duration_seconds == 2 * DAY  # Monday to Wednesday
    oracle = oracle_for([100.0, 90.0, 100.0, 110.0, 99.0], [1.0] * 5, NO_TRADES)
    assert mismatches(after_another, oracle) == {}


def test_a_lone_last_bar_fall_has_no_duration_where_backtesting_py_gives_its_depth() -> None:
    """backtesting.py returns the drawdown series itself as durations when it finds no
    episode: a fraction (0.25) where a duration should be. Ours is NaN; all else agrees."""
    equity = [100.0, 110.0, 120.0, 90.0]
    ours = compute_statistics(weekdays(4), equity, [1.0] * 4, [])
    oracle = oracle_for(equity, [1.0] * 4, NO_TRADES)
    assert oracle["Max. Drawdown Duration"] == oracle["Avg. Drawdown Duration"] == 0.25
    assert set(mismatches(ours, oracle)) == {
        "max_drawdown_duration_seconds",
        "avg_drawdown_duration_seconds",
    }
    assert is_nan(ours.max_drawdown_duration_seconds)


def test_a_single_bar_has_no_annual_figures() -> None:
    ours = compute_statistics([MONDAY.timestamp()], [100.0], [10.0], [])
    assert ours.duration_seconds == 0 and ours.return_pct == 0
    assert is_nan(ours.annual_return_pct) and is_nan(ours.cagr_pct) and is_nan(ours.beta)
    assert mismatches(ours, oracle_for([100.0], [10.0], NO_TRADES)) == {}


def test_wire_keys_are_camel_case_and_times_iso() -> None:
    wire = compute_statistics(weekdays(5), [100.0] * 5, [1.0] * 5, [winning_trade()]).to_wire()
    assert wire["start"] == "2024-01-01T00:00:00.000Z"
    assert wire["end"] == "2024-01-05T00:00:00.000Z"
    assert wire["buyAndHoldReturnPct"] == 0.0 and wire["tradeCount"] == 1
    assert list(wire) == [camel(field.name) for field in fields(Statistics)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestamps": [1.0, 1.0, 2.0]}, "strictly increasing"),
        ({"equity": [1.0, 2.0]}, "one value per bar"),
        ({"closes": [1.0, math.nan, 1.0]}, "finite"),
        ({"timestamps": []}, "non-empty"),
        ({"first_trading_bar": 3}, "first_trading_bar"),
        ({"risk_free_rate": 1.0}, "risk_free_rate"),
        ({"trades": [winning_trade()]}, "outside 0..2"),
        ({"trades": [replace(winning_trade(), entry_bar=0, exit_bar=1, pnl=math.nan)]}, "finite"),
        ({"trades": [replace(winning_trade(), entry_bar=0, exit_bar=1, exit_time=0.0)]}, "precede"),
    ],
)
def test_inputs_that_do_not_fit_are_refused(change: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "timestamps": [0.0, 60.0, 120.0],
        "equity": [1.0, 1.0, 1.0],
        "closes": [1.0, 1.0, 1.0],
        "trades": [],
    } | change
    with pytest.raises(ValueError, match=message):
        compute_statistics(**arguments)


def vars_of(statistics: Statistics) -> dict[str, float]:
    return {field.name: getattr(statistics, field.name) for field in fields(statistics)}


def is_nan(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def test_the_module_needs_numpy_alone() -> None:
    """No pandas in production: the statistics import the standard library and numpy."""
    source = Path(statistics.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "collections", "dataclasses", "numpy", "orchestrator"}
