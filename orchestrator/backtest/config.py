"""Config of the backtest jobs: workers, queue, limits and where data files live."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from orchestrator.model.validation import FrozenModel


class JobsConfig(FrozenModel):
    """Backtest jobs: how many run at once, how many wait, how long one may take."""

    max_concurrent_jobs: int = Field(
        1,
        ge=1,
        le=32,
        description="Jobs running at once, each in its own worker process; keep it below "
        "the CPU cores so the live servers keep one.",
    )
    max_queued_jobs: int = Field(
        16,
        ge=0,
        le=10_000,
        description="Jobs waiting for a worker; a submission beyond it is refused "
        "(job_queue_full).",
    )
    max_job_seconds: float = Field(
        600.0, gt=0, le=86_400, description="A job still running after this is stopped: failed."
    )
    cancel_grace_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How long a cancelled or timed-out job may take to stop by itself "
        "before its worker process is killed.",
    )
    max_finished_jobs: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Finished jobs kept for get and list; the oldest are forgotten first.",
    )
    max_kept_reports: int = Field(
        8,
        ge=0,
        le=1000,
        description="Finished jobs whose full report (every bar's equity, every trade) is "
        "kept for get_backtest_report, newest first; older results keep the engine's "
        "counts only. A report holds 24 bytes a bar plus its trades.",
    )
    data_dir: Path | None = Field(
        None,
        description="Directory that the history of backtest jobs must be in (CSV and "
        "Parquet files, datasets, recordings; paths are relative to it); None refuses file "
        "backtests, leaving the synthetic feed.",
    )
