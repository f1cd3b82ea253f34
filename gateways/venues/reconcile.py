"""Reconciliation: the journal against a live venue (docs/venues.md).

At start, after the journal's restore and before any strategy resumes
(``Daemon._restore``), and every ``reconcile_interval_seconds`` while it runs:

1. **Orders in flight** (at start): every order the journal sent to the venue and
   holds no outcome for is looked up by its client order id. Filled: its fill is
   journaled and told (``strategy_trade``), once: its id is ``reconciled-<order id>``
   and the order has an outcome from then on, so a second start finds nothing to do.
   Still open: cancelled (nothing rests on the venue across a restart), then read
   again. Unknown to the venue: rejected, once its ``recvWindow`` has passed (a request
   still on its way could arrive until then; the venue refuses it after).
2. **Orphans**: an open order on the venue with the daemon's client id prefix that
   the journal does not have in flight is cancelled and reported.
3. **Trades since the last journaled fill** (at start): the venue's trades of the
   traded symbols from the last fill the journal has there; one of an order the
   journal does not hold as filled is reported (and shows in the balances).
4. **Balances**: per base asset the daemon trades there, the venue's balance against
   the baseline (what the account held besides the daemon's positions: the first
   reconciliation's balance, or an acknowledged mismatch) plus the journal's fills, net
   of the fees the venue took in that asset. A difference is a ``position_mismatch`` on
   3002: the strategies trading that asset there may only reduce their positions until
   an operator acknowledges it (``acknowledge_mismatch``), which makes the venue's
   balance the new truth. A balance is only compared while no order is on its way.

Until the start's reconciliation is done the venue takes no order (its broker says
why), and no strategy trades there: one restored before it is ERROR, as with a venue
unreachable at start, whose orders resting there are cancelled on the venue once it
answers (an orphan). A pass that fails while the venue answers is tried again at start
for ``start_reconcile_seconds``; a venue unreachable at start is reconciled when it
answers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from ccxt.base import errors as ccxt_errors

from gateways.venues.broker import QUANTITY_EPSILON, VenueBroker
from gateways.venues.connector import describe_venue_error
from gateways.venues.ledger import base_of
from orchestrator.bus import EventBus
from orchestrator.journal.store import Journal
from orchestrator.model.clock import Clock
from orchestrator.model.events import PositionMismatch
from orchestrator.model.orders import FILLED, Fill, Order, rejection
from orchestrator.risk.guardian import RiskGuardian
from orchestrator.trading.execution import ExecutionService

log = structlog.get_logger("gateways.venues.reconcile")

RECONCILED_FILL_PREFIX = "reconciled-"
"""Id prefix of the outcomes reconciliation journals for orders in flight at a stop."""

TRADES_MARGIN_SECONDS = 60.0
"""How far before the last journaled fill the venue's trades are read (clocks differ)."""

START_RETRY_FIRST_SECONDS = 0.5
"""The first wait before the start's pass is tried again (doubled at each try)."""

StrategiesOn = Callable[[str], Mapping[str, Sequence[str]]]
"""venue -> {strategy id: its symbols} of the strategies that trade there."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    asset: str
    expected: float
    actual: float
    baseline: float
    strategies: tuple[str, ...]
    since: float


@dataclass(slots=True)
class Reconciliation:
    """What one pass found and did."""

    ts: float
    at_start: bool
    orders_checked: int = 0
    fills_recovered: int = 0
    orders_resolved: int = 0
    """Orders in flight the venue had not filled: rejected or cancelled."""
    orphans_cancelled: int = 0
    resting_checked: int = 0
    """The journal's resting orders on the venue looked up (at start)."""
    untracked_trades: list[str] = field(default_factory=list)
    """Venue order ids of trades the journal does not hold."""
    balances: dict[str, float] = field(default_factory=dict)
    """asset -> the venue's balance, of the assets compared."""
    problem: str | None = None
    """Why the pass could not finish (then it is tried again)."""
    seconds: float = 0.0


class VenueReconciler:
    """Reconciles one venue's account with the journal (see the module docstring)."""

    def __init__(
        self,
        broker: VenueBroker,
        journal: Journal | None,
        execution: ExecutionService,
        risk: RiskGuardian,
        bus: EventBus,
        clock: Clock,
        strategies_on: StrategiesOn,
    ) -> None:
        self.broker = broker
        self.name = broker.name
        self._journal = journal
        self._execution = execution
        self._risk = risk
        self._bus = bus
        self._clock = clock
        self._strategies_on = strategies_on
        self.baselines: dict[str, float] = {}
        self.mismatches: dict[str, Mismatch] = {}
        self.last: Reconciliation | None = None
        """The last pass that finished."""
        self.last_problem: str | None = None

    # ------------------------------------------------------------ the passes

    async def at_start(self) -> bool:
        """Orders in flight, orphans, trades since the last fill, balances; True when
        done (the venue takes orders from then on)."""
        started = self._clock.now()
        report = Reconciliation(started, at_start=True)
        if not self.broker.state.connected:
            return self._failed(report, f"venue unreachable ({self.broker.state.reason})")
        journal = self._journal
        if journal is not None:
            self.baselines = journal.venue_baselines(self.name)
            self.broker.ledger.seed(journal.venue_ledger(self.name), self.broker.markets)
        try:
            open_orders = await self._open_orders()
            in_flight = await self._resolve_in_flight(report)
            await self._adopt_resting(report)
            known = set(in_flight) | self.broker.resting_client_ids()
            await self._cancel_orphans(open_orders, known, report)
            await self._untracked_trades(report, in_flight)
            await self._check_balances(report)
        except ccxt_errors.BaseError as exc:
            return self._failed(report, describe_venue_error(self.name, exc))
        self._done(report)
        self.broker.unreconciled = None
        return True

    async def at_start_retried(self, seconds: float) -> bool:
        """:meth:`at_start`, tried again with backoff for up to ``seconds`` while the venue
        answers but the pass fails (a rate limit, a timeout: likely to pass soon); an
        unreachable venue is not waited for (its broker reconnects, the periodic pass
        reconciles it then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        delay = START_RETRY_FIRST_SECONDS
        while not await self.at_start():
            left = deadline - loop.time()
            if left <= 0 or not self.broker.state.connected:
                return False
            await asyncio.sleep(min(delay, left))
            delay *= 2
        return True

    async def periodic(self) -> None:
        """While running: orphans and balances (the broker's poll follows what is in
        flight); the start's pass again while it has not succeeded."""
        if self.broker.unreconciled is not None:
            await self.at_start()
            return
        if not self.broker.state.connected:
            return
        report = Reconciliation(self._clock.now(), at_start=False)
        try:
            open_orders = await self._open_orders()
            # After the read: every order open then was sent before it, so it is followed.
            known = {order.id for order in self.broker.pending_orders()}
            known |= self.broker.resting_client_ids()
            await self._cancel_orphans(open_orders, known, report)
            await self._check_balances(report)
        except ccxt_errors.BaseError as exc:
            self._failed(report, describe_venue_error(self.name, exc))
            return
        self._done(report)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.periodic()

    def _failed(self, report: Reconciliation, problem: str) -> bool:
        report.problem = problem
        self.last_problem = problem
        if report.at_start:
            self.broker.unreconciled = f"not reconciled with the journal yet: {problem}"
        log.warning("venue_reconciliation_failed", venue=self.name, problem=problem)
        return False

    def _done(self, report: Reconciliation) -> None:
        report.seconds = self._clock.now() - report.ts
        self.last, self.last_problem = report, None
        log.info(
            "venue_reconciled",
            venue=self.name,
            at_start=report.at_start,
            orders_checked=report.orders_checked,
            fills_recovered=report.fills_recovered,
            orders_resolved=report.orders_resolved,
            orphans_cancelled=report.orphans_cancelled,
            untracked_trades=len(report.untracked_trades),
            mismatches=sorted(self.mismatches),
        )

    # ------------------------------------------------------------ 1. orders in flight

    async def _resolve_in_flight(self, report: Reconciliation) -> dict[str, str | None]:
        """Settle every order in flight at the last stop; client order id -> the venue's
        order id (None: the venue never had it)."""
        journal = self._journal
        if journal is None:
            return {}
        resting = {order.id for order, _ in journal.venue_resting_orders(self.name)}
        mine = [
            order
            for venue, order in journal.unfilled_venue_orders()
            if venue == self.name and order.id not in resting
        ]
        replaces = journal.replace_counts() if mine else {}
        parts = journal.filled_quantities() if mine else {}
        for order in mine:
            # Their strategies' exits (a stop-loss their fill may set off) go to the venue.
            self._execution.route(order.strategy_id, self.name)
        outcomes: list[Fill] = []
        venue_ids: dict[str, str | None] = {}
        for order in mine:
            report.orders_checked += 1
            journaled = parts.get(order.id, 0.0)
            fill, venue_id = await self._outcome(order, replaces.get(order.id, 0), journaled)
            venue_ids[self.broker.client_id(order.id)] = venue_id
            outcomes.append(fill)
            if fill.status is FILLED:
                report.fills_recovered += 1
                self.broker.ledger.add(fill, self.broker.markets)
            else:
                report.orders_resolved += 1
            log.warning(
                "venue_order_reconciled",
                venue=self.name,
                order_id=order.id,
                status=fill.status,
                quantity=fill.quantity,
                reason=fill.reason,
            )
        self._execution.settle_recovered(outcomes)
        return venue_ids

    async def _adopt_resting(self, report: Reconciliation) -> None:
        """The journal's resting orders on this venue, as the venue has them: the last
        revision it has of each (a replace places a new one) is followed from the
        restore on; what it filled while the daemon was down is settled then, once."""
        journal = self._journal
        if journal is None or self.broker.restored:
            return  # late (see VenueBroker.restored): nothing of this venue rests here
        resting = journal.venue_resting_orders(self.name)
        parts = journal.filled_quantities() if resting else {}
        for order, replaces in resting:
            self._execution.route(order.strategy_id, self.name)
            report.resting_checked += 1
            found = await self._find(order, replaces)
            if found is None:
                # Never placed (a kill before it left): placed now, under its last revision.
                self.broker.adopt_resting(order, replaces, None, replace_it=False, known=0.0)
                continue
            revision, result = found
            # An older revision than the journal's last replace, open or cancelled (a kill
            # inside the replace, before or after its cancel): the new one goes now.
            stale = revision < replaces and result.get("status") in ("open", "canceled")
            known = await self._journaled_of(order, revision, result, parts.get(order.id, 0.0))
            self.broker.adopt_resting(order, revision, result, replace_it=stale, known=known)
            log.info(
                "venue_resting_order_found",
                venue=self.name,
                order_id=order.id,
                revision=revision,
                status=result.get("status"),
                filled=result.get("filled"),
            )

    async def _outcome(
        self, order: Order, replaces: int, journaled: float
    ) -> tuple[Fill, str | None]:
        """What became of ``order`` on the venue (its last revision there: a native
        order's replaces each placed a new one), as its fill (filled or rejected).
        ``order`` is what the journal left of it, ``journaled`` what its parts there
        filled: only the rest is settled (the venue's ``filled`` counts those parts)."""
        fill_id = RECONCILED_FILL_PREFIX + order.id
        found = await self._lookup(order, replaces)
        if found is None:
            reason = f"venue {self.name} never received the order (reconciled at start)"
            return rejection(order, fill_id, reason, self._clock.now()), None
        revision, result = found
        if result.get("status") == "open":
            await self.broker.cancel_on_venue(order, revision)
            again = await self._lookup(order, revision)
            result = result if again is None else again[1]
        filled = float(result.get("filled") or 0.0)
        rest = filled - await self._journaled_of(order, revision, result, journaled)
        venue_id = None if result.get("id") is None else str(result["id"])
        if rest > QUANTITY_EPSILON:
            fill = self.broker.fill_of(order, result, rest, fill_id, fee_share=rest / filled)
            return fill, venue_id
        status = result.get("status") or "not filled"
        reason = f"venue {self.name}: the order was {status} (reconciled at start)"
        return rejection(order, fill_id, reason, self._clock.now()), venue_id

    async def _journaled_of(
        self, order: Order, revision: int, result: dict[str, Any], journaled: float
    ) -> float:
        """Of what ``revision`` of ``order`` filled (the venue's ``result``), the part the
        journal holds: its parts of the order (``journaled``) less what the earlier
        revisions filled, each read from the venue by its client order id. (Its amount
        less the journal's rest is no measure: a replace may give a new quantity.) Each
        part of a revision is journaled before the next one is placed (``before_send``),
        so what the journal lacks is of the last revision the venue has."""
        earlier = 0.0
        for older in range(revision):
            try:
                earlier += float((await self.broker.fetch(order, older)).get("filled") or 0.0)
            except ccxt_errors.OrderNotFound:
                continue  # never placed (refused, or a kill before it left)
        filled = float(result.get("filled") or 0.0)
        return min(filled, max(0.0, float(f"{journaled - earlier:.12g}")))

    async def _lookup(self, order: Order, replaces: int = 0) -> tuple[int, dict[str, Any]] | None:
        """The venue's last revision of ``order`` (of ``replaces`` at most) and its order,
        by its client order id; None when it never had it."""
        found = await self._find(order, replaces)
        if found is not None:
            return found
        wait = order.ts + self.broker.lookup_window() - self._clock.now()
        if wait <= 0:
            return None
        # Sent so recently that the request may still arrive: wait it out, then ask again.
        await asyncio.sleep(wait)
        return await self._find(order, replaces)

    async def _find(self, order: Order, replaces: int) -> tuple[int, dict[str, Any]] | None:
        """The latest revision of ``order`` the venue has, from ``replaces`` down."""
        for revision in range(replaces, -1, -1):
            try:
                return revision, await self.broker.fetch(order, revision)
            except ccxt_errors.OrderNotFound:
                continue
        return None

    # ------------------------------------------------------------ 2. orphans

    async def _open_orders(self) -> list[dict[str, Any]]:
        symbols = self._traded_symbols()
        orders: list[dict[str, Any]] = []
        for symbol in sorted(symbols):
            orders.extend(await self.broker.exchange.fetch_open_orders(symbol))
        return orders

    async def _cancel_orphans(
        self, open_orders: list[dict[str, Any]], known: set[str], report: Reconciliation
    ) -> None:
        """Cancel the daemon's open orders on the venue that nothing follows."""
        prefix = self.broker.config.client_id_prefix
        for venue_order in open_orders:
            client_id = str(venue_order.get("clientOrderId") or "")
            if not client_id.startswith(prefix) or client_id in known:
                continue
            order_id = self.broker.order_id_of(client_id)
            if client_id[len(prefix) :] in known or (
                order_id is not None and self.broker.holds_resting(order_id)
            ):
                continue
            try:
                await self.broker.exchange.cancel_order(venue_order["id"], venue_order["symbol"])
            except ccxt_errors.OrderNotFound:
                continue  # filled or cancelled meanwhile: the balances tell
            log.warning("venue_orphan_cancelled", venue=self.name, client_order_id=client_id)
            report.orphans_cancelled += 1

    # ------------------------------------------------------------ 3. trades since

    async def _untracked_trades(
        self, report: Reconciliation, in_flight: Mapping[str, str | None]
    ) -> None:
        journal = self._journal
        if journal is None:
            return
        _, last = journal.venue_order_ids(self.name, math.inf)
        if last is None:
            return
        since = last - TRADES_MARGIN_SECONDS
        known, _ = journal.venue_order_ids(self.name, since - TRADES_MARGIN_SECONDS)
        known |= {venue_id for venue_id in in_flight.values() if venue_id is not None}
        for symbol in sorted(self._traded_symbols()):
            trades = await self.broker.exchange.fetch_my_trades(symbol, int(since * 1000))
            for trade in trades:
                venue_id = str(trade.get("order"))
                if venue_id not in known:
                    report.untracked_trades.append(venue_id)
        if report.untracked_trades:
            log.warning(
                "venue_untracked_trades",
                venue=self.name,
                orders=sorted(set(report.untracked_trades)),
            )

    # ------------------------------------------------------------ 4. balances

    async def _check_balances(self, report: Reconciliation) -> None:
        assets = self._traded_assets()
        if not assets or self.broker.busy:
            return  # nothing to compare, or a fill may be on its way: next time
        fills_before = self.broker.ledger.fills
        balance = await self.broker.exchange.fetch_balance()
        # A resting order may have filled on the venue since the broker's last read.
        await self.broker.poll_resting()
        if self.broker.busy or self.broker.ledger.fills != fills_before:
            return
        totals = balance.get("total") or {}
        taken: dict[str, float] = {}
        for asset in sorted(assets):
            actual = float(totals.get(asset) or 0.0)
            report.balances[asset] = actual
            held = self.broker.ledger.positions.get(asset, 0.0)
            if asset not in self.baselines:
                taken[asset] = actual - held
                continue
            self._compare(asset, actual, self.baselines[asset] + held, report.ts)
        if taken:
            self.baselines.update(taken)
            self._journal_baselines(taken, "the balance at the first reconciliation")
            log.info("venue_baselines_taken", venue=self.name, baselines=taken)

    def _compare(self, asset: str, actual: float, expected: float, now: float) -> None:
        if abs(actual - expected) <= self._tolerance(asset, actual):
            return  # an unacknowledged mismatch stays until an operator acknowledges it
        before = self.mismatches.get(asset)
        strategies = tuple(sorted(self._strategies_of(asset)))
        baseline = self.baselines[asset]
        since = before.since if before is not None else now
        mismatch = Mismatch(asset, expected, actual, baseline, strategies, since)
        self.mismatches[asset] = mismatch
        reason = (
            f"venue {self.name} holds {actual:g} {asset}, the journal says {expected:g} "
            f"(acknowledge_mismatch once the account is checked)"
        )
        for strategy_id in strategies:
            self._risk.restrict(strategy_id, reason)
        if before is None or (before.actual, before.expected) != (actual, expected):
            log.error(
                "venue_position_mismatch",
                venue=self.name,
                asset=asset,
                expected=expected,
                actual=actual,
                strategies=strategies,
            )
            self._bus.publish(PositionMismatch(self.name, asset, expected, actual, strategies, now))
            self.broker.set_mismatches(tuple(sorted(self.mismatches)))

    def _tolerance(self, asset: str, actual: float) -> float:
        """Half the smallest amount step of the markets of ``asset``, and float dust."""
        steps = [
            float(market["precision"]["amount"])
            for market in self.broker.markets.values()
            if market.get("base") == asset and (market.get("precision") or {}).get("amount")
        ]
        step = min(steps) / 2 if steps else 0.0
        return max(step, 1e-9 * max(1.0, abs(actual)))

    # ------------------------------------------------------------ acknowledgement

    async def acknowledge(self, asset: str | None, by: str) -> list[Mismatch]:
        """Take the venue's balance as the truth for ``asset`` (None: every mismatch):
        the baseline moves by the difference, the strategies trade again. ``by``: who
        (for the log)."""
        chosen = [m for a, m in self.mismatches.items() if asset is None or a == asset]
        if not chosen:
            return []
        moved = {m.asset: m.baseline + (m.actual - m.expected) for m in chosen}
        await asyncio.to_thread(self._journal_baselines, moved, "acknowledged by an operator")
        self.baselines.update(moved)
        for mismatch in chosen:
            del self.mismatches[mismatch.asset]
        still = {s for m in self.mismatches.values() for s in m.strategies}
        now = self._clock.now()
        for mismatch in chosen:
            for strategy_id in mismatch.strategies:
                if strategy_id not in still:
                    self._risk.lift(strategy_id)
            log.warning("venue_mismatch_acknowledged", venue=self.name, asset=mismatch.asset, by=by)
            event = PositionMismatch(
                self.name,
                mismatch.asset,
                mismatch.expected,
                mismatch.actual,
                mismatch.strategies,
                now,
                acknowledged=True,
            )
            self._bus.publish(event)
        self.broker.set_mismatches(tuple(sorted(self.mismatches)))
        return chosen

    def _journal_baselines(self, baselines: Mapping[str, float], reason: str) -> None:
        if self._journal is not None:
            self._journal.add_venue_baselines(self.name, baselines, reason, self._clock.now())

    # ------------------------------------------------------------ what is traded

    def _traded_symbols(self) -> set[str]:
        symbols = {s for symbols in self._strategies_on(self.name).values() for s in symbols}
        symbols |= {o.symbol for o in self.broker.pending_orders()}
        journal = self._journal
        if journal is not None:
            symbols |= {
                o.symbol for venue, o in journal.unfilled_venue_orders() if venue == self.name
            }
        return {symbol for symbol in symbols if symbol in self.broker.markets}

    def _traded_assets(self) -> set[str]:
        markets = self.broker.markets
        assets = {base_of(symbol, markets) for symbol in self._traded_symbols()}
        return assets | set(self.broker.ledger.positions)

    def _strategies_of(self, asset: str) -> set[str]:
        markets = self.broker.markets
        return {
            strategy_id
            for strategy_id, symbols in self._strategies_on(self.name).items()
            if any(base_of(symbol, markets) == asset for symbol in symbols)
        }
