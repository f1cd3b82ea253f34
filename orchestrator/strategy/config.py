"""Config of strategies: the run config of ``start_strategy``, the catalog, the runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from orchestrator.model.market import DistinctSymbols, Resolution
from orchestrator.model.validation import FrozenModel


class RuntimeConfig(FrozenModel):
    """How signals become orders and how strategies stop."""

    sizing_fraction: float = Field(
        0.95,
        gt=0,
        le=1,
        description="A signal without quantity targets this fraction of maxPositionValue, "
        "leaving room for the price to move before the fill.",
    )
    close_positions_on_stop: bool = Field(
        True, description="stop_strategy closes the strategy's positions at market first."
    )
    stop_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long stop_strategy waits for the closing fills."
    )
    indicator_history_bars: int = Field(
        1000,
        ge=0,
        le=100_000,
        description="Points of each running strategy's indicator lines kept per symbol "
        "(warm-up bars included) for get_indicators; 0 keeps none.",
    )


class StrategyRunConfig(BaseModel):
    """How a strategy runs: the ``config`` object of ``start_strategy``.

    Field names are snake_case in TOML and camelCase on the wire.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    symbols: DistinctSymbols = Field(
        min_length=1, max_length=50, description="Instruments the strategy trades."
    )
    data_resolution: Resolution = Field("1m", description="Bar resolution, e.g. 1s, 1m, 1h, 1d.")
    real_trading: bool = Field(
        False, description="Send the orders to the venue named by venue instead of paper trading."
    )
    venue: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="The configured venue ([venues.NAME]) realTrading sends the orders to.",
    )
    max_position_value: float = Field(
        10_000.0, gt=0, le=1e9, description="Largest notional position per symbol."
    )
    max_orders_per_minute: int = Field(
        5, ge=1, le=10_000, description="Orders per sliding minute per strategy."
    )
    stop_loss_percentage: float = Field(
        0.02, ge=0, lt=1, description="Loss fraction of entry that exits a position; 0 disables."
    )
    params: dict[str, Any] | None = Field(
        None,
        description="The strategy's params this run uses (the catalog's with those given to "
        "start_strategy over them), checked by the strategy's params model; None: the "
        "catalog entry's params.",
    )

    def params_over(self, catalog_params: Mapping[str, Any]) -> dict[str, Any]:
        """The params this run uses: its own when it has them, else the catalog's."""
        return dict(self.params) if self.params is not None else dict(catalog_params)


class CatalogEntry(FrozenModel):
    """A strategy the daemon can run: what it is and how it starts by default."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Stable id.")
    name: str = Field(min_length=1, max_length=100, description="Name shown to people.")
    kind: str = Field(
        min_length=1,
        description="A built-in strategy (sma_crossover, rsi_reversion, bollinger_breakout) "
        "or a dotted import path to a Strategy subclass.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's parameters.")
    defaults: StrategyRunConfig = Field(
        description="Run config used where start_strategy omits it."
    )

    @model_validator(mode="after")
    def _params_in_one_place(self) -> CatalogEntry:
        if self.defaults.params is not None:
            raise ValueError("defaults.params: put the strategy's parameters in the entry's params")
        return self


def default_catalog() -> tuple[CatalogEntry, ...]:
    return (
        CatalogEntry(
            id="strategy-123",
            name="Moving Average Crossover",
            kind="sma_crossover",
            params={"fast": 3, "slow": 8},
            defaults=StrategyRunConfig(
                symbols=("AAPL", "MSFT"), data_resolution="1s", max_orders_per_minute=30
            ),
        ),
        CatalogEntry(
            id="rsi-reversion",
            name="RSI Mean Reversion",
            kind="rsi_reversion",
            params={"period": 14, "oversold": 30, "overbought": 70},
            defaults=StrategyRunConfig(symbols=("GOOG",), data_resolution="5s"),
        ),
        CatalogEntry(
            id="bollinger-breakout",
            name="Bollinger Band Breakout",
            kind="bollinger_breakout",
            params={"period": 20, "num_std": 2.0},
            defaults=StrategyRunConfig(symbols=("TSLA", "AMZN"), data_resolution="5s"),
        ),
    )
