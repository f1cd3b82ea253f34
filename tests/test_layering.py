"""The core (``orchestrator/``) knows nothing of WebSockets or NNG.

Only the entry points (``cli``, ``cli_client``, ``__main__`` and ``client``) may
reach the edge. Checked twice: statically over every import statement, and by
importing every core module in a fresh interpreter and looking at sys.modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "orchestrator"
ENTRY_POINTS = {"cli", "cli_client", "__main__", "client"}
FORBIDDEN = ("websockets", "pynng", "gateways")


def core_modules() -> list[str]:
    names = []
    for path in sorted(CORE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if len(parts) == 2 and parts[1] in ENTRY_POINTS:
            continue
        names.append(".".join(parts))
    return names


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def module_path(name: str) -> Path:
    base = REPO.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def test_the_core_is_found() -> None:
    modules = core_modules()
    assert "orchestrator" in modules
    assert "orchestrator.strategy.registry" in modules
    assert "orchestrator.config" in modules
    assert "gateways.cli.main" not in modules


@pytest.mark.parametrize("module", core_modules())
def test_no_core_module_imports_the_edge(module: str) -> None:
    roots = imported_roots(module_path(module))
    assert not roots & set(FORBIDDEN), f"{module} imports {sorted(roots & set(FORBIDDEN))}"


def test_the_static_scan_sees_nested_and_dynamic_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    import websockets.asyncio.server\n"
        "    from pynng import Pub0\n"
        "    importlib.import_module('gateways.ws.server')\n",
        encoding="utf-8",
    )
    assert imported_roots(probe) >= {"websockets", "pynng", "gateways"}


def test_importing_the_core_loads_no_edge_library() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
