"""The layers hold: the core (``orchestrator/``) knows nothing of WebSockets, NNG or
the edge; the client package (``gateways/client/``) knows nothing of the daemon;
and no module of the project imports, however late, one that imports it back.

Each rule is checked on every import statement (module level, inside functions,
under TYPE_CHECKING, import_module calls) and, for the first two, also on what a
fresh interpreter really loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "gateways")
CORE_FORBIDDEN = ("websockets", "pynng", "gateways")
CLIENT = "gateways.client"


def modules_of(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted(REPO.joinpath(*package.split(".")).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


PROJECT = {name: path for package in PACKAGES for name, path in modules_of(package).items()}


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``module`` imports, absolute or relative, wherever it does."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif _is_import_call(node):
            names.add(node.args[0].value)  # type: ignore[attr-defined]
    return names


def _is_import_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and getattr(node.func, "attr", getattr(node.func, "id", None))
        in {"import_module", "__import__"}
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def project_edges(module: str) -> set[str]:
    """The project modules ``module`` imports (``from pkg import mod`` counts as mod)."""
    return {name for name in imported_names(PROJECT[module], module) if name in PROJECT} - {module}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def roots(names: Iterable[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def loaded_by(modules: Iterable[str]) -> list[str]:
    """Every module a fresh interpreter holds after importing ``modules``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
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
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def in_package(names: Iterable[str], package: str) -> Iterator[str]:
    return (name for name in names if name == package or name.startswith(f"{package}."))


CORE = sorted(in_package(PROJECT, "orchestrator"))
CLIENT_MODULES = sorted(in_package(PROJECT, CLIENT))


def test_the_packages_are_found() -> None:
    assert {"orchestrator.kernel", "orchestrator.strategy.registry"} <= set(CORE)
    assert {"gateways.client.ws_client", "gateways.client.commands"} <= set(CLIENT_MODULES)
    assert "gateways.daemon" in PROJECT


@pytest.mark.parametrize("module", CORE)
def test_no_core_module_imports_the_edge(module: str) -> None:
    bad = roots(imported_names(PROJECT[module], module)) & set(CORE_FORBIDDEN)
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_no_client_module_imports_the_daemon(module: str) -> None:
    bad = {
        name
        for name in imported_names(PROJECT[module], module)
        if name.split(".")[0] == "orchestrator"
        or (name.startswith("gateways.") and not name.startswith(f"{CLIENT}."))
    }
    assert not bad, f"{module} imports {sorted(bad)}"


def test_the_static_scan_sees_nested_relative_and_dynamic_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gateways.daemon import Daemon\n"
        "def f():\n    import websockets.asyncio.server\n"
        "    from pynng import Pub0\n"
        "    from ..api import outbound\n"
        "    importlib.import_module('gateways.ws.server')\n",
        encoding="utf-8",
    )
    names = imported_names(probe, "gateways.client.probe")
    assert {"gateways.daemon", "websockets.asyncio.server", "pynng", "gateways.ws.server"} <= names
    assert "gateways.api.outbound" in names


def test_importing_the_core_loads_no_edge_library() -> None:
    loaded = loaded_by(CORE)
    assert sorted(m for m in loaded if m.split(".")[0] in CORE_FORBIDDEN) == []


def test_importing_the_client_loads_nothing_of_the_daemon() -> None:
    loaded = loaded_by(CLIENT_MODULES)
    daemon = sorted(
        m
        for m in loaded
        if m.split(".")[0] == "orchestrator"
        or (m.startswith("gateways.") and not m.startswith(CLIENT))
    )
    assert daemon == []


def test_the_project_has_no_import_cycle() -> None:
    graph = {module: project_edges(module) for module in PROJECT}
    assert sum(len(edges) for edges in graph.values()) > 100  # the scan sees the imports
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_deferred_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_a_daemon_without_venues_does_not_import_ccxt() -> None:
    """ccxt takes most of a second to import: the daemon and the CLI load it only when a
    venue is configured (it was imported at every start, through the venue commands)."""
    loaded = loaded_by(["gateways.daemon", "gateways.cli.main", "gateways.api.routes"])
    assert "gateways.daemon" in loaded
    assert not [name for name in loaded if name == "ccxt" or name.startswith("ccxt.")]
