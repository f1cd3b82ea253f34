"""Run every benchmark: ``python -m bench [name ...]`` (``make bench``).

Every module of this package named ``*_bench.py`` is a benchmark with a
``main()`` that prints its table and verdict; a new one is picked up without
touching this file. With names (``python -m bench fanout latency``) only those
run. One benchmark that fails does not stop the others; the exit code says so.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path

SUFFIX = "_bench"
FIRST = ("throughput", "latency", "fanout")
"""Order of the benchmarks this package started with; any other runs after, by name."""


def discover() -> list[str]:
    package = Path(__file__).resolve().parent
    names = [
        info.name[: -len(SUFFIX)]
        for info in pkgutil.iter_modules([str(package)])
        if info.name.endswith(SUFFIX)
    ]
    return sorted(
        names, key=lambda name: (FIRST.index(name) if name in FIRST else len(FIRST), name)
    )


def run(name: str) -> bool:
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}{SUFFIX}")
        result = module.main()
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception:
        traceback.print_exc()
        print(f"[{name}: FAILED after {time.monotonic() - started:.0f} s]\n", flush=True)
        return False
    print(f"[{name}: {time.monotonic() - started:.0f} s]\n", flush=True)
    return True


def main(argv: list[str]) -> int:
    available = discover()
    wanted = argv or available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"benchmarks: {', '.join(wanted)} (load average before: {load})\n", flush=True)
    failed = [name for name in wanted if not run(name)]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
