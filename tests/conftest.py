"""Fixtures every test gets, and the guard that the suite leaves the user's state alone."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests race no clock: a loaded machine (CI on two shared cores) must not fail
# them for being slow, and the same run finds the same examples.
settings.register_profile(
    "suite",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("suite")

# Where each test's screenshots are kept after the run (tests/README: test artefacts).
ARTIFACTS = Path(
    os.environ.get("ORCHESTRATOR_TEST_ARTIFACTS")
    or Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
)

# Where a daemon started with no config would keep its journal, sockets and config
# on this machine; read once, before any test changes the environment.
USER_HOME = Path(os.environ.get("HOME") or Path.home())
USER_DIRS = (
    USER_HOME / ".local" / "state" / "orchestrator",
    USER_HOME / ".config" / "orchestrator",
)
USER_ENVIRONMENT = (
    "STATE_DIRECTORY",
    "RUNTIME_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
)


def fingerprint(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory`` with its size and modification time."""
    if not directory.exists():
        return {}
    return {
        str(path): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in directory.rglob("*")
        if path.is_file()
    }


@pytest.fixture(scope="session", autouse=True)
def _user_state_untouched() -> Iterator[None]:
    """Fails the run if any test wrote to the user's own state or config directory."""
    before = {str(d): fingerprint(d) for d in USER_DIRS}
    yield
    after = {str(d): fingerprint(d) for d in USER_DIRS}
    changed = sorted(d for d in before if before[d] != after[d])
    assert not changed, f"the test suite changed the user's state in {', '.join(changed)}"


@pytest.fixture(autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every daemon process it starts) has a home, a state, a runtime
    and a config directory of its own, as systemd's StateDirectory= and
    RuntimeDirectory= would give it: no test opens the user's journal, binds the
    user's NNG address or reads the user's config, and no two tests share one."""
    home = tmp_path_factory.mktemp("home")
    for name in USER_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path_factory.mktemp("run")))


@pytest.fixture(autouse=True)
def _keep_screenshots(request: pytest.FixtureRequest) -> Iterator[None]:
    """The screenshots a test took into its ``tmp_path`` (pages in headless Chromium)
    are copied, pass or fail, to ``ARTIFACTS/<test>/``: pytest removes old tmp dirs,
    and a reader of a CI run wants to see the pages."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")
    yield
    shots = sorted(tmp_path.glob("*.png"))
    if not shots:
        return
    kept = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    kept.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy2(shot, kept / shot.name)
