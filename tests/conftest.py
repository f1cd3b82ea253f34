"""Fixtures every test gets."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_runtime_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test's daemons (and the daemon processes it starts) put their default
    ipc:// sockets in a directory of their own, as systemd's RuntimeDirectory= would,
    so that no two daemons, of this run or of another, share an NNG address."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path_factory.mktemp("run")))
