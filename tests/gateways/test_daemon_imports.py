"""What a daemon start costs in imports: the libraries of features its default configuration
does not use (Dask for sweeps, pyarrow's datasets and pandas for Parquet history and
recording, Optuna for searches) are imported when a user first asks for the feature, not
by every start and restart (systemd's, after a crash)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_AT_START = ("distributed", "dask", "pyarrow.dataset", "pandas", "optuna")


def loaded_after(script: str) -> list[str]:
    """The modules of NOT_AT_START that a fresh interpreter holds after ``script``."""
    report = (
        "\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {NOT_AT_START!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script + report],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_importing_the_daemon_and_its_command_loads_no_feature_library() -> None:
    assert loaded_after("import gateways.daemon, gateways.cli.main") == []


def test_a_daemon_started_with_the_default_config_loads_no_feature_library(tmp_path: Path) -> None:
    script = f"""
import asyncio
from gateways.config import DaemonConfig
from gateways.daemon import Daemon, serve_until_signalled

config = DaemonConfig(
    servers={{name: {{"port": 0}} for name in ("orchestrator", "market_data", "risk")}},
    nng={{"enabled": False}},  # its default ipc:// address is shared with other daemons
    journal={{"state_dir": {str(tmp_path)!r}}},
)

async def main() -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)  # the feed ticks meanwhile
    return await serve_until_signalled(Daemon(config), stop)

assert asyncio.run(main()) == 0
"""
    assert loaded_after(script) == []
