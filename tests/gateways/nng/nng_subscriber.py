"""A subscriber in another process, for the NNG tests and the benchmark.

``python tests/gateways/nng/nng_subscriber.py ADDRESS [TOPIC ...]`` prints
``{"ready": true}``, then one JSON line per event received through
:class:`gateways.client.nng_client.EventSubscriber`, with what it made of the numbers.
It runs until killed; ``--quiet`` prints only a summary line per second instead.
"""

from __future__ import annotations

import sys
import time

import orjson

from gateways.client.nng_client import EventSubscriber


def main(argv: list[str]) -> None:
    quiet = "--quiet" in argv
    address, *topics = [arg for arg in argv if arg != "--quiet"]
    out = sys.stdout.buffer
    with EventSubscriber(address, topics, timeout=0.2) as events:
        out.write(b'{"ready": true}\n')
        out.flush()
        received = 0
        reported = time.monotonic()
        while True:
            for event in events:  # ends after 0.2 s without an event
                received += 1
                if not quiet:
                    line = {
                        "topic": event.topic,
                        "type": event.type,
                        "seq": event.seq,
                        "topicSeq": event.topic_seq,
                        "epoch": event.epoch,
                        "missed": event.missed,
                        "restarted": event.restarted,
                        "data": event.data,
                    }
                    out.write(orjson.dumps(line) + b"\n")
                    out.flush()
                elif time.monotonic() - reported >= 0.2:
                    break
            if quiet:
                summary = {"received": received, "missed": events.missed}
                out.write(orjson.dumps(summary) + b"\n")
                out.flush()
                reported = time.monotonic()


if __name__ == "__main__":
    main(sys.argv[1:])
