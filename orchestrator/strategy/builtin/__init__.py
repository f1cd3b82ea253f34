"""The built-in strategies, by the name a config uses for them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from orchestrator.strategy.api import Strategy
from orchestrator.strategy.builtin.bollinger_breakout import BollingerBreakout
from orchestrator.strategy.builtin.rsi_reversion import RsiReversion
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover

BUILTIN_STRATEGIES: Mapping[str, type[Strategy[Any]]] = MappingProxyType(
    {
        "sma_crossover": SmaCrossover,
        "rsi_reversion": RsiReversion,
        "bollinger_breakout": BollingerBreakout,
    }
)
"""Read-only: a user strategy is named by import path, not registered here."""

__all__ = ["BUILTIN_STRATEGIES", "BollingerBreakout", "RsiReversion", "SmaCrossover"]
