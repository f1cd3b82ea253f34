"""The suite's own rule for screenshots: what a test saved in its ``tmp_path`` is kept,
pass or fail, under ``ORCHESTRATOR_TEST_ARTIFACTS`` (default ``build/test-artifacts``),
one directory per test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

SAVING_TESTS = """
def test_saves_a_page(tmp_path):
    (tmp_path / "page.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("not a screenshot")

def test_saves_and_fails(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"png")
    assert False
"""


def test_screenshots_of_passing_and_failing_tests_are_kept_per_test(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST.read_text(encoding="utf-8"), encoding="utf-8")
    (suite / "test_pages.py").write_text(SAVING_TESTS, encoding="utf-8")
    kept = tmp_path / "artifacts"
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    environment["ORCHESTRATOR_TEST_ARTIFACTS"] = str(kept)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         str(suite)],
        cwd=suite, capture_output=True, text=True, timeout=120,
        env=environment,
    )  # fmt: skip
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    found = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert found == [
        "test_pages.py_test_saves_a_page/page.png",
        "test_pages.py_test_saves_and_fails/broken.png",
    ]
