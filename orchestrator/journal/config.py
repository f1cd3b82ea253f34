"""Config of the SQLite journal: where it lives, batching and durability."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.model.validation import FrozenModel


class JournalConfig(FrozenModel):
    """The SQLite journal: where it lives, how writes are batched, how durable a commit is."""

    enabled: bool = Field(
        True,
        description="Commit every event to the journal before any client hears of it, and "
        "restore strategies and positions from it at start. false (benchmarks, throwaway "
        "runs): events go straight to the clients, nothing is persisted or restored.",
    )
    state_dir: Path | None = Field(
        None,
        description="Directory of the journal. None: $STATE_DIRECTORY (set by systemd's "
        "StateDirectory=), else $XDG_STATE_HOME/orchestrator, else ~/.local/state/orchestrator.",
    )
    file_name: str = Field(
        "journal.sqlite3",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="File name of the journal inside state_dir.",
    )
    batch_max_events: int = Field(
        500, ge=1, le=100_000, description="Most events committed in one transaction."
    )
    batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="How long a batch that is not full waits for more events before it is "
        "committed. 0 commits at once; events that arrive during a commit form the next batch.",
    )
    redo_commit_lag_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="With synchronous = NORMAL: how long events told from the redo log wait "
        "before they go to the writer's thread to be committed (sooner once "
        "batch_max_events of them wait). They are told already; the wait lets a tick's "
        "whole burst (its fill, signal and order) be sent and read before its commit "
        "competes with that for a CPU, and commits the burst in one transaction. A power "
        "loss can take this much more of the last commits. 0 hands them over at once.",
    )
    max_pending_events: int = Field(
        100_000,
        ge=1_000,
        le=10_000_000,
        description="Events waiting for the journal; more means the disk cannot keep up, "
        "which stops the daemon rather than tell clients of trades that are not journaled.",
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="Durability of a commit (SQLite's synchronous mode; the journal is in "
        "WAL mode). Both modes survive a crash of the daemon (kill -9, out of memory, a bug): "
        "an event is in the operating system before any client is told of it, and the crash "
        "test checks it in both. NORMAL (the default, for paper trading): signals, orders and "
        "fills are told once appended to the redo log beside the journal, and committed to "
        "SQLite after (the next start writes in what a crash left in the log); a power loss or a "
        "kernel crash may lose the last commits (those since the last checkpoint, which "
        "follows a commit within about a second), trades clients were told of included; the "
        "journal stays consistent. FULL: each commit waits for the disk (fsync), so it survives a "
        "power loss too, at the cost in docs/journal.md. Use FULL when the broker is real.",
    )
