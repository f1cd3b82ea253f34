"""The strategy configs: a run config's params, a catalog entry's one place for them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig


def test_a_run_config_without_params_runs_the_catalogs() -> None:
    catalog = {"fast": 3, "slow": 8}
    assert StrategyRunConfig(symbols=("AAPL",)).params_over(catalog) == catalog
    tuned = StrategyRunConfig(symbols=("AAPL",), params={"fast": 2, "slow": 4})
    assert tuned.params_over(catalog) == {"fast": 2, "slow": 4}


def test_a_run_config_keeps_its_params_through_json_as_the_journal_stores_it() -> None:
    tuned = StrategyRunConfig(symbols=("AAPL",), params={"fast": 2, "num_std": 1.5})
    assert StrategyRunConfig.model_validate_json(tuned.model_dump_json(by_alias=True)) == tuned
    older = '{"symbols": ["AAPL"], "dataResolution": "1m"}'  # a journal from before params
    assert StrategyRunConfig.model_validate_json(older).params is None


def test_a_catalog_entry_takes_its_params_in_params_not_in_its_defaults() -> None:
    with pytest.raises(ValidationError, match="put the strategy's parameters in the entry's"):
        CatalogEntry(
            id="sma",
            name="SMA",
            kind="sma_crossover",
            defaults=StrategyRunConfig(symbols=("AAPL",), params={"fast": 2}),
        )
