"""Signals the risk checks refused, remembered so that a strategy does not send the
same refused order on every bar.

A strategy that keeps asking for what it cannot have (an entry over its
``maxPositionValue``, anything but an exit while the kill switch is engaged)
would otherwise be refused on every bar, and every view would fill with the same
signal, rejected trade and risk alert. The pipeline remembers the refusal and
holds back the identical signal until something that could change the answer
changes:

- the signal: another side or another quantity asked;
- the position: the strategy's projected position in the symbol, or any fill at
  all (a fill of another strategy moves the gross exposure);
- the limit: the strategy's limits, or the kill switch engaged or released;
- time, for the limits that free with it (the order rates): the refusal is
  forgotten when the rate window has room again.

A refusal that depends on the market alone (no price for the symbol yet) is not
remembered: the next price may be all it needs.
"""

from __future__ import annotations

from orchestrator.model.events import RiskLimit
from orchestrator.model.orders import Side
from orchestrator.model.records import record
from orchestrator.risk.guardian import Halt
from orchestrator.strategy.config import StrategyRunConfig

UNREMEMBERED_LIMITS = (RiskLimit.PRICE_UNKNOWN, RiskLimit.POSITION_MISMATCH)
"""Refusals a signal may not be held back for: they end with the market, or with an
operator's acknowledgement, not with anything the memory watches."""


@record
class RefusedSignal:
    """A refused signal and the state it was refused in."""

    side: Side
    asked: float | None
    """The quantity the signal asked for; None for a signal the pipeline sized."""
    position: float
    limits: StrategyRunConfig
    halt: Halt | None
    fills: int
    """How many fills the pipeline had settled when it was refused."""
    retry_at: float | None


class RefusalMemory:
    """The last refused signal of each (strategy, symbol), while it still holds."""

    def __init__(self) -> None:
        self._refused: dict[tuple[str, str], RefusedSignal] = {}
        self.fills = 0
        """Fills settled so far: any fill may change what the limits allow."""

    def __bool__(self) -> bool:
        """Whether any refusal is remembered (mostly none: nothing can be held back)."""
        return bool(self._refused)

    def remember(self, strategy_id: str, symbol: str, refused: RefusedSignal) -> None:
        self._refused[(strategy_id, symbol)] = refused

    def holds_back(
        self,
        strategy_id: str,
        symbol: str,
        signal: tuple[Side, float | None, float],
        limits: StrategyRunConfig,
        state: tuple[Halt | None, float],
    ) -> bool:
        """Whether ``signal`` (side, quantity asked, projected position) repeats a
        refusal whose cause still holds, given the kill switch and the time now
        (``state``). A refusal that no longer holds is forgotten."""
        if not self._refused:
            return False
        refused = self._refused.get((strategy_id, symbol))
        if refused is None:
            return False
        halt, now = state
        if (
            (refused.side, refused.asked, refused.position) == signal
            and refused.fills == self.fills
            and refused.halt is halt
            and (refused.retry_at is None or now < refused.retry_at)
            and refused.limits == limits
        ):
            return True
        del self._refused[(strategy_id, symbol)]
        return False
