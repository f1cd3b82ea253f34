"""Strategies for the sweep tests: the SMA crossover, trading exactly as it does, that
also records every trial it runs, can be slow, or can stop on one trial until killed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import Field

from orchestrator.strategy.api import StrategyContext
from orchestrator.strategy.builtin.sma_crossover import SmaCrossover, SmaCrossoverParams

BLOCK_SECONDS = 120.0
"""How long a blocked trial waits to be killed before it goes on anyway."""


class WatchedSmaParams(SmaCrossoverParams):
    log_dir: str = Field("", description="Append 'fast slow pid' to trials.log here per run.")
    pause_seconds: float = Field(0.0, ge=0, le=5, description="Each run takes this long more.")
    block_marker: str = Field("", description="Block one run until killed; this file says so.")
    block_at_fast: int = Field(-1, description="The fast value of the run that blocks.")


class WatchedSma(SmaCrossover):
    """SmaCrossover's trades; the side effects above at construction (once per backtest)."""

    params_model = WatchedSmaParams  # type: ignore[assignment]

    def __init__(self, params: WatchedSmaParams, context: StrategyContext) -> None:  # type: ignore[override]
        super().__init__(params, context)
        if params.log_dir:
            with (Path(params.log_dir) / "trials.log").open("a") as log:
                log.write(f"{params.fast} {params.slow} {os.getpid()}\n")
        if params.pause_seconds:
            time.sleep(params.pause_seconds)
        marker = Path(params.block_marker) if params.block_marker else None
        if marker is not None and params.fast == params.block_at_fast and not marker.exists():
            marker.write_text(str(os.getpid()))
            deadline = time.monotonic() + BLOCK_SECONDS
            while time.monotonic() < deadline:  # the test kills this process meanwhile
                time.sleep(0.05)
