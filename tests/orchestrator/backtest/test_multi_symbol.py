"""Several symbols on one account: what each symbol does equals independent one-symbol
runs while the capital does not bind; the shared cash cuts or refuses an order when
it does; the bars come in time order, ties in the symbols' order; per-symbol warm-up;
the report's per-symbol figures and the account's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import Field, ValidationError

from orchestrator.backtest.engine import (
    BacktestEngine,
    BacktestError,
    BacktestResult,
    BacktestSpec,
    FileSource,
    FilesSource,
    SyntheticSource,
    load_bars,
)
from orchestrator.backtest.multi_symbol import MultiSymbolEngine, affordable_quantity, run_spec
from orchestrator.backtest.report import build_report
from orchestrator.marketdata.history import write_parquet
from orchestrator.model.market import Bar
from orchestrator.model.orders import BUY, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.strategy.api import Strategy, StrategyContext, StrategyParams
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from orchestrator.trading.config import PaperBrokerConfig

SYMBOLS = ("AAA", "BBB")
STAKE = 10_000.0
UNBOUND = 1e9
"""Capital and risk limits far out of the way: nothing shared binds."""
BROKER = PaperBrokerConfig(slippage_bps=1.0, commission_bps=2.0)
LOOSE_RISK = RiskConfig(max_daily_loss=UNBOUND, max_gross_exposure=UNBOUND)
SMA = SmaCrossoverParams(fast=5, slow=20, allow_short=True)


def run_config(*symbols: str, stop_loss: float = 0.002) -> StrategyRunConfig:
    return StrategyRunConfig(
        symbols=symbols,
        data_resolution="1m",
        max_position_value=STAKE,
        stop_loss_percentage=stop_loss,
        max_orders_per_minute=10_000,
    )


def seeded(symbol: str, days: float = 3, seed: int = 5) -> list[Bar]:
    source = SyntheticSource(duration_seconds=days * 86_400, ticks_per_second=0.2, seed=seed)
    return load_bars(source, symbol, "1m")


@pytest.fixture(scope="module")
def history() -> dict[str, list[Bar]]:
    return {symbol: seeded(symbol) for symbol in SYMBOLS}


def single(bars: list[Bar], capital: float = UNBOUND, params: Any = SMA) -> BacktestResult:
    symbol = bars[0].symbol
    engine = BacktestEngine(
        SmaCrossover, params, run_config(symbol), broker=BROKER, risk=LOOSE_RISK,
        initial_capital=capital,
    )  # fmt: skip
    return engine.run(bars)


def multi(
    bars: dict[str, list[Bar]],
    capital: float = UNBOUND,
    risk: RiskConfig = LOOSE_RISK,
    strategy: type[Strategy[Any]] = SmaCrossover,
    params: Any = SMA,
    stop_loss: float = 0.002,
) -> BacktestResult:
    engine = MultiSymbolEngine(
        strategy, params, run_config(*bars, stop_loss=stop_loss), broker=BROKER, risk=risk,
        initial_capital=capital,
    )  # fmt: skip
    return engine.run(bars)


# ---------------------------------------------------------------- against one-symbol runs


def test_one_symbol_on_the_account_engine_is_the_one_symbol_engine(
    history: dict[str, list[Bar]],
) -> None:
    """The account engine walks every price through the guardian; the one-symbol engine
    only the prices that could matter: the same trades, fills and curve, to the bit."""
    bars = history["AAA"]
    alone, on_account = single(bars), multi({"AAA": bars})
    [part] = on_account.parts
    assert len(alone.trades) > 100
    assert {trade.exit_reason for trade in alone.trades} == {"signal", "stop_loss"}
    assert part.trades == alone.trades
    assert part.open_trade == alone.open_trade
    assert np.array_equal(part.curve.equity, alone.curve.equity)
    assert (part.fills, part.rejected, part.signals) == (alone.fills, alone.rejected, alone.signals)


class BarByBarCrossover(SmaCrossover):
    """The crossover without its averages computed ahead: updated bar by bar, as live."""

    def precompute(self, symbol: str, bars: Sequence[Bar]) -> None:
        pass


def test_each_symbols_averages_computed_ahead_trade_as_bar_by_bar(
    history: dict[str, list[Bar]],
) -> None:
    ahead, bar_by_bar = multi(history), multi(history, strategy=BarByBarCrossover)
    assert len(ahead.trades) > 100
    assert ahead.trades == bar_by_bar.trades
    assert np.array_equal(ahead.curve.equity, bar_by_bar.curve.equity)
    assert (ahead.fills, ahead.signals) == (bar_by_bar.fills, bar_by_bar.signals)


@pytest.mark.parametrize("shorts", [True, False], ids=["always-in", "long-only"])
def test_the_daily_loss_halts_one_symbol_as_the_one_symbol_engine_does(
    history: dict[str, list[Bar]], shorts: bool
) -> None:
    bars, params = history["AAA"], SmaCrossoverParams(fast=5, slow=20, allow_short=shorts)
    risk = RiskConfig(max_daily_loss=40.0, max_gross_exposure=UNBOUND)
    alone = BacktestEngine(
        SmaCrossover, params, run_config("AAA"), broker=BROKER, risk=risk, initial_capital=UNBOUND
    ).run(bars)
    [part] = multi({"AAA": bars}, risk=risk, params=params).parts
    assert alone.rejected > 0  # the kill switch engaged: reduce-only from then on
    assert part.trades == alone.trades
    assert (part.fills, part.rejected) == (alone.fills, alone.rejected)


@pytest.mark.parametrize("shorts", [True, False], ids=["always-in", "long-only"])
def test_two_symbols_trade_as_two_independent_runs_while_capital_does_not_bind(
    history: dict[str, list[Bar]], shorts: bool
) -> None:
    """Long only, each symbol is often flat: its quiet bars only mark the book."""
    params = SmaCrossoverParams(fast=5, slow=20, allow_short=shorts)
    together = multi(history, params=params)
    alone = {symbol: single(bars, params=params) for symbol, bars in history.items()}
    assert together.symbols == SYMBOLS and together.cash_limited == 0
    for part in together.parts:
        [symbol] = part.symbols
        assert part.trades == alone[symbol].trades, symbol
        assert np.array_equal(part.curve.equity, alone[symbol].curve.equity), symbol
    pnl = sum(result.final_equity - UNBOUND for result in alone.values())
    assert together.final_equity == pytest.approx(UNBOUND + pnl, rel=1e-12)
    assert together.total_trades == sum(len(result.trades) for result in alone.values())
    exits = [trade.exit_ts for trade in together.trades]
    assert exits == sorted(exits)
    assert together.bars == sum(len(bars) for bars in history.values())


def test_the_account_curve_is_the_capital_plus_each_symbols_pnl(
    history: dict[str, list[Bar]],
) -> None:
    together = multi(history)
    curve = together.curve
    assert len(curve.times) == len(history["AAA"])  # the same minutes for both
    pnl = sum(part.curve.equity - UNBOUND for part in together.parts)
    assert np.allclose(curve.equity, UNBOUND + pnl, rtol=1e-12)
    # buy and hold: the capital in equal parts at the last warm-up close
    first = together.first_trading_bar
    assert first == SMA.slow - 1
    assert curve.closes[first] == pytest.approx(UNBOUND, rel=1e-12)
    expected = sum(
        UNBOUND / 2 * part.curve.closes[-1] / part.curve.closes[first] for part in together.parts
    )
    assert curve.closes[-1] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- the shared cash


class BuyEverythingParams(StrategyParams):
    quantity: float | None = Field(None, description="Units per buy; None: sized.")


class BuyEverything(Strategy[BuyEverythingParams]):
    """Buys each symbol once, on its first bar."""

    params_model = BuyEverythingParams

    def on_bar(self, bar: Bar) -> None:
        if self.position(bar.symbol) == 0 and not self.__dict__.get(bar.symbol):
            self.__dict__[bar.symbol] = True
            self.emit(BUY, bar, self.params.quantity)

    def emit(self, side: Any, bar: Bar, quantity: float | None) -> None:
        self.context.emit(
            bar.symbol, side, price=bar.close, quantity=quantity, confidence=1.0, metadata={}
        )


T0 = 1_704_067_200.0


def flat_bars(symbol: str, price: float, count: int = 5, start: float = T0) -> list[Bar]:
    return [
        Bar(symbol, "1m", start + 60 * i, price, price, price, price, 100.0, 4)
        for i in range(count)
    ]


def test_the_second_symbols_order_is_sized_from_what_the_account_has_left() -> None:
    """Capital 15,000, maxPositionValue 10,000: AAA's order takes floor(9,500 / 50) = 190
    units (9,500); BBB's then has 15,000 - 9,500 = 5,500 of room, in flight included:
    55 units at 100 instead of the 95 its own limit would size."""
    bars = {"AAA": flat_bars("AAA", 50.0), "BBB": flat_bars("BBB", 100.0)}
    result = multi(bars, capital=15_000.0, strategy=BuyEverything, params=BuyEverythingParams())
    aaa, bbb = result.parts
    assert (aaa.open_quantity, bbb.open_quantity) == (190.0, 55.0)
    assert result.cash_limited == 1 and result.rejected == 0


def test_an_order_the_account_cannot_pay_is_refused_with_the_reason() -> None:
    bars = {"AAA": flat_bars("AAA", 50.0), "BBB": flat_bars("BBB", 100.0)}
    engine = MultiSymbolEngine(
        BuyEverything, BuyEverythingParams(), run_config(*bars), broker=PaperBrokerConfig(),
        risk=LOOSE_RISK, initial_capital=9_550.0,
    )  # fmt: skip
    result = engine.run(bars)
    aaa, bbb = result.parts
    assert (aaa.open_quantity, bbb.open_quantity) == (190.0, 0.0)  # 50 left: no unit of BBB
    [refused] = [fill for fill in engine.fills if fill.status is TradeStatus.REJECTED]
    assert refused.symbol == "BBB"
    assert "buying power" in refused.reason and "buys no more BBB at 100" in refused.reason
    assert (bbb.rejected, result.cash_limited) == (1, 1)


def test_an_explicit_quantity_is_cut_to_what_fits_and_closing_always_passes() -> None:
    assert affordable_quantity(100.0, 1, 0.0, 10.0, 550.0) == 55.0
    assert affordable_quantity(100.0, 1, 20.0, 10.0, 550.0) == 35.0  # 20 held already
    assert affordable_quantity(100.0, 1, 60.0, 10.0, 550.0) == 0.0  # beyond the room
    assert affordable_quantity(30.0, -1, 60.0, 10.0, -1_000.0) == 30.0  # a sell reduces
    assert affordable_quantity(100.0, -1, 60.0, 10.0, 0.0) == 60.0  # a reversal closes
    assert affordable_quantity(2.5, 1, 0.0, 10.0, 20.0) == 2.0  # fractional: exact room
    assert affordable_quantity(math.pi, 1, 0.0, 1.0, 100.0) == math.pi


def test_the_guardian_counts_the_whole_account() -> None:
    """max_gross_exposure over every symbol: BBB's buy, once AAA's filled, breaks it;
    either alone would not."""
    bars = {"AAA": flat_bars("AAA", 50.0), "BBB": flat_bars("BBB", 100.0, start=T0 + 120)}
    risk = RiskConfig(max_daily_loss=UNBOUND, max_gross_exposure=12_000.0)
    engine = MultiSymbolEngine(
        BuyEverything, BuyEverythingParams(), run_config(*bars), broker=PaperBrokerConfig(),
        risk=risk, initial_capital=UNBOUND,
    )  # fmt: skip
    result = engine.run(bars)
    aaa, bbb = result.parts
    assert (aaa.open_quantity, bbb.open_quantity) == (190.0, 0.0)
    [refused] = [fill for fill in engine.fills if fill.status is TradeStatus.REJECTED]
    assert refused.symbol == "BBB" and "max_gross_exposure" in refused.reason


# ---------------------------------------------------------------- time order and warm-up


class JournalParams(StrategyParams):
    warmup: int = Field(0, ge=0, le=10, description="Bars of warm-up.")


class Journal(Strategy[JournalParams]):
    """Notes every bar it sees and the clock; buys AAA after its second bar."""

    params_model = JournalParams

    def __init__(self, params: JournalParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.seen: list[tuple[str, float, float]] = []
        SEEN.append(self.seen)

    @property
    def warmup_bars(self) -> int:
        return self.params.warmup

    def on_bar(self, bar: Bar) -> None:
        self.seen.append((bar.symbol, bar.start, self.context.now()))
        sent = self.context.emit(
            bar.symbol, BUY, price=bar.close, quantity=1.0, confidence=1.0, metadata={}
        )
        SENT.append((bar.symbol, bar.start, sent is not None))


SEEN: list[list[tuple[str, float, float]]] = []
SENT: list[tuple[str, float, bool]] = []


def stepped(symbol: str, starts: Sequence[float], base: float) -> list[Bar]:
    return [
        Bar(symbol, "1m", start, base + i, base + i + 0.5, base + i - 0.5, base + i, 10.0, 4)
        for i, start in enumerate(starts)
    ]


def test_bars_come_in_time_order_ties_in_the_symbols_order_at_their_close() -> None:
    SEEN.clear(), SENT.clear()
    t0 = 1_704_067_200.0
    bars = {
        # BBB first in the job: it goes first at each tie
        "BBB": stepped("BBB", [t0 + 60, t0 + 120, t0 + 240], 200.0),
        "AAA": stepped("AAA", [t0, t0 + 60, t0 + 180, t0 + 240], 100.0),
    }
    engine = MultiSymbolEngine(
        Journal, JournalParams(), run_config(*bars, stop_loss=0.0),
        broker=PaperBrokerConfig(slippage_bps=0.0),
        risk=LOOSE_RISK, initial_capital=UNBOUND,
    )  # fmt: skip
    result = engine.run(bars)
    [seen] = SEEN
    assert [(symbol, start - t0) for symbol, start, _ in seen] == [
        ("AAA", 0), ("BBB", 60), ("AAA", 60), ("BBB", 120), ("AAA", 180),
        ("BBB", 240), ("AAA", 240),
    ]  # fmt: skip
    assert all(now == start + 60 for _, start, now in seen)
    # each order fills at its own symbol's next open, never at another symbol's price
    filled = [fill for fill in engine.fills if fill.status is TradeStatus.FILLED]
    opens = {(bar.symbol, bar.start): bar.open for series in bars.values() for bar in series}
    for fill in filled:
        assert (fill.symbol, fill.ts) in opens and fill.price == opens[(fill.symbol, fill.ts)]
    assert [(f.symbol, f.ts - t0) for f in filled] == [
        ("AAA", 60), ("BBB", 120), ("AAA", 180), ("BBB", 240), ("AAA", 240),
    ]  # fmt: skip
    assert result.curve.times.tolist() == [t0 + 60 * i for i in range(5)]


def test_each_symbol_warms_up_on_its_own_bars() -> None:
    """BBB's history starts later: AAA trades while BBB still warms up."""
    SEEN.clear(), SENT.clear()
    t0 = 1_704_067_200.0
    bars = {
        "AAA": stepped("AAA", [t0 + 60 * i for i in range(6)], 100.0),
        "BBB": stepped("BBB", [t0 + 60 * i for i in range(3, 8)], 200.0),
    }
    engine = MultiSymbolEngine(
        Journal, JournalParams(warmup=2), run_config(*bars), risk=LOOSE_RISK,
        initial_capital=UNBOUND,
    )  # fmt: skip
    result = engine.run(bars)
    sent = {(symbol, (start - t0) // 60) for symbol, start, went in SENT if went}
    assert sent == {
        ("AAA", 2),
        ("AAA", 3),
        ("AAA", 4),
        ("AAA", 5),
        ("BBB", 5),
        ("BBB", 6),
        ("BBB", 7),
    }
    assert result.first_trading_bar == 4  # BBB's last warm-up bar, minute 4
    assert [part.warmup_bars for part in result.parts] == [2, 2]


def test_bars_that_do_not_fit_together_are_refused() -> None:
    t0 = 1_704_067_200.0
    good = stepped("AAA", [t0, t0 + 60], 100.0)
    cases = {
        "no bars of BBB": {"AAA": good, "BBB": []},
        "not all of BBB": {"AAA": good, "BBB": stepped("AAA", [t0], 1.0)},
        "is not after the bar before it": {"AAA": good, "BBB": stepped("BBB", [t0, t0], 1.0)},
        "share one resolution": {
            "AAA": good,
            "BBB": [Bar("BBB", "5m", t0, 1.0, 1.0, 1.0, 1.0, 1.0, 4)],
        },
    }
    for problem, bars in cases.items():
        engine = MultiSymbolEngine(Journal, JournalParams(), run_config("AAA", "BBB"))
        with pytest.raises(BacktestError, match=problem):
            engine.run(bars)


# ---------------------------------------------------------------- specs, sources, report


def entry() -> CatalogEntry:
    return CatalogEntry(
        id="sma", name="SMA", kind="sma_crossover", params={"fast": 5, "slow": 20},
        defaults=run_config(*SYMBOLS),
    )  # fmt: skip


def test_a_spec_of_several_symbols_runs_each_from_its_source(tmp_path: Path) -> None:
    aaa, bbb = seeded("AAA", days=1), seeded("BBB", days=1, seed=9)
    write_parquet(aaa, tmp_path / "aaa.parquet")
    write_parquet(bbb, tmp_path / "bbb.parquet")
    # one Parquet file with a symbol column holding both
    tables = [pq.read_table(tmp_path / f"{s.lower()}.parquet") for s in SYMBOLS]
    both = pa.concat_tables(
        [
            t.append_column("symbol", pa.array([s] * t.num_rows))
            for t, s in zip(tables, SYMBOLS, strict=True)
        ]
    )
    pq.write_table(both, tmp_path / "both.parquet")
    files = FilesSource(paths={"AAA": tmp_path / "aaa.parquet", "BBB": tmp_path / "bbb.parquet"})
    by_files = run_spec(BacktestSpec(strategy=entry(), source=files, risk=LOOSE_RISK))
    in_one = run_spec(
        BacktestSpec(
            strategy=entry(), source=FileSource(path=tmp_path / "both.parquet"),
            symbols=SYMBOLS, risk=LOOSE_RISK,
        )
    )  # fmt: skip
    synthetic = SyntheticSource(duration_seconds=86_400, ticks_per_second=0.2, resolution="1m")
    by_feed = run_spec(
        BacktestSpec(strategy=entry(), source=synthetic, symbols=SYMBOLS, risk=LOOSE_RISK)
    )
    assert by_files.symbols == in_one.symbols == by_feed.symbols == SYMBOLS
    assert by_files.trades == in_one.trades and by_files.final_equity == in_one.final_equity
    assert by_files.initial_capital == 2 * STAKE  # maxPositionValue times the symbols
    assert [part.bars for part in by_files.parts] == [len(aaa), len(bbb)]
    assert by_feed.total_trades > 0


def test_a_spec_names_its_symbols_one_way() -> None:
    files = FilesSource(paths={"AAA": Path("a.csv")})
    with pytest.raises(ValidationError, match=r"symbol \(one\) or symbols \(several\), not both"):
        BacktestSpec(strategy=entry(), source=SyntheticSource(), symbol="AAA", symbols=("BBB",))
    with pytest.raises(ValidationError, match="a files source names its symbols"):
        BacktestSpec(strategy=entry(), source=files, symbols=("BBB",))
    with pytest.raises(ValidationError, match="over 2 symbols is more than"):
        BacktestSpec(
            strategy=entry(),
            source=SyntheticSource(duration_seconds=300 * 86_400, ticks_per_second=0.5),
            symbols=SYMBOLS,
        )
    assert BacktestSpec(strategy=entry(), source=files).traded_symbols == ("AAA",)


def test_the_report_has_each_symbol_and_the_account(history: dict[str, list[Bar]]) -> None:
    result = multi(history)
    report = build_report(result)
    wire = report.to_wire()
    assert wire["symbols"] == list(SYMBOLS)
    assert [part["symbol"] for part in wire["per_symbol"]] == list(SYMBOLS)
    returns = [part["statistics"]["return_pct"] for part in wire["per_symbol"]]
    assert sum(returns) == pytest.approx(wire["statistics"]["return_pct"], rel=1e-9)
    for part, symbol_result in zip(wire["per_symbol"], result.parts, strict=True):
        assert (
            part["total_trades"] == part["statistics"]["trade_count"] == symbol_result.total_trades
        )
        assert {trade["symbol"] for trade in part["trades"]} == {part["symbol"]}
        assert len(part["trades"]) <= 100
    assert wire["statistics"]["trade_count"] == result.total_trades
    assert {trade["symbol"] for trade in wire["trades"]} == set(SYMBOLS)
    assert [t["symbol"] for t in wire["open_trades"]] == [
        s for s, part in zip(SYMBOLS, result.parts, strict=True) if part.open_trade is not None
    ]
    # the account's statistics are over the account's curve and its trades
    assert wire["statistics"]["equity_final"] == pytest.approx(result.final_equity, rel=1e-12)
    page = report.page()
    assert page["trade_count"] == result.total_trades
    assert [part["symbol"] for part in page["per_symbol"]] == list(SYMBOLS)
