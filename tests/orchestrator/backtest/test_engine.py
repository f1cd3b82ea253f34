"""The backtest engine: hand-computed trades, the same fills as the live path on
the same bars, and the errors a person can act on."""

from __future__ import annotations

import gc
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, ValidationError

from orchestrator.backtest.engine import (
    BacktestCancelled,
    BacktestEngine,
    BacktestError,
    BacktestSpec,
    CsvSource,
    SyntheticSource,
    load_bars,
    load_strategy,
    run_backtest,
)
from orchestrator.bus import EventBus
from orchestrator.marketdata.feeds import TickSink, ohlcv_ticks, replay_bars
from orchestrator.marketdata.hub import MarketData
from orchestrator.model.clock import ManualClock, iso_utc
from orchestrator.model.events import Event, OrderReduced, RiskLimit, Topic, TradeExecuted
from orchestrator.model.ids import SequentialIds
from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Fill, Order, Side, TradeStatus
from orchestrator.risk.config import RiskConfig
from orchestrator.risk.guardian import RiskGuardian
from orchestrator.strategy.api import Strategy, StrategyParams
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.config import CatalogEntry, RuntimeConfig, StrategyRunConfig
from orchestrator.strategy.runtime import StrategyRuntime
from orchestrator.trading.config import PaperBrokerConfig
from orchestrator.trading.execution import ExecutionService
from orchestrator.trading.paper_broker import PaperBroker
from orchestrator.trading.portfolio import PortfolioBook

DAY = 86_400.0
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z
SYMBOL = "TEST"


def bar(i: int, open_: float, high: float, low: float, close: float, res: str = "1m") -> Bar:
    return Bar(SYMBOL, res, START + 60 * i, open_, high, low, close, 100.0, 4)


def entry(
    kind: str, params: dict[str, Any] | None = None, resolution: str = "1m", **limits: Any
) -> CatalogEntry:
    defaults = StrategyRunConfig(symbols=(SYMBOL,), data_resolution=resolution, **limits)
    return CatalogEntry(id="bt", name="Backtest", kind=kind, params=params or {}, defaults=defaults)


# ---------------------------------------------------------------- by hand


def test_trades_by_hand() -> None:
    # fast=1, slow=2: long while the close is above the mean of the last two closes.
    closes = [10.0, 11.0, 12.0, 11.0, 10.0, 12.0, 13.0]
    opens = [10.0, 10.5, 11.0, 11.5, 10.5, 10.0, 12.5]
    bars = [
        bar(i, o, max(o, c) + 0.5, min(o, c) - 0.5, c)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]
    config = StrategyRunConfig(
        symbols=(SYMBOL,), max_position_value=1000.0, stop_loss_percentage=0.0
    )
    broker = PaperBrokerConfig(slippage_bps=10.0, commission_bps=1.0)
    engine = BacktestEngine(
        SmaCrossover,
        SmaCrossoverParams(fast=1, slow=2),
        config,
        broker=broker,
        sizing_fraction=1.0,
    )
    result = engine.run(bars)

    # Bars 0-1 warm up. Bar 2 (12 > 11.5) buys floor(1000 / 12) = 83, filled at bar 3's
    # open; bar 3 (11 < 11.5) sells the 83 at bar 4's open; bar 4 (10 < 10.5) is flat;
    # bar 5 (12 > 11) buys 83 at bar 6's open; bar 6 (13 > 12.5) holds.
    buy_1, sell_1, buy_2 = 11.5 * 1.001, 10.5 * 0.999, 12.5 * 1.001
    assert [(f.side, f.quantity, f.price, f.ts) for f in engine.fills] == [
        (Side.BUY, 83.0, buy_1, bars[3].start),
        (Side.SELL, 83.0, sell_1, bars[4].start),
        (Side.BUY, 83.0, buy_2, bars[6].start),
    ]
    commissions = [1e-4 * 83 * price for price in (buy_1, sell_1, buy_2)]
    assert [f.commission for f in engine.fills] == pytest.approx(commissions, rel=1e-12)
    trade_pnl = 83 * (sell_1 - buy_1) - commissions[0] - commissions[1]
    assert len(engine.trades) == 1
    assert engine.trades[0].pnl == pytest.approx(trade_pnl, rel=1e-12)
    assert engine.trades[0].direction == 1
    final_equity = 1000.0 + trade_pnl - commissions[2] + 83 * (13.0 - buy_2)
    assert result.total_trades == 1
    assert result.win_rate == 0.0
    assert result.final_equity == pytest.approx(final_equity, rel=1e-12)
    assert result.total_return == pytest.approx(final_equity / 1000.0 - 1, rel=1e-12)
    assert (result.bars, result.warmup_bars, result.fills, result.rejected) == (7, 2, 3, 0)
    assert result.open_quantity == 83.0
    assert (result.start, result.end) == (bars[0].start, bars[-1].start + 60)


def test_result_payload_has_the_dgbit_fields() -> None:
    spec = BacktestSpec(
        strategy=entry("sma_crossover", {"fast": 3, "slow": 8}),
        source=SyntheticSource(duration_seconds=DAY / 2),
    )
    payload = run_backtest(spec).to_payload()
    assert isinstance(payload["total_trades"], int)
    assert 0.0 <= float(payload["win_rate"]) <= 1.0
    assert math.isfinite(float(payload["total_return"]))
    assert payload["bars"] == 720
    assert payload["start"] == "2024-01-01T00:00:00.000Z"


def test_a_short_round_trip_that_gains_is_a_win() -> None:
    # fast=1, slow=2 with shorting: bar 2 falls (go short at bar 3's open, 8.5),
    # bar 5 rises (cover and go long at bar 6's open, 7.5).
    closes = [10.0, 10.0, 9.0, 8.0, 7.0, 8.0, 8.0]
    opens = [10.0, 10.0, 10.0, 8.5, 8.0, 7.0, 7.5]
    bars = [
        bar(i, o, max(o, c), min(o, c), c)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]
    config = StrategyRunConfig(symbols=(SYMBOL,), stop_loss_percentage=0.0)
    engine = BacktestEngine(
        SmaCrossover,
        SmaCrossoverParams(fast=1, slow=2, allow_short=True),
        config,
        broker=PaperBrokerConfig(slippage_bps=0.0),
    )
    result = engine.run(bars)
    quantity = math.floor(10_000 * 0.95 / 9.0)  # sized at bar 2's close
    assert [(t.direction, t.quantity, t.entry_price, t.exit_price) for t in engine.trades] == [
        (-1, quantity, 8.5, 7.5)
    ]
    assert engine.trades[0].pnl == quantity * (8.5 - 7.5)
    assert (result.total_trades, result.win_rate) == (1, 1.0)
    assert result.open_quantity == math.floor(10_000 * 0.95 / 8.0)  # the long entered at 7.5


# ---------------------------------------------------------------- live equivalence


class _History:
    """A feed whose history is the warm-up bars, replayed as ticks; nothing live."""

    def __init__(self, bars: Sequence[Bar]) -> None:
        self.symbols = (SYMBOL,)
        self._ticks = list(replay_bars(bars))

    def history(self, until: float) -> list[Tick]:
        return [tick for tick in self._ticks if tick.ts < until]

    async def run(self, sink: TickSink) -> None:
        return None


class BarBoundedBroker(PaperBroker):
    """The live paper broker with the one rule a backtest adds: no slipped fill lands
    outside the range of the bar whose prices it fills at (the test sets the bar)."""

    bar_low = 0.0
    bar_high = math.inf

    def fill_at(
        self, order: Order, price: float, ts: float, low: float = 0.0, high: float = math.inf
    ) -> Fill:
        return super().fill_at(order, price, ts, self.bar_low, self.bar_high)


async def live_fills(
    catalog: CatalogEntry,
    bars: Sequence[Bar],
    warmup: int,
    broker: PaperBrokerConfig,
    risk: RiskConfig,
) -> list[Fill]:
    """The daemon's own components on a manual clock, fed each bar's four ticks."""
    clock = ManualClock(bars[warmup].start)
    bus, book, ids = EventBus(), PortfolioBook(), SequentialIds()
    market = MarketData(_History(bars[:warmup]), bus, clock, 4 * len(bars))
    guardian = RiskGuardian(risk, book, bus, clock, ids)
    paper = BarBoundedBroker(broker, clock, ids)
    execution = ExecutionService(bus, clock, book, paper, guardian, ids)
    market.on_price(execution.on_tick)
    runtime = StrategyRuntime(RuntimeConfig(), market, execution, bus, clock, ids)
    market.prime()
    fills: list[Fill] = []

    def record(event: Event) -> None:
        assert isinstance(event, TradeExecuted)
        fills.append(event.fill)

    bus.subscribe(record, [Topic.STRATEGY_TRADE])
    await runtime.activate(catalog, catalog.defaults)
    seconds = bars[0].end - bars[0].start
    for item in bars[warmup:]:
        paper.bar_low, paper.bar_high = item.low, item.high
        for tick in ohlcv_ticks(item):
            clock.set(tick.ts)
            market.handle_tick(tick)
        clock.set(item.start + seconds)  # the bar clock closes the bar on time
        market.close_due_bars()
    return fills


def backtest_fills(
    catalog: CatalogEntry, bars: Sequence[Bar], broker: PaperBrokerConfig, risk: RiskConfig
) -> tuple[list[Fill], int]:
    cls, params = load_strategy(catalog)
    engine = BacktestEngine(
        cls,
        params,
        catalog.defaults,
        strategy_id=catalog.id,
        name=catalog.name,
        broker=broker,
        risk=risk,
    )
    result = engine.run(bars)
    return engine.fills, result.warmup_bars


def comparable(fills: Sequence[Fill]) -> list[tuple[Any, ...]]:
    return [(f.status, f.side, f.quantity, f.price, f.commission, f.ts, f.reason) for f in fills]


def synthetic(days: float, resolution: str = "1m", seed: int = 11) -> list[Bar]:
    rate = 0.2 if resolution == "1m" else 0.01
    source = SyntheticSource(
        duration_seconds=days * DAY, ticks_per_second=rate, seed=seed, volatility=0.8
    )
    return load_bars(source, SYMBOL, resolution)


def case_bars(case: str) -> list[Bar]:
    catalog = CASES[case][0]
    days = 2.5 if catalog.defaults.data_resolution == "1m" else 60
    return synthetic(days, catalog.defaults.data_resolution, zlib.crc32(case.encode()) % 1000)


class TickFlipParams(StrategyParams):
    every: int = Field(7, ge=1, description="Flip the position every this many ticks.")


class TickFlip(Strategy[TickFlipParams]):
    """Trades on ticks (on_tick), so every bar's four prices reach it."""

    params_model = TickFlipParams

    def __init__(self, params: TickFlipParams, context: Any) -> None:
        super().__init__(params, context)
        self.ticks = 0

    def on_tick(self, tick: Tick) -> None:
        self.ticks += 1
        if self.ticks % self.params.every == 0:
            if self.position(tick.symbol) <= 0:
                self.enter_long(tick.symbol, tick.price)
            else:
                self.enter_short(tick.symbol, tick.price)


CASES = {
    "sma_short_default_limits": (
        entry("sma_crossover", {"fast": 5, "slow": 20, "allow_short": True}),
        RiskConfig(),
    ),
    "sma_tight_stop_loss": (
        entry("sma_crossover", {"fast": 5, "slow": 20}, stop_loss_percentage=0.002),
        RiskConfig(),
    ),
    "rsi_short_stop_loss": (
        entry("rsi_reversion", {"period": 10, "allow_short": True}, stop_loss_percentage=0.004),
        RiskConfig(),
    ),
    "bollinger_default_limits": (
        entry("bollinger_breakout", {"period": 20, "num_std": 1.5, "allow_short": True}),
        RiskConfig(),
    ),
    "bollinger_daily_loss_kill_switch": (
        entry(
            "bollinger_breakout",
            {"period": 15, "num_std": 1.0, "allow_short": True},
            stop_loss_percentage=0.0,
        ),
        RiskConfig(max_daily_loss=40.0),
    ),
    "sma_daily_loss_blocks_all": (
        entry(
            "sma_crossover",
            {"fast": 3, "slow": 9, "allow_short": True},
            stop_loss_percentage=0.003,
            max_orders_per_minute=1,
        ),
        RiskConfig(max_daily_loss=60.0, daily_loss_blocks_all=True),
    ),
    # The daily loss engages the reduce-only kill switch; the reversals after it
    # are cut to the part that closes the position.
    "sma_reversals_cut_by_the_kill_switch": (
        entry(
            "sma_crossover", {"fast": 3, "slow": 9, "allow_short": True}, stop_loss_percentage=0.0
        ),
        RiskConfig(max_daily_loss=30.0),
    ),
    # Hourly bars, positions held for days: the guardian is shown only the last
    # close of the latest day it missed (see also the slow multi-day loss below).
    "sma_hourly_held_for_days": (
        entry("sma_crossover", {"fast": 24, "slow": 96, "allow_short": True}, "1h"),
        RiskConfig(),
    ),
    "tick_strategy": (
        entry(
            f"{__name__}:TickFlip",
            {"every": 3},
            stop_loss_percentage=0.003,
            max_orders_per_minute=3,
        ),
        RiskConfig(max_daily_loss=300.0),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_same_bars_give_the_same_fills_as_live(case: str) -> None:
    catalog, risk = CASES[case]
    # A bar's four ticks are a quarter bar apart: let the live broker wait that long
    # for a price (the backtest has no timeout) so both see the same next price.
    broker = PaperBrokerConfig(slippage_bps=2.0, commission_bps=1.0, fill_timeout_seconds=3600)
    bars = case_bars(case)
    expected, warmup = backtest_fills(catalog, bars, broker, risk)
    actual = await live_fills(catalog, bars, warmup, broker, risk)
    assert len(expected) > 10
    assert comparable(actual) == comparable(expected)


class ScriptParams(StrategyParams):
    script: tuple[tuple[int, float], ...] = Field(
        (), description="(bar number from 0, signed quantity) to order on that bar."
    )


class Scripted(Strategy[ScriptParams]):
    params_model = ScriptParams

    def __init__(self, params: ScriptParams, context: Any) -> None:
        super().__init__(params, context)
        self.seen = -1

    def on_bar(self, bar: Bar) -> None:
        self.seen += 1
        for number, quantity in self.params.script:
            if number == self.seen:
                side = self.buy if quantity > 0 else self.sell
                side(bar.symbol, bar.close, quantity=abs(quantity))


async def test_a_slow_multi_day_loss_is_measured_day_by_day_as_live() -> None:
    """A long held while the price falls 0.6 a day (60 on 100 units) for days.

    Each day's loss stays under max_daily_loss (100), but the loss since the
    guardian last looked grows past it; were the guardian to measure a day from
    that stale price it would halt trading, refusing the final buy. It must
    start each day from the day before's close, as live.
    """
    bars = [
        Bar(SYMBOL, "4h", START + 4 * 3600 * i, c + 0.1, c + 0.15, c - 0.05, c, 10.0, 4)
        for i, c in enumerate(100.0 - 0.1 * i for i in range(42))
    ]
    catalog = entry(
        f"{__name__}:Scripted",
        {"script": [[1, 100.0], [30, 100.0]]},
        "4h",
        stop_loss_percentage=0.0,
        max_position_value=50_000.0,
    )
    broker = PaperBrokerConfig(slippage_bps=0.0, fill_timeout_seconds=86_400)
    risk = RiskConfig(max_daily_loss=100.0)
    expected, warmup = backtest_fills(catalog, bars, broker, risk)
    actual = await live_fills(catalog, bars, warmup, broker, risk)
    assert comparable(actual) == comparable(expected)
    assert [(f.status, f.side, f.quantity) for f in expected] == [
        (TradeStatus.FILLED, Side.BUY, 100.0),
        (TradeStatus.FILLED, Side.BUY, 100.0),
    ]


def test_the_cases_reach_stops_rate_limits_and_the_kill_switch() -> None:
    """The cases above exercise what makes the engine walk a bar's four prices."""
    broker = PaperBrokerConfig(fill_timeout_seconds=3600)
    intrabar, reasons = 0, set()
    for case, (catalog, risk) in CASES.items():
        fills, _ = backtest_fills(catalog, case_bars(case), broker, risk)
        intrabar += sum(1 for f in fills if f.ts % 60 and f.status is TradeStatus.FILLED)
        reasons |= {f.reason.split(" ")[0] for f in fills if f.reason is not None}
    assert intrabar > 0  # stop-loss exits filled at the price after the one that hit the stop
    assert {"trading", "maxOrdersPerMinute"} <= reasons


def test_stop_loss_exits_at_the_next_price_within_the_bar() -> None:
    # Long 100 from bar 3's open (10.0); bar 4 is an up bar that first trades down to
    # 9.7: the stop at 9.8 (2 %) triggers at its low (its second price) and the exit
    # fills at the next price, its high, 10.0.
    bars = [bar(i, 10.0, 10.05, 9.95, 10.0) for i in range(3)]
    bars += [bar(3, 10.0, 10.1, 9.9, 10.0), bar(4, 9.9, 10.0, 9.7, 9.95)]
    bars += [bar(5, 9.95, 9.99, 9.9, 9.95)]

    class BuyOnce(Strategy[StrategyParams]):
        def on_bar(self, item: Bar) -> None:
            if item.start == bars[2].start:
                self.buy(SYMBOL, item.close, quantity=100)

    config = StrategyRunConfig(symbols=(SYMBOL,), stop_loss_percentage=0.02)
    engine = BacktestEngine(
        BuyOnce, StrategyParams(), config, broker=PaperBrokerConfig(slippage_bps=0.0)
    )
    engine.run(bars)
    assert [(f.side, f.price, f.ts) for f in engine.fills] == [
        (Side.BUY, 10.0, bars[3].start),
        (Side.SELL, 10.0, bars[4].start + 30.0),
    ]


# ---------------------------------------------------------------- errors


def spec_for(path: Path, **params: Any) -> BacktestSpec:
    return BacktestSpec(
        strategy=entry("sma_crossover", params or {"fast": 3, "slow": 8}),
        source=CsvSource(path=path),
        symbol="TEST",
    )


def write_csv(path: Path, rows: int, start: float = START) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + (i % 7) - 3
        lines.append(f"{start + 60 * i:.0f},{price},{price + 1},{price - 1},{price + 0.5},10")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_ohlcv_file_runs(tmp_path: Path) -> None:
    result = run_backtest(spec_for(write_csv(tmp_path / "ok.csv", 200)))
    assert result.bars == 200
    assert result.total_trades > 0


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BacktestError, match=r"empty\.csv:1: file is empty"):
        run_backtest(spec_for(empty))


def test_a_file_without_rows_says_so(tmp_path: Path) -> None:
    header_only = tmp_path / "header.csv"
    header_only.write_text("timestamp,open,high,low,close,volume\n", encoding="utf-8")
    with pytest.raises(BacktestError, match=r"header\.csv: no data rows after the header"):
        run_backtest(spec_for(header_only))


def test_a_bad_file_names_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", 20)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",ten"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BacktestError, match=r"bad\.csv:4: volume 'ten' is not a number"):
        run_backtest(spec_for(path))


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BacktestError, match="file not found"):
        run_backtest(spec_for(tmp_path / "absent.csv"))


def test_too_few_bars_for_the_warm_up(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "short.csv", 8)
    with pytest.raises(BacktestError, match="8 bars of TEST are not enough: the strategy warms"):
        run_backtest(spec_for(path, fast=3, slow=8))
    assert run_backtest(spec_for(write_csv(tmp_path / "nine.csv", 9), fast=3, slow=8)).bars == 9


class FailParams(StrategyParams):
    on_bar: int = Field(5, ge=1, description="Raise on this bar (1-based).")


class FailOnBar(Strategy[FailParams]):
    params_model = FailParams

    def __init__(self, params: FailParams, context: Any) -> None:
        super().__init__(params, context)
        self.seen = 0

    def on_bar(self, bar: Bar) -> None:
        self.seen += 1
        if self.seen == self.params.on_bar:
            raise ZeroDivisionError("division by zero in my strategy")


def test_a_strategy_exception_names_the_bar(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 30)
    spec = BacktestSpec(
        strategy=entry(f"{__name__}:FailOnBar", {"on_bar": 12}),
        source=CsvSource(path=path),
        symbol="TEST",
    )
    with pytest.raises(BacktestError) as caught:
        run_backtest(spec)
    when = iso_utc(START + 60 * 11)
    assert caught.value.message == (
        f"strategy bt raised ZeroDivisionError: division by zero in my strategy, "
        f"on the TEST 1m bar of {when}"
    )


class BarByBarCrossover(SmaCrossover):
    """The crossover without its averages computed ahead: updated bar by bar, as live."""

    def precompute(self, symbol: str, bars: Sequence[Bar]) -> None:
        pass


def test_the_crossover_computed_ahead_trades_as_bar_by_bar() -> None:
    # Stop-loss exits between the crossings: the rule re-enters on the next bar.
    bars = synthetic(3)
    params = SmaCrossoverParams(fast=5, slow=20, allow_short=True)
    config = StrategyRunConfig(symbols=(SYMBOL,), stop_loss_percentage=0.002)
    runs = [
        BacktestEngine(cls, params, config, broker=PaperBrokerConfig(commission_bps=2.0))
        for cls in (SmaCrossover, BarByBarCrossover)
    ]
    ahead, bar_by_bar = (engine.run(bars) for engine in runs)
    assert not runs[0].describes_signals  # its signals go nowhere: no details built
    assert len(ahead.trades) > 100
    assert {trade.exit_reason for trade in ahead.trades} == {"signal", "stop_loss"}
    assert ahead.trades == bar_by_bar.trades
    assert comparable(runs[0].fills) == comparable(runs[1].fills)
    assert (ahead.signals, ahead.final_equity) == (bar_by_bar.signals, bar_by_bar.final_equity)


class FailAhead(FailOnBar):
    def precompute(self, symbol: str, bars: Sequence[Bar]) -> None:
        raise MemoryError("too many bars for my tables")


def test_a_strategy_exception_before_the_first_bar_says_so(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 30)
    spec = BacktestSpec(
        strategy=entry(f"{__name__}:FailAhead"), source=CsvSource(path=path), symbol="TEST"
    )
    with pytest.raises(BacktestError) as caught:
        run_backtest(spec)
    assert caught.value.message == (
        "strategy bt raised MemoryError: too many bars for my tables while precomputing "
        "over the 30 TEST bars"
    )


def test_an_unknown_strategy_or_bad_params_say_what_to_fix(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", 30)
    unknown = BacktestSpec(
        strategy=entry("no_such_strategy"), source=CsvSource(path=path), symbol="TEST"
    )
    with pytest.raises(BacktestError, match="strategy bt cannot be loaded: unknown strategy"):
        run_backtest(unknown)
    bad = BacktestSpec(
        strategy=entry("sma_crossover", {"fast": 9, "slow": 3}),
        source=CsvSource(path=path),
        symbol="TEST",
    )
    with pytest.raises(BacktestError, match=r"invalid params: .*fast \(9\) must be less than"):
        run_backtest(bad)


def test_no_bars_and_mixed_bars_are_refused() -> None:
    config = StrategyRunConfig(symbols=(SYMBOL,))
    params = SmaCrossoverParams(fast=1, slow=2)
    with pytest.raises(BacktestError, match="no data"):
        BacktestEngine(SmaCrossover, params, config).run([])
    out_of_order = [bar(1, 1, 1, 1, 1), bar(0, 1, 1, 1, 1), bar(2, 1, 1, 1, 1)]
    with pytest.raises(BacktestError, match=r"bar 1 at .* is not after the bar before it"):
        BacktestEngine(SmaCrossover, params, config).run(out_of_order)
    mixed = [bar(0, 1, 1, 1, 1), bar(1, 1, 1, 1, 1, res="5m")]
    with pytest.raises(BacktestError, match="one symbol at one resolution"):
        BacktestEngine(SmaCrossover, params, config).run(mixed)


def test_should_stop_cancels_between_chunks() -> None:
    bars = synthetic(days=1)
    config = StrategyRunConfig(symbols=(SYMBOL,))
    engine = BacktestEngine(SmaCrossover, SmaCrossoverParams(), config)
    with pytest.raises(BacktestCancelled):
        engine.run(bars, should_stop=lambda: True)


def test_synthetic_bars_are_deterministic_and_on_the_grid() -> None:
    first, again = synthetic(days=0.5, resolution="5m"), synthetic(days=0.5, resolution="5m")
    assert first == again
    assert len(first) == 144
    assert all(b.start % 300 == 0 for b in first)
    assert synthetic(days=0.5, resolution="5m", seed=12) != first


def test_the_backtest_fills_no_order_left_after_the_last_bar() -> None:
    closes = [10.0, 10.0, 11.0]
    bars = [bar(i, c, c, c, c) for i, c in enumerate(closes)]
    config = StrategyRunConfig(symbols=(SYMBOL,), stop_loss_percentage=0.0)
    engine = BacktestEngine(SmaCrossover, SmaCrossoverParams(fast=1, slow=2), config)
    result = engine.run(bars)
    assert (result.signals, result.fills, result.total_trades, result.open_quantity) == (1, 0, 0, 0)
    assert result.total_return == 0.0
    assert not [f for f in engine.fills if f.status is TradeStatus.FILLED]


class ClockReader(Strategy[StrategyParams]):
    """Notes what ``now()`` says in each callback; buys on the third bar."""

    def __init__(self, params: StrategyParams, context: Any) -> None:
        super().__init__(params, context)
        self.seen: list[tuple[str, float, float]] = []

    @property
    def warmup_bars(self) -> int:
        return 1

    def on_bar(self, item: Bar) -> None:
        self.seen.append(("bar", item.start + 60, self.context.now()))
        if item.start == START + 2 * 60:
            self.buy(SYMBOL, item.close, quantity=1)


class TickClockReader(ClockReader):
    def on_tick(self, tick: Tick) -> None:
        self.seen.append(("tick", tick.ts, self.context.now()))


@pytest.mark.parametrize("cls", [ClockReader, TickClockReader])
def test_the_clock_stands_at_the_bar_end_in_on_bar_and_at_the_tick_in_on_tick(
    cls: type[ClockReader],
) -> None:
    bars = [bar(i, 10.0, 10.2, 9.8, 10.1) for i in range(6)]
    config = StrategyRunConfig(symbols=(SYMBOL,), stop_loss_percentage=0.0)
    engine = BacktestEngine(cls, StrategyParams(), config)
    engine.run(bars)
    strategy = engine._strategy
    assert isinstance(strategy, ClockReader)
    assert [kind for kind, _, _ in strategy.seen].count("bar") == 6
    assert all(expected == seen for _, expected, seen in strategy.seen)
    [fill] = engine.fills
    assert fill.ts == bars[3].start  # signalled at bar 2's end, filled at bar 3's open


def test_a_run_restores_the_cyclic_collector() -> None:
    bars = [bar(i, 10.0, 10.2, 9.8, 10.1) for i in range(4)]
    config = StrategyRunConfig(symbols=(SYMBOL,))
    assert gc.isenabled()
    BacktestEngine(ClockReader, StrategyParams(), config).run(bars)
    assert gc.isenabled()
    gc.disable()
    try:
        BacktestEngine(ClockReader, StrategyParams(), config).run(bars)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_reversal_after_the_kill_switch_closes_and_opens_nothing() -> None:
    case = "sma_reversals_cut_by_the_kill_switch"
    catalog, risk = CASES[case]
    cls, params = load_strategy(catalog)
    engine = BacktestEngine(cls, params, catalog.defaults, risk=risk)
    reduced: list[OrderReduced] = []
    engine._bus.subscribe(
        lambda event: reduced.extend([event] if isinstance(event, OrderReduced) else [])
    )
    engine.run(case_bars(case))
    assert reduced, "the case must reach the kill switch with a position open"
    first = reduced[0]
    assert first.limit is RiskLimit.KILL_SWITCH
    assert first.quantity < first.order.quantity
    assert engine.portfolio.position(SYMBOL) == 0.0  # nothing opened after the halt


def test_a_file_without_a_symbol_trades_the_ticker_it_is_named_after() -> None:
    named = BacktestSpec(strategy=entry("sma_crossover"), source=CsvSource(path=Path("brk.b.csv")))
    assert named.traded_symbol == "BRK.B"
    given = BacktestSpec(
        strategy=entry("sma_crossover"), source=CsvSource(path=Path("x.csv")), symbol="msft"
    )
    assert given.traded_symbol == "MSFT"
    with pytest.raises(ValidationError, match=r"'2024 data\.csv' is no ticker"):
        BacktestSpec(strategy=entry("sma_crossover"), source=CsvSource(path=Path("2024 data.csv")))


def test_a_refused_order_is_not_sent_again_on_every_bar_as_live() -> None:
    bars = [bar(i, 10.0, 10.2, 9.8, 10.0 + 0.01 * i) for i in range(8)]

    class BuyTooMuch(Strategy[StrategyParams]):
        def on_bar(self, item: Bar) -> None:
            self.buy(SYMBOL, item.close, quantity=1_000)  # 10,000 over a 1,000 limit

    config = StrategyRunConfig(symbols=(SYMBOL,), max_position_value=1_000)
    result = BacktestEngine(BuyTooMuch, StrategyParams(), config).run(bars)
    assert (result.signals, result.rejected, result.fills) == (1, 1, 0)
