"""After a trade, the daemon gives the CPU up once while a client on this machine reads trades."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from gateways.local_readers import LocalReaders
from orchestrator.model.events import Event, Topic, TradeExecuted
from tests.gateways.test_trading_flow import drive_uptrend
from tests.support import RECV_TIMEOUT, TestDaemon, running_daemon, test_config

STRATEGY = "strategy-123"


class TradesTold:
    """The trades the journal tells from now on (the fan-out has had each first)."""

    def __init__(self, daemon: TestDaemon) -> None:
        self._outbox = daemon.daemon.outbox
        self._told = 0
        self._enough = asyncio.Event()
        self._wanted = 0
        self._outbox.subscribe(self._watch, (Topic.STRATEGY_TRADE,))

    def _watch(self, event: Event) -> None:
        assert isinstance(event, TradeExecuted)
        self._told += 1
        if self._told >= self._wanted:
            self._enough.set()

    async def at_least(self, count: int) -> None:
        self._wanted = count
        if self._told < count:
            self._enough.clear()
            async with asyncio.timeout(RECV_TIMEOUT):
                await self._enough.wait()
        self._outbox.unsubscribe(self._watch)


async def test_each_trade_to_a_client_on_this_machine_gives_the_cpu_up_once() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        assert daemon.daemon.servers["orchestrator"].local_client_count == 1
        await client.request({"type": "start_strategy", "id": STRATEGY})
        told = TradesTold(daemon)
        await drive_uptrend(daemon, 12)
        await told.at_least(2)
        await client.recv_type("strategy_trade")
        assert (
            daemon.daemon.local_readers.yields
            == daemon.daemon.fanout.published[Topic.STRATEGY_TRADE]
        )
        assert daemon.daemon.local_readers.yields >= 2


async def test_without_a_client_on_this_machine_nothing_is_given_up() -> None:
    async with running_daemon() as daemon:
        await daemon.daemon.registry.start(STRATEGY)
        told = TradesTold(daemon)
        await drive_uptrend(daemon, 12)
        await told.at_least(2)
        assert daemon.daemon.local_readers.yields == 0


async def test_turned_off_the_daemon_gives_nothing_up() -> None:
    config = test_config(connections={"yield_after_trades": False})
    async with running_daemon(config) as daemon, daemon.client() as client:
        await client.request({"type": "start_strategy", "id": STRATEGY})
        told = TradesTold(daemon)
        await drive_uptrend(daemon, 12)
        await told.at_least(2)
        await client.recv_type("strategy_trade")
        assert daemon.daemon.local_readers.yields == 0


async def test_a_server_counts_its_clients_on_this_machine_until_they_leave() -> None:
    async with running_daemon() as daemon:
        server = daemon.daemon.servers["orchestrator"]
        async with daemon.client(), daemon.client():
            assert server.local_client_count == 2
        await server.wait_for_no_clients()
        assert server.local_client_count == 0


async def test_an_endpoint_client_on_this_machine_counts_as_local_while_connected() -> None:
    async with running_daemon() as daemon:
        server = daemon.daemon.servers["orchestrator"]
        async with connect(daemon.url(path="/api/ws/events")) as events:
            await events.send(orjson.dumps({"type": "ping"}).decode())
            assert orjson.loads(await events.recv())["type"] == "pong"  # its handler runs
            assert server.local_client_count == 1
    assert server.local_client_count == 0  # the stop awaited the handler's end


class Server:
    def __init__(self, local_clients: int) -> None:
        self.local_client_count = local_clients


def test_only_servers_with_a_local_client_make_the_daemon_give_up_the_cpu() -> None:
    remote_only = LocalReaders([Server(0), Server(0)])
    remote_only.after_trade(None)  # type: ignore[arg-type]  # the event is not read
    one_local = LocalReaders([Server(0), Server(1)])
    one_local.after_trade(None)  # type: ignore[arg-type]
    assert (remote_only.yields, one_local.yields) == (0, 1)
