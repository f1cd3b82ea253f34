"""The strategy API: loading by name or import path, params validation, signal helpers."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import (
    Bracket,
    Order,
    OrderTerms,
    OrderType,
    Side,
    TimeInForce,
    Trailing,
)
from orchestrator.strategy.api import Strategy, StrategyParams
from orchestrator.strategy.builtin.bollinger_breakout import BollingerBreakout
from orchestrator.strategy.builtin.rsi_reversion import RsiReversion
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams
from orchestrator.strategy.loader import (
    BUILTIN_STRATEGIES,
    StrategyLoadError,
    build_params,
    load_strategy_class,
)

SAMPLE_DIR = Path(__file__).parent


@dataclass
class RecordingContext:
    """A StrategyContext that records emits; positions change only when a test says so."""

    strategy_id: str = "user-1"
    name: str = "User Strategy"
    positions: dict[str, float] = field(default_factory=dict)
    describes_signals: bool = True
    emitted: list[tuple[str, Side, float, float | None, float, dict[str, Any]]] = field(
        default_factory=list
    )

    def now(self) -> float:
        return 1_700_000_000.0

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def emit(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
    ) -> None:
        self.emitted.append((symbol, action, price, quantity, confidence, dict(metadata)))


@pytest.fixture
def sample_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Import the sample by its own directory, however pytest laid out sys.path.
    monkeypatch.syspath_prepend(str(SAMPLE_DIR))


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path where a test writes its own strategy modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(root: Path, dotted: str, source: str) -> None:
    *packages, module = dotted.split(".")
    directory = root
    for package in packages:
        directory = directory / package
        directory.mkdir(exist_ok=True)
        (directory / "__init__.py").touch()
    (directory / f"{module}.py").write_text(textwrap.dedent(source))


# --- load_strategy_class ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sma_crossover", SmaCrossover),
        ("rsi_reversion", RsiReversion),
        ("bollinger_breakout", BollingerBreakout),
        (" sma_crossover ", SmaCrossover),
    ],
)
def test_builtin_names_load(kind: str, expected: type[Strategy[Any]]) -> None:
    assert load_strategy_class(kind) is expected


@pytest.mark.usefixtures("sample_on_path")
@pytest.mark.parametrize("kind", ["sample_user_strategy:DipBuyer", "sample_user_strategy.DipBuyer"])
def test_user_strategy_loads_by_either_dotted_form(kind: str) -> None:
    cls = load_strategy_class(kind)
    assert cls.__name__ == "DipBuyer"
    assert issubclass(cls, Strategy)


@pytest.mark.parametrize(
    "kind", ["acme_strats.trend.momentum:Momentum", "acme_strats.trend.momentum.Momentum"]
)
def test_user_strategy_loads_from_a_nested_package(user_code: Path, kind: str) -> None:
    write_module(
        user_code,
        "acme_strats.trend.momentum",
        """
        from orchestrator.strategy.api import Strategy, StrategyParams

        class Momentum(Strategy[StrategyParams]):
            pass
        """,
    )
    assert load_strategy_class(kind).__module__ == "acme_strats.trend.momentum"


@pytest.mark.usefixtures("sample_on_path")
def test_user_strategy_runs_end_to_end() -> None:
    cls = load_strategy_class("sample_user_strategy:DipBuyer")
    context = RecordingContext()
    strategy = cls(build_params(cls, {"min_drop": 0.02}), context)
    strategy.on_bar(Bar("AAPL", "1m", 0.0, 100.0, 100.0, 99.0, 99.0, 10.0, 3))  # -1%: no
    strategy.on_bar(Bar("AAPL", "1m", 60.0, 100.0, 100.0, 97.0, 97.0, 10.0, 3))  # -3%: buy
    assert context.emitted == [("AAPL", Side.BUY, 97.0, None, 0.5, {"orderType": "MARKET"})]


BUILTIN_LIST = "bollinger_breakout, rsi_reversion, sma_crossover"


@pytest.mark.parametrize("kind", ["no_such_strategy", "", "   ", "package.module:", ":Thing"])
def test_unknown_name_lists_the_choices(kind: str) -> None:
    with pytest.raises(StrategyLoadError) as caught:
        load_strategy_class(kind)
    assert f"use a built-in strategy ({BUILTIN_LIST})" in str(caught.value)
    assert "'package.module:ClassName'" in str(caught.value)


def test_missing_module_is_reported() -> None:
    with pytest.raises(StrategyLoadError, match=r"module 'nowhere_pkg\.strategies' not found"):
        load_strategy_class("nowhere_pkg.strategies:Thing")


def test_missing_dependency_of_the_module_is_named(user_code: Path) -> None:
    write_module(user_code, "needs_a_dependency", "import surely_not_installed_dep\n")
    with pytest.raises(StrategyLoadError) as caught:
        load_strategy_class("needs_a_dependency:Thing")
    assert str(caught.value) == (
        "strategy module 'needs_a_dependency' imports 'surely_not_installed_dep', "
        "which is not installed"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ],
)
def test_module_that_fails_to_import_is_reported(user_code: Path, source: str, error: str) -> None:
    name = f"fails_with_{error.split(':')[0].lower()}"
    write_module(user_code, name, source)
    with pytest.raises(
        StrategyLoadError, match=re.escape(f"module '{name}' failed to import: {error}")
    ):
        load_strategy_class(f"{name}:Thing")


@pytest.mark.usefixtures("sample_on_path")
def test_missing_attribute_names_the_strategies_that_exist() -> None:
    with pytest.raises(StrategyLoadError) as caught:
        load_strategy_class("sample_user_strategy:DipBuyr")
    assert str(caught.value) == (
        "module 'sample_user_strategy' has no attribute 'DipBuyr'; "
        "Strategy subclasses it defines: DipBuyer"
    )


@pytest.mark.usefixtures("sample_on_path")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "sample_user_strategy:NotAStrategy",
            "sample_user_strategy:NotAStrategy is the class NotAStrategy, "
            "not a subclass of orchestrator.strategy.api.Strategy",
        ),
        (
            "sample_user_strategy:not_a_class",
            "sample_user_strategy:not_a_class is a function, "
            "not a subclass of orchestrator.strategy.api.Strategy",
        ),
        (
            "orchestrator.strategy.api.Strategy",
            "orchestrator.strategy.api:Strategy is the Strategy base class itself; name a subclass",
        ),
    ],
)
def test_non_strategy_attribute_is_rejected(kind: str, message: str) -> None:
    with pytest.raises(StrategyLoadError) as caught:
        load_strategy_class(kind)
    assert str(caught.value) == message


def test_strategy_with_a_bad_params_model_is_rejected(user_code: Path) -> None:
    write_module(
        user_code,
        "bad_params_model",
        """
        from orchestrator.strategy.api import Strategy

        class Sloppy(Strategy):
            params_model = dict
        """,
    )
    with pytest.raises(StrategyLoadError, match=r"Sloppy\.params_model must be a subclass"):
        load_strategy_class("bad_params_model:Sloppy")


def test_load_error_is_a_value_error() -> None:
    assert issubclass(StrategyLoadError, ValueError)


# --- build_params ---------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BUILTIN_STRATEGIES))
def test_every_builtin_has_valid_defaults(kind: str) -> None:
    cls = load_strategy_class(kind)
    assert build_params(cls, {}) == cls.params_model()


@pytest.mark.parametrize("kind", sorted(BUILTIN_STRATEGIES))
def test_every_builtin_param_is_described_and_numeric_ones_bounded(kind: str) -> None:
    for name, info in load_strategy_class(kind).params_model.model_fields.items():
        assert info.description, f"{kind}.{name} has no description"
        if info.annotation in (int, float):
            assert len(info.metadata) >= 2, f"{kind}.{name} lacks a lower and an upper bound"


def test_params_are_built_from_config_values() -> None:
    params = build_params(SmaCrossover, {"fast": 3, "slow": 8, "allow_short": True})
    assert params == SmaCrossover.params_model(fast=3, slow=8, allow_short=True)


def validation_errors(cls: type[Strategy[Any]], raw: Mapping[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        build_params(cls, raw)
    return [(error["type"], error["loc"]) for error in caught.value.errors()]


def test_unknown_param_is_an_error() -> None:
    assert validation_errors(SmaCrossover, {"fats": 3}) == [("extra_forbidden", ("fats",))]


@pytest.mark.parametrize(
    ("cls", "raw", "expected"),
    [
        (SmaCrossover, {"fast": 0}, ("greater_than_equal", ("fast",))),
        (SmaCrossover, {"slow": 100_000}, ("less_than_equal", ("slow",))),
        (RsiReversion, {"oversold": 0}, ("greater_than", ("oversold",))),
        (RsiReversion, {"period": 1}, ("greater_than_equal", ("period",))),
        (BollingerBreakout, {"num_std": 0}, ("greater_than", ("num_std",))),
        (BollingerBreakout, {"period": "twenty"}, ("int_parsing", ("period",))),
    ],
)
def test_out_of_bounds_param_is_an_error(
    cls: type[Strategy[Any]], raw: Mapping[str, Any], expected: tuple[str, tuple[str]]
) -> None:
    assert validation_errors(cls, raw) == [expected]


@pytest.mark.parametrize(
    ("cls", "raw", "message"),
    [
        (SmaCrossover, {"fast": 20, "slow": 20}, "fast (20) must be less than slow (20)"),
        (SmaCrossover, {"fast": 30}, "fast (30) must be less than slow (20)"),
        (
            RsiReversion,
            {"oversold": 70, "overbought": 30},
            "oversold (70.0) must be less than overbought (30.0)",
        ),
    ],
)
def test_inconsistent_params_are_an_error(
    cls: type[Strategy[Any]], raw: Mapping[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        build_params(cls, raw)


def test_params_are_frozen() -> None:
    params = SmaCrossoverParams()
    with pytest.raises(ValidationError, match="frozen"):
        params.fast = 7  # type: ignore[misc]


# --- the Strategy base and its helpers -------------------------------------------


def bare_strategy(**positions: float) -> tuple[Strategy[StrategyParams], RecordingContext]:
    context = RecordingContext(positions=dict(positions))
    return Strategy(StrategyParams(), context), context


def test_base_strategy_defaults_do_nothing() -> None:
    strategy, context = bare_strategy()
    strategy.on_bar(Bar("AAPL", "1m", 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1))
    strategy.on_tick(Tick("AAPL", 1.0, 1.0, 0.0))
    assert strategy.warmup_bars == 0
    assert context.emitted == []
    assert Strategy.params_model is StrategyParams


def test_buy_and_sell_pass_everything_to_the_context() -> None:
    strategy, context = bare_strategy()
    strategy.buy("AAPL", 150.25)
    strategy.sell("MSFT", 310.5, quantity=4, confidence=0.25, orderType="MARKET", why="test")
    assert context.emitted == [
        ("AAPL", Side.BUY, 150.25, None, 1.0, {}),
        ("MSFT", Side.SELL, 310.5, 4, 0.25, {"orderType": "MARKET", "why": "test"}),
    ]


@pytest.mark.parametrize("confidence", [-0.01, 1.01, math.nan])
def test_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    strategy, context = bare_strategy()
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        strategy.buy("AAPL", 100.0, confidence=confidence)
    assert context.emitted == []


@pytest.mark.parametrize("quantity", [0.0, -5.0, math.nan, math.inf])
def test_non_positive_quantity_is_refused(quantity: float) -> None:
    strategy, context = bare_strategy()
    with pytest.raises(ValueError, match="quantity must be a positive finite number or None"):
        strategy.sell("AAPL", 100.0, quantity=quantity)
    assert context.emitted == []


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_invalid_price_is_refused(price: float) -> None:
    strategy, context = bare_strategy()
    with pytest.raises(ValueError, match="price must be a positive finite number"):
        strategy.buy("AAPL", price)
    assert context.emitted == []


def test_close_position_sizes_the_exit_from_the_position() -> None:
    strategy, context = bare_strategy(AAPL=5.0, MSFT=-3.0)
    assert strategy.close_position("AAPL", 100.0, 0.7, orderType="MARKET")
    assert strategy.close_position("MSFT", 200.0)
    assert not strategy.close_position("GOOG", 50.0)
    assert context.emitted == [
        ("AAPL", Side.SELL, 100.0, 5.0, 0.7, {"reason": "exit", "orderType": "MARKET"}),
        ("MSFT", Side.BUY, 200.0, 3.0, 1.0, {"reason": "exit"}),
    ]


def test_enter_long_from_flat_is_one_sized_by_the_runtime_entry() -> None:
    strategy, context = bare_strategy()
    assert strategy.enter_long("AAPL", 100.0, 0.9)
    assert context.emitted == [("AAPL", Side.BUY, 100.0, None, 0.9, {"reason": "entry"})]


def test_enter_long_from_short_reverses_in_one_signal() -> None:
    strategy, context = bare_strategy(AAPL=-3.0)
    assert strategy.enter_long("AAPL", 100.0, 0.9, orderType="MARKET")
    # Unsized: the runtime sizes it to the target long plus the 3 it covers.
    assert context.emitted == [
        ("AAPL", Side.BUY, 100.0, None, 0.9, {"reason": "reversal", "orderType": "MARKET"}),
    ]


def test_enter_short_from_long_reverses_in_one_signal() -> None:
    strategy, context = bare_strategy(AAPL=2.0)
    assert strategy.enter_short("AAPL", 100.0)
    assert [(e[1], e[3], e[5]["reason"]) for e in context.emitted] == [
        (Side.SELL, None, "reversal"),
    ]


def test_entering_the_side_already_held_does_nothing() -> None:
    strategy, context = bare_strategy(AAPL=2.0, MSFT=-2.0)
    assert not strategy.enter_long("AAPL", 100.0)
    assert not strategy.enter_short("MSFT", 100.0)
    assert context.emitted == []


# ---------------------------------------------------------------- order terms


@dataclass
class PlacingContext(RecordingContext):
    """A RecordingContext that also records placed orders and resting-order calls."""

    placed: list[tuple[Side, float | None, OrderTerms]] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def place(
        self,
        symbol: str,
        action: Side,
        *,
        price: float,
        quantity: float | None,
        confidence: float,
        metadata: Mapping[str, Any],
        terms: OrderTerms,
    ) -> str | None:
        self.placed.append((action, quantity, terms))
        return f"order-{len(self.placed)}"

    def open_orders(self, symbol: str) -> list[Order]:
        self.calls.append(("open_orders", symbol))
        return []

    def cancel(self, order_id: str) -> bool:
        self.calls.append(("cancel", order_id))
        return True

    def replace(
        self,
        order_id: str,
        *,
        quantity: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
    ) -> bool:
        self.calls.append(("replace", (order_id, quantity, limit, stop)))
        return True


def test_plain_calls_stay_market_signals_and_new_keywords_place_orders() -> None:
    context = PlacingContext()
    strategy = Strategy(StrategyParams(), context)
    assert strategy.buy("AAPL", 100.0, 5, orderType="MARKET") is None
    assert context.emitted[0][:4] == ("AAPL", Side.BUY, 100.0, 5)
    assert context.placed == []
    order_id = strategy.sell("AAPL", 100.0, 5, limit=101.0, time_in_force="DAY")
    assert order_id == "order-1"
    assert strategy.enter_long("AAPL", 100.0, stop=102.0, stop_loss=99.0, trailing=1.5)
    assert context.placed == [
        (Side.SELL, 5, OrderTerms(OrderType.LIMIT, 101.0, None, TimeInForce.DAY)),
        (
            Side.BUY,
            None,
            OrderTerms(OrderType.STOP, None, 102.0, bracket=Bracket(99.0, None, Trailing(1.5))),
        ),
    ]


def test_bad_order_terms_raise_in_the_strategy() -> None:
    strategy = Strategy(StrategyParams(), PlacingContext())
    with pytest.raises(ValueError, match="stop_loss 101 must be below the entry at 100"):
        strategy.buy("AAPL", 100.0, stop_loss=101.0)
    with pytest.raises(ValueError, match="'FOK' is not a valid TimeInForce"):
        strategy.buy("AAPL", 100.0, limit=99.0, time_in_force="FOK")
    with pytest.raises(ValueError, match="limit must be a positive finite number"):
        strategy.replace("order-1", limit=math.nan)


def test_open_orders_cancel_and_replace_go_to_the_context() -> None:
    context = PlacingContext()
    strategy = Strategy(StrategyParams(), context)
    assert strategy.open_orders("AAPL") == []
    assert strategy.cancel("order-1")
    assert strategy.replace("order-2", limit=98.0)
    assert context.calls == [
        ("open_orders", "AAPL"),
        ("cancel", "order-1"),
        ("replace", ("order-2", None, 98.0, None)),
    ]
