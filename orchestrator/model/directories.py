"""Where a daemon's files go by default: the directory systemd gives its unit, else
the XDG base directory of the user, else a fallback the caller names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

APPLICATION = "orchestrator"


def systemd_directory(environ: Mapping[str, str], variable: str) -> Path | None:
    """``$STATE_DIRECTORY`` or ``$RUNTIME_DIRECTORY`` as systemd sets them (the first of
    several, colon-separated), or None outside systemd."""
    first = environ.get(variable, "").split(":")[0]
    return Path(first) if first else None


def xdg_directory(environ: Mapping[str, str], variable: str) -> Path | None:
    """``$XDG_..._HOME/orchestrator`` (or ``$XDG_RUNTIME_DIR/orchestrator``); None when the
    variable is unset or relative, which the XDG specification says to ignore."""
    base = environ.get(variable, "")
    return Path(base) / APPLICATION if base and Path(base).is_absolute() else None
