"""Live trading through a venue: the order round trip through the daemon against bare
ccxt's ``create_order`` to the same venue in the same run, and the start-time
reconciliation of 1,000 orders.

The venue is the loopback exchange of the tests (``tests/venues/loopback_exchange.py``:
Binance's spot REST API on 127.0.0.1, signed requests checked), served from the same
process and event loop as what talks to it, for the daemon and the baseline alike.

**Round trip.** A whole ``Daemon`` (journal on, ``synchronous = "NORMAL"``, its three
servers, the venue ``[venues.main]`` with ``enable_rate_limit = false`` as the
baseline's ccxt) runs the built-in ``sma_crossover`` (``fast = 1, slow = 2``, 1 s bars,
``realTrading: true, venue: main``, ``maxPositionValue`` 62,000 so that an entry is 1
BTC: the default sizing fraction 0.5, in whole units) started by a websockets client
on 8082, as a user starts it. On a ManualClock,
each round moves time one second and injects one tick through
``MarketData.handle_tick`` (the feed's entry); the prices alternate 30,030 / 29,970,
so every tick closes a bar on which the averages cross: one order per bar, a buy then
the sell that closes it. Timed from just before the tick (the signal's cause) to the
venue's answer settled as a fill (``TradeExecuted`` on the bus: risk, the journal's
commit before the order leaves, the HTTP round trip, the settlement), and to the
``strategy_trade`` frame read by the 8082 client (after the fill's commit). The
baseline: ccxt's ``binance.create_order`` (market, 1 BTC, buy and sell in turn) to the
same loopback, awaited one after the other, as many times. 20 rounds of warm-up each,
then ``ROUNDS`` timed, the two taking turns in blocks of 50.

**Reconciliation.** A journal holding 1,000 orders sent to the venue with no outcome
(as after a crash between submit and acknowledgement), and the venue holding those
1,000 orders filled (made through ccxt with the journal's client order ids). The
figure is the start-time pass (``VenueReconciler.at_start``: each order looked up by
its client order id, its fill journaled, then orphans, trades and balances) as the
daemon runs it in ``Daemon.start``, on the machine's clock, and the whole start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import orjson
import structlog
from websockets.asyncio.client import connect

from bench.report import Verdict, machine, percentile, table
from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from orchestrator.journal.store import Journal
from orchestrator.model.clock import ManualClock, SystemClock
from orchestrator.model.events import Event, OrderSubmitted, TradeExecuted
from orchestrator.model.market import Tick
from orchestrator.model.orders import BUY, FILLED, SELL, Order
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket

KEY, SECRET = "bench-key", "bench-secret"
SYMBOL = "BTC/USDT"
ROUNDS = int(os.environ.get("VENUE_BENCH_ROUNDS", "300"))
WARMUP = 20
BLOCK = 50
RECONCILED_ORDERS = 1_000
QUANTITY = 1.0
PRICES = (30_030.0, 29_970.0)
START = 1_699_999_980.0
TIMEOUT = 30.0


def bench_config(venue: LoopbackExchange, state_dir: Path) -> DaemonConfig:
    """The daemon's config; the venue's key in a file only this user reads, as users do."""
    credentials = state_dir / "main.toml"
    credentials.write_text(f'api_key = "{KEY}"\nsecret = "{SECRET}"\n', encoding="utf-8")
    credentials.chmod(0o600)
    return DaemonConfig(
        servers={
            "orchestrator": {"port": 0, "path": "/"},
            "market_data": {"port": 0, "path": "/ws"},
            "risk": {"port": 0, "path": "/ws"},
        },
        market_data={
            "feed": {"kind": "synthetic", "symbols": {SYMBOL: 30_000.0}, "history_seconds": 0}
        },
        nng={"enabled": False},
        journal={"state_dir": state_dir, "synchronous": "NORMAL"},
        risk={"max_daily_loss": 1e9, "max_gross_exposure": 1e9},
        venues={
            "main": {
                "exchange": "binance",
                "api_urls": venue.ccxt_urls(),
                "enable_rate_limit": False,
                "timeout_seconds": 5.0,
                "poll_interval_seconds": 0.5,
                "reconcile_interval_seconds": 3600,
                "credentials_file": credentials,
            }
        },
        strategies=[
            {
                "id": "live-sma",
                "name": "SMA crossover, live",
                "kind": "sma_crossover",
                "params": {"fast": 1, "slow": 2},
                "defaults": {
                    "symbols": [SYMBOL],
                    "data_resolution": "1s",
                    "real_trading": True,
                    "venue": "main",
                    "max_position_value": 62_000.0,
                    "max_orders_per_minute": 10_000,
                    "stop_loss_percentage": 0.0,
                },
            }
        ],
    )


def loopback() -> LoopbackExchange:
    market = LoopbackMarket("BTC", "USDT", 30_000.0)
    return LoopbackExchange(KEY, SECRET, [market], {"USDT": 100_000_000.0, "BTC": 10.0}, seed=1)


def bare_ccxt(venue: LoopbackExchange) -> ccxt.binance:
    client = ccxt.binance(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "enableRateLimit": False,
            "timeout": 5_000,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
            },
        }
    )
    client.urls["api"] = {**client.urls["api"], **venue.ccxt_urls()}
    return client


# ------------------------------------------------------------------ round trip


class DaemonRounds:
    """One order per round through a running daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon, clock: ManualClock, ws: Any) -> None:
        self.daemon, self.clock, self.ws = daemon, clock, ws
        self.round = 0
        self._fill: asyncio.Future[None] | None = None
        daemon.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        waiting = self._fill is not None and not self._fill.done()
        if waiting and isinstance(event, TradeExecuted) and event.fill.status is FILLED:
            assert self._fill is not None
            self._fill.set_result(None)

    async def one(self) -> tuple[float, float]:
        """Seconds from the tick to the venue's fill, and to the client's strategy_trade."""
        self._fill = asyncio.get_running_loop().create_future()
        self.clock.advance(1.0)
        price = PRICES[(self.round + 1) % 2]  # the bar this tick closes crosses
        self.round += 1
        started = time.perf_counter()
        self.daemon.core.market.handle_tick(Tick(SYMBOL, price, 1.0, self.clock.now()))
        async with asyncio.timeout(TIMEOUT):
            await self._fill
            filled = time.perf_counter()
            while True:
                message = orjson.loads(await self.ws.recv())
                if message["type"] == "strategy_trade":
                    if message["data"]["status"] != "FILLED":
                        raise RuntimeError(f"the venue refused: {message['data']['reason']}")
                    return filled - started, time.perf_counter() - started


class BareRounds:
    def __init__(self, client: ccxt.binance) -> None:
        self.client = client
        self.round = 0

    async def one(self) -> float:
        side = "buy" if self.round % 2 == 0 else "sell"
        self.round += 1
        started = time.perf_counter()
        await self.client.create_order(SYMBOL, "market", side, QUANTITY)
        return time.perf_counter() - started


async def measure_round_trip() -> dict[str, list[float]]:
    venue = loopback()
    await venue.start()
    clock = ManualClock(START)
    daemon = Daemon(bench_config(venue, Path(tempfile.mkdtemp(prefix="venue-bench-"))), clock)
    client = bare_ccxt(venue)
    await daemon.start()
    try:
        url = f"ws://127.0.0.1:{daemon.servers['orchestrator'].port}/"
        async with connect(url) as ws:
            await ws.recv(), await ws.recv()  # the snapshot
            await ws.send(orjson.dumps({"type": "start_strategy", "id": "live-sma"}).decode())
            rounds = DaemonRounds(daemon, clock, ws)
            for price in (*PRICES, PRICES[0]):  # bars H and L: no order yet
                clock.advance(1.0)
                daemon.core.market.handle_tick(Tick(SYMBOL, price, 1.0, clock.now()))
            bare = BareRounds(client)
            await client.load_markets()
            return await take_turns(rounds, bare)
    finally:
        await client.close()
        await daemon.stop()
        await venue.close()


async def take_turns(rounds: DaemonRounds, bare: BareRounds) -> dict[str, list[float]]:
    for _ in range(WARMUP):
        await rounds.one()
        await bare.one()
    ack: list[float] = []
    told: list[float] = []
    baseline: list[float] = []
    while len(ack) < ROUNDS:
        for _ in range(min(BLOCK, ROUNDS - len(ack))):
            to_ack, to_client = await rounds.one()
            ack.append(to_ack)
            told.append(to_client)
        for _ in range(min(BLOCK, ROUNDS - len(baseline))):
            baseline.append(await bare.one())
    return {"ack": ack, "told": told, "bare": baseline}


# ------------------------------------------------------------------ reconciliation


def journal_in_flight(config: DaemonConfig, count: int) -> list[Order]:
    """``count`` market orders the journal sent to venue main and knows no outcome of."""
    orders = [
        Order(f"order_{i:06d}", "live-sma", SYMBOL, BUY if i % 2 else SELL, QUANTITY, START + i)
        for i in range(1, count + 1)
    ]
    journal = Journal.from_config(config.journal)
    try:
        journal.write([OrderSubmitted(order, "main") for order in orders])
    finally:
        journal.close()
    return orders


async def venue_fills(client: ccxt.binance, orders: list[Order], prefix: str) -> None:
    """The venue holds each order, filled, under the journal's client order id."""
    for start in range(0, len(orders), 25):
        await asyncio.gather(
            *(
                client.create_order(
                    SYMBOL,
                    "market",
                    order.side.value.lower(),
                    QUANTITY,
                    None,
                    {"clientOrderId": prefix + order.id},
                )
                for order in orders[start : start + 25]
            )
        )


async def measure_reconciliation() -> dict[str, float]:
    venue = loopback()
    await venue.start()
    config = bench_config(venue, Path(tempfile.mkdtemp(prefix="venue-bench-reconcile-")))
    client = bare_ccxt(venue)
    try:
        orders = journal_in_flight(config, RECONCILED_ORDERS)
        await venue_fills(client, orders, config.venues["main"].client_id_prefix)
    finally:
        await client.close()
    daemon = Daemon(config, SystemClock())
    started = time.perf_counter()
    await daemon.start()
    whole = time.perf_counter() - started
    try:
        report = daemon.reconcilers["main"].last
        if report is None or report.problem is not None:
            raise RuntimeError(f"reconciliation did not finish: {report}")
        return {
            "seconds": report.seconds,
            "start": whole,
            "checked": report.orders_checked,
            "recovered": report.fills_recovered,
        }
    finally:
        await daemon.stop()
        await venue.close()


# ------------------------------------------------------------------ report


def report(samples: dict[str, list[float]], recon: dict[str, float]) -> tuple[str, list[Verdict]]:
    def ms(values: list[float], fraction: float) -> float:
        return percentile(sorted(values), fraction) * 1000

    rows = [
        ("daemon: signal to venue fill", ms(samples["ack"], 0.5), ms(samples["ack"], 0.99)),
        ("daemon: to strategy_trade on 8082", ms(samples["told"], 0.5), ms(samples["told"], 0.99)),
        ("bare ccxt create_order", ms(samples["bare"], 0.5), ms(samples["bare"], 0.99)),
    ]
    text = table(
        f"venue round trip, {len(samples['ack'])} orders each ({machine()})",
        ("path", "p50 ms", "p99 ms"),
        rows,
    )
    ratio = ms(samples["ack"], 0.5) / ms(samples["bare"], 0.5)
    told_ratio = ms(samples["told"], 0.5) / ms(samples["bare"], 0.5)
    text += (
        f"\nreconciliation at start, {RECONCILED_ORDERS:,} orders in flight: "
        f"{recon['seconds']:.2f} s ({recon['checked']:.0f} checked, {recon['recovered']:.0f} "
        f"fills recovered); the whole start {recon['start']:.2f} s"
    )
    verdicts = [
        Verdict(
            "venue order round trip, signal to fill (p50)",
            f"{ratio:.2f}x bare ccxt create_order ({rows[0][1]:.1f} vs {rows[2][1]:.1f} ms)",
            "none",
            None,
        ),
        Verdict(
            "venue order round trip, to strategy_trade on 8082 (p50)",
            f"{told_ratio:.2f}x bare ccxt create_order ({rows[1][1]:.1f} ms)",
            "none",
            None,
        ),
        Verdict(
            f"start-time reconciliation, {RECONCILED_ORDERS:,} orders",
            f"{recon['seconds']:.2f} s, {recon['recovered']:.0f} fills recovered",
            f"every fill recovered ({RECONCILED_ORDERS:,})",
            recon["recovered"] == RECONCILED_ORDERS,
        ),
    ]
    return text, verdicts


async def run_all() -> tuple[dict[str, list[float]], dict[str, float]]:
    return await measure_round_trip(), await measure_reconciliation()


def main() -> list[Verdict]:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        samples, recon = asyncio.run(run_all())
    finally:
        structlog.configure(**saved)
    text, verdicts = report(samples, recon)
    print(text)
    for verdict in verdicts:
        print(verdict.line())
    return verdicts


if __name__ == "__main__":
    main()
