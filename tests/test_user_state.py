"""No test reads or writes the user's state, runtime or config directories."""

from __future__ import annotations

from pathlib import Path

from gateways.config import default_runtime_dir
from orchestrator.journal.store import default_state_dir
from tests.conftest import USER_DIRS, USER_HOME, fingerprint


def test_a_test_resolves_the_default_directories_inside_its_own_home() -> None:
    for directory in (default_state_dir(), default_runtime_dir(), Path.home()):
        assert not directory.is_relative_to(USER_HOME), directory
    assert all(d.is_relative_to(USER_HOME) for d in USER_DIRS)


def test_the_fingerprint_sees_a_written_file(tmp_path: Path) -> None:
    before = fingerprint(tmp_path)
    (tmp_path / "journal.sqlite3").write_bytes(b"x")
    assert fingerprint(tmp_path) != before
    assert fingerprint(tmp_path / "absent") == {}
