"""Config of sweeps: where their trials run (an embedded Dask cluster or an existing
one), how many run at once, and the bounds of one sweep."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from orchestrator.model.validation import FrozenModel


def default_workers() -> int:
    """The CPU count minus one (the live servers keep a core), at least one."""
    return max((os.cpu_count() or 2) - 1, 1)


class SweepsConfig(FrozenModel):
    """Parameter sweeps and walk-forward runs on Dask distributed."""

    scheduler: str | None = Field(
        None,
        pattern=r"^(tcp|tls)://[^\s/]+:\d{1,5}$",
        description="Address of an existing Dask scheduler (tcp://host:8786, or tls://... "
        "with the tls_* files); None starts an embedded LocalCluster of worker processes "
        "on loopback at the first sweep and closes it with the daemon.",
    )
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=256,
        description="Worker processes of the embedded cluster (one thread each); default the "
        "CPU count minus one. Ignored with scheduler.",
    )
    worker_memory_limit: str = Field(
        "auto",
        pattern=r"^(auto|0|\d+(\.\d+)?\s*[KMGT]i?B)$",
        description="Memory limit of each embedded worker ('auto': the machine's share, "
        "'0': none, or '2GiB'); a worker beyond it is restarted by its nanny and its "
        "trials run again elsewhere.",
    )
    trials_in_flight: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Trials submitted to the cluster at once per sweep; None: twice the "
        "cluster's worker threads, so that no worker waits for the next trial.",
    )
    max_trials: int = Field(
        2000,
        ge=1,
        le=20_000,
        description="Most trials of one sweep (all windows of a walk-forward together): the "
        "result holds every trial's row (about 300 bytes of JSON each).",
    )
    max_queued_sweeps: int = Field(
        8, ge=0, le=1000, description="Sweeps waiting for the running one; beyond, refused."
    )
    max_finished_sweeps: int = Field(
        100, ge=1, le=100_000, description="Finished sweeps kept for get_sweeps and get_sweep."
    )
    connect_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="How long to wait for the scheduler (or the embedded cluster) to answer.",
    )
    tls_ca_file: Path | None = Field(
        None, description="CA certificate the scheduler's TLS certificate is checked against."
    )
    tls_cert_file: Path | None = Field(
        None, description="The daemon's client certificate for a tls:// scheduler."
    )
    tls_key_file: Path | None = Field(None, description="The private key of tls_cert_file.")

    @model_validator(mode="after")
    def _tls_complete(self) -> SweepsConfig:
        given = [self.tls_ca_file, self.tls_cert_file, self.tls_key_file]
        if any(given) and not all(given):
            raise ValueError("tls_ca_file, tls_cert_file and tls_key_file go together")
        if self.scheduler is not None and self.scheduler.startswith("tls://") and not all(given):
            raise ValueError(
                f"scheduler {self.scheduler} is tls://: set tls_ca_file, tls_cert_file and "
                "tls_key_file"
            )
        if all(given) and self.scheduler is None:
            raise ValueError("the tls_* files are for an external scheduler: set scheduler")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_ca_file is not None
