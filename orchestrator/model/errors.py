"""The one exception hierarchy of the daemon.

Every error a client can cause is an :class:`OrchestratorError` with a stable
snake_case ``code`` and a message a person can act on. The edge maps each code
to an error reply (and, for a few, a close code) in one table.
"""

from __future__ import annotations

from typing import ClassVar


class OrchestratorError(Exception):
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownStrategy(OrchestratorError):
    code = "unknown_strategy"


class InvalidTransition(OrchestratorError):
    code = "invalid_transition"


class InvalidStrategyConfig(OrchestratorError):
    code = "invalid_config"


class OrderNotFound(OrchestratorError):
    """No resting order has the id a command names."""

    code = "order_not_found"


class RealTradingUnavailable(OrchestratorError):
    code = "real_trading_unavailable"


class StrategyUnavailable(OrchestratorError):
    """The strategy's code could not be loaded or its parameters are invalid."""

    code = "strategy_unavailable"


class ConfigError(OrchestratorError):
    """The daemon's configuration file is missing, unreadable or invalid."""

    code = "config_error"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class UnknownVenue(OrchestratorError):
    code = "unknown_venue"


class NoMismatch(OrchestratorError):
    """An acknowledgement of a position mismatch that is not there (or no longer)."""

    code = "no_mismatch"
