"""Finding a strategy by the name a config gives it: one loader for the runtime,
the backtest and check-config."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from orchestrator.model.errors import OrchestratorError
from orchestrator.strategy.api import Strategy, StrategyParams

BUILTIN_STRATEGIES: Mapping[str, str] = MappingProxyType(
    {
        "sma_crossover": "orchestrator.strategy.builtin.sma_crossover:SmaCrossover",
        "rsi_reversion": "orchestrator.strategy.builtin.rsi_reversion:RsiReversion",
        "bollinger_breakout": "orchestrator.strategy.builtin.bollinger_breakout:BollingerBreakout",
    }
)
"""The built-in strategies by the name a config uses, to their import paths.
Read-only: a user strategy is named by its import path, not registered here."""


class StrategyLoadError(OrchestratorError, ValueError):
    """A strategy named in the config cannot be found or is not a Strategy."""

    code = "strategy_unavailable"


def load_strategy_class(kind: str) -> type[Strategy[Any]]:
    """The Strategy subclass named by ``kind``.

    ``kind`` is a built-in name (a key of :data:`BUILTIN_STRATEGIES`)
    or a dotted import path, ``package.module:ClassName`` or
    ``package.module.ClassName``. Raises :class:`StrategyLoadError` saying what
    to fix when the module cannot be imported, lacks the attribute, or the
    attribute is not a Strategy subclass.
    """
    name = kind.strip()
    name = BUILTIN_STRATEGIES.get(name, name)
    module_name, attribute = _split_import_path(name, sorted(BUILTIN_STRATEGIES))
    module = _import_strategy_module(module_name)
    if not hasattr(module, attribute):
        raise StrategyLoadError(
            f"module {module_name!r} has no attribute {attribute!r}"
            f"{_available_strategies_hint(module)}"
        )
    return _require_strategy_class(getattr(module, attribute), f"{module_name}:{attribute}")


def build_params(cls: type[Strategy[Any]], raw: Mapping[str, Any]) -> StrategyParams:
    """Validate ``raw`` with the strategy's params model; ValidationError propagates."""
    return cls.params_model.model_validate(dict(raw))


def _split_import_path(name: str, builtins: list[str]) -> tuple[str, str]:
    if ":" in name:
        module_name, _, attribute = name.partition(":")
    else:
        module_name, _, attribute = name.rpartition(".")
    if not module_name or not attribute.isidentifier():
        raise StrategyLoadError(
            f"unknown strategy {name!r}: use a built-in strategy ({', '.join(builtins)}) "
            f"or an import path such as 'package.module:ClassName'"
        )
    return module_name, attribute


def _import_strategy_module(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_same_or_parent(exc.name, module_name):
            raise StrategyLoadError(
                f"strategy module {module_name!r} not found: check the spelling and "
                f"that its package is installed or on PYTHONPATH"
            ) from exc
        raise StrategyLoadError(
            f"strategy module {module_name!r} imports {exc.name!r}, which is not installed"
        ) from exc
    except Exception as exc:
        raise StrategyLoadError(
            f"strategy module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def _is_same_or_parent(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(missing + ".")


def _require_strategy_class(candidate: object, where: str) -> type[Strategy[Any]]:
    if not (inspect.isclass(candidate) and issubclass(candidate, Strategy)):
        raise StrategyLoadError(
            f"{where} is {_describe(candidate)}, "
            "not a subclass of orchestrator.strategy.api.Strategy"
        )
    if candidate is Strategy:
        raise StrategyLoadError(f"{where} is the Strategy base class itself; name a subclass")
    params_model = candidate.params_model
    if not (inspect.isclass(params_model) and issubclass(params_model, StrategyParams)):
        raise StrategyLoadError(
            f"{where}.params_model must be a subclass of "
            f"orchestrator.strategy.api.StrategyParams, got {params_model!r}"
        )
    return candidate


def _describe(candidate: object) -> str:
    if inspect.isclass(candidate):
        return f"the class {candidate.__qualname__}"
    return f"a {type(candidate).__name__}"


def _available_strategies_hint(module: ModuleType) -> str:
    names = sorted(
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, Strategy) and value is not Strategy
    )
    if not names:
        return ""
    return f"; Strategy subclasses it defines: {', '.join(names)}"
