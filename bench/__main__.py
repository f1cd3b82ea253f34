"""Run every benchmark: ``python -m bench [name ...]`` (``make bench``).

Every module of this package named ``*_bench.py`` is a benchmark with a
``main()`` that prints its table and returns its verdicts (a list of
:class:`bench.report.Verdict`); a new one is picked up without touching this
file. With names (``python -m bench fanout latency``) only those run. At the
end one table sums up every verdict. One benchmark that fails does not stop
the others; the exit code says so.
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

from bench.report import Verdict, summary

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


def run(name: str) -> list[Verdict] | None:
    """The benchmark's verdicts, or None when it failed."""
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}{SUFFIX}")
        result = module.main()
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        verdicts = returned_verdicts(result)
    except Exception:
        traceback.print_exc()
        print(f"[{name}: FAILED after {time.monotonic() - started:.0f} s]\n", flush=True)
        return None
    print(f"[{name}: {time.monotonic() - started:.0f} s]\n", flush=True)
    return verdicts


def returned_verdicts(result: object) -> list[Verdict]:
    """What a ``main()`` returned, checked: a list of Verdict (None counts as none)."""
    if result is None:
        return []
    if isinstance(result, list) and all(isinstance(v, Verdict) for v in result):
        return result
    raise TypeError(f"main() returned {type(result).__name__}, not a list of Verdict")


def main(argv: list[str]) -> int:
    available = discover()
    wanted = argv or available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"benchmarks: {', '.join(wanted)} (load average before: {load})\n", flush=True)
    results = [(name, run(name)) for name in wanted]
    print(summary(results))
    failed = [name for name, verdicts in results if verdicts is None]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
