"""One rule for a ticker and one for a bar resolution, in every model that takes them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gateways.api.jobs import RunBacktest
from gateways.api.market_data import Subscribe
from orchestrator.backtest.engine import SyntheticSource
from orchestrator.marketdata.config import NngFeedConfig, SyntheticFeedConfig
from orchestrator.model.market import RESOLUTION_SECONDS, price_decimals, unknown_resolution
from orchestrator.strategy.config import StrategyRunConfig


def symbols_of(model: type[BaseModel], symbol: str) -> Any:
    """The symbol as ``model`` keeps it, through the field that model takes it in."""
    if model is StrategyRunConfig:
        return StrategyRunConfig(symbols=(symbol,)).symbols[0]
    if model is SyntheticFeedConfig:
        return next(iter(SyntheticFeedConfig(symbols={symbol: 100.0}).symbols))
    if model is NngFeedConfig:
        return NngFeedConfig(symbols=(symbol,)).symbols[0]
    if model is Subscribe:
        return Subscribe.model_validate({"type": "subscribe", "symbols": [symbol]}).symbols[0]
    command = {
        "type": "run_backtest",
        "strategyId": "s",
        "source": {"kind": "synthetic"},
        "symbol": symbol,
    }
    return RunBacktest.model_validate(command).symbol


MODELS = [StrategyRunConfig, SyntheticFeedConfig, NngFeedConfig, Subscribe, RunBacktest]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("aapl", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("btc/usdt:usdt", "BTC/USDT:USDT"),
        ("X" * 32, "X" * 32),
    ],
)
def test_every_model_keeps_a_symbol_the_same_way(
    model: type[BaseModel], given: str, kept: str
) -> None:
    assert symbols_of(model, given) == kept


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("bad", ["", "-AAPL", "AA PL", "X" * 33, "ÄPFEL"])
def test_every_model_refuses_a_bad_symbol(model: type[BaseModel], bad: str) -> None:
    with pytest.raises(ValidationError):
        symbols_of(model, bad)


@pytest.mark.parametrize("label", ["2m", "1M", "", "60"])
def test_every_model_refuses_an_unknown_resolution_with_one_message(label: str) -> None:
    message = unknown_resolution(label)
    assert message is not None and "use one of 1s" in message
    for build in (
        lambda: StrategyRunConfig(symbols=("AAPL",), data_resolution=label),
        lambda: SyntheticSource(resolution=label),
    ):
        with pytest.raises(ValidationError, match="unknown resolution"):
            build()


def test_every_known_resolution_passes() -> None:
    assert [unknown_resolution(label) for label in RESOLUTION_SECONDS] == [None] * 11
    assert unknown_resolution(None) is not None


@pytest.mark.parametrize(
    "build",
    [
        lambda symbols: StrategyRunConfig(symbols=symbols),
        lambda symbols: NngFeedConfig(symbols=symbols),
    ],
)
def test_symbols_may_not_repeat_even_in_other_case(build: Any) -> None:
    with pytest.raises(ValidationError, match="symbols must not repeat"):
        build(("AAPL", "aapl"))


@pytest.mark.parametrize(
    ("increment", "decimals"),
    [(0.01, 2), (0.00001, 5), (0.25, 2), (5.0, 0), (1.0, 0), (0.5, 1), (1e-8, 8)],
)
def test_price_decimals_follow_the_increment(increment: float, decimals: int) -> None:
    assert price_decimals(increment) == decimals
