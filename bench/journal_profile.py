"""Where the time of one committed event goes: ``python -m bench.journal_profile``.

Not a benchmark (no baseline, no ratio; ``python -m bench`` does not run it):
two pyinstrument profiles of the journal path, for the table in
bench/README.md. 20,000 trades (60,000 events: signal, order, trade),
``synchronous = NORMAL``:

1. the event loop's side of a :class:`JournalWriter` flood (groups of up to
   1,000 events, a ``sleep(0)`` every 300 submits as ``journal_bench`` does);
   pyinstrument samples only the thread it runs in, so the commits are not in it;
2. :meth:`Journal.write` over the same events in batches of 1,000: the commit's
   own work, which is what the writer's thread does.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from bench.journal_bench import trades
from gateways.config import LoggingConfig
from gateways.logs import configure_logging
from orchestrator.journal.config import JournalConfig
from orchestrator.journal.store import Journal, Record
from orchestrator.journal.writer import JournalWriter

TRADES = 20_000
GROUP = 1000
SAMPLE_SECONDS = 0.0005


async def flood(path: Path, records: list[Record]) -> None:
    journal = Journal.open(path, "NORMAL")
    config = JournalConfig(batch_max_events=GROUP, max_pending_events=10**7, synchronous="NORMAL")
    writer = JournalWriter.from_config(journal, lambda events, positions: None, config)
    task = asyncio.create_task(writer.run(), name="journal-writer")
    for i, record in enumerate(records):
        writer.submit(record)
        if i % 300 == 299:
            await asyncio.sleep(0)
    await writer.close()
    await task


def write_all(path: Path, records: list[Record]) -> None:
    with Journal.open(path, "NORMAL") as journal:
        for start in range(0, len(records), GROUP):
            journal.write(records[start : start + GROUP])


def report(title: str, profiler: Profiler) -> str:
    return f"=== {title} ===\n{profiler.output_text(unicode=False, color=False)}"


def main() -> None:
    configure_logging(LoggingConfig(level="warning"))
    source = trades()
    records = [record for _ in range(TRADES) for record in next(source)]
    with tempfile.TemporaryDirectory(prefix="journal-profile-") as name:
        directory = Path(name)
        loop_side = Profiler(interval=SAMPLE_SECONDS, async_mode="disabled")
        with loop_side:
            asyncio.run(flood(directory / "flood.sqlite3", records))
        commits = Profiler(interval=SAMPLE_SECONDS)
        with commits:
            write_all(directory / "write.sqlite3", records)
    print(report(f"the event loop's side of a JournalWriter flood, {len(records):,}", loop_side))
    print(report(f"Journal.write, {len(records):,} events in batches of {GROUP:,}", commits))


if __name__ == "__main__":
    main()
