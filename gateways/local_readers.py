"""Let a client on this machine read a trade before the loop goes on with the tick.

Writing a frame to a loopback socket wakes the process that reads it, and Linux
puts a reader woken by a socket write on the writer's core when the writer is
that core's only task: the write is a "sync" wake-up, its writer expected to
sleep soon. The daemon does not: the strategy's signal and order for the same
tick follow the trade, a few hundred microseconds more, and the reader waits in
the core's queue behind them while the other core may be idle. With one local
client at 100 ticks a second, a third to 40 % of the trades waited so on the
2-core development VM (bench/README.md, "A trade's reader waits behind the
tick").

So after each trade has been handed to the servers, while a server that sends
trades has a client on this machine, the daemon gives the CPU up once
(``os.sched_yield``): a reader waiting on this core reads the trade now, and with
nothing waiting the call returns at once. Remote clients are not helped (their
frames leave through the network), so without a local client nothing is given
up. ``connections.yield_after_trades = false`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from gateways.api.outbound import Outgoing


class CountsLocalClients(Protocol):
    @property
    def local_client_count(self) -> int:
        """Clients connected from this machine's loopback."""
        ...


class LocalReaders:
    """A fan-out sink for trades, added after the servers (see the module docstring)."""

    def __init__(self, servers: Iterable[CountsLocalClients]) -> None:
        self._servers = tuple(servers)
        self.yields = 0
        """Times the CPU was given up, after as many trades."""

    def after_trade(self, outgoing: Outgoing) -> None:
        if any(server.local_client_count for server in self._servers):
            self.yields += 1
            os.sched_yield()
