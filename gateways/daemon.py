"""The composition root: builds every component from the config, starts and
stops them in order. Nothing else in the code base constructs components."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import signal
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from gateways.api import routes
from gateways.api.history import IndicatorHistory, RecentActivity
from gateways.api.inbound import CommandParser, start_config_bounds
from gateways.api.instruments import InstrumentQueries
from gateways.api.jobs import JobCommands
from gateways.api.journal_replay import JournalReplay
from gateways.api.market_data import MarketSubscriptions, market_command_parser
from gateways.api.orchestrator_parser import orchestrator_command_parser
from gateways.api.outbound import DgbitTranslator
from gateways.api.report_page import ReportPages
from gateways.api.risk import RiskCommands, risk_command_parser
from gateways.api.strategy_commands import OrderCommands, StrategyCommands
from gateways.api.sweep_report_page import SweepReportPages
from gateways.api.sweeps import SweepCommands
from gateways.api.venues import VenueCommands
from gateways.client.text import plural
from gateways.config import DaemonConfig, ServerConfig
from gateways.dgbit import DGBIT_TOPICS, DgbitEndpoints
from gateways.fanout import Fanout
from gateways.journal_stage import JournalStage
from gateways.local_readers import LocalReaders
from gateways.nng.feed import NngFeed
from gateways.nng.publisher import NngBindError, NngPublisher
from gateways.systemd import SystemdNotifier
from gateways.ws.auth import TokenChecker
from gateways.ws.observability import Health, Metrics, WriteLatency
from gateways.ws.server import (
    CommandHandler,
    Endpoint,
    Pages,
    ServerSetup,
    Session,
    SnapshotMessages,
    WebSocketServer,
)
from gateways.ws.static_files import StaticFiles
from orchestrator.backtest.jobs import JobManager, UnknownJob
from orchestrator.backtest.report import BacktestReport
from orchestrator.bus import EventBus
from orchestrator.journal.store import Journal, JournalError, JournalLocked
from orchestrator.journal.writer import MARKET_DATA, DirectDelivery, JournalWriter
from orchestrator.kernel import TradingCore, build_trading_core
from orchestrator.marketdata.config import CcxtFeedConfig, NngFeedConfig
from orchestrator.marketdata.recording import MarketRecorder, RecordingUnavailable
from orchestrator.model.clock import Clock, SystemClock
from orchestrator.model.errors import ConfigError
from orchestrator.model.events import (
    ORDER_TOPICS,
    Event,
    FeedState,
    FeedStatusChanged,
    JobStatus,
    StrategyStatus,
    Topic,
    TradeExecuted,
)
from orchestrator.model.orders import Order
from orchestrator.strategy.committed_views import CommittedViews
from orchestrator.strategy.registry import StrategyRegistry
from orchestrator.sweep.jobs import SweepManager
from orchestrator.sweep.runner import DaskRunner

if TYPE_CHECKING:
    from gateways.venues.broker import VenueBroker
    from gateways.venues.feed import CcxtFeed
    from gateways.venues.reconcile import VenueReconciler

log = structlog.get_logger("gateways.daemon")

NOT_RESTORED = "not restored: its strategy is not running after the restart"


class BindFailed(Exception):
    """A server cannot bind its configured address; the daemon exits without serving."""

    def __init__(self, server: str, config: ServerConfig, reason: str) -> None:
        super().__init__(f"{server} server cannot bind {config.host}:{config.port}: {reason}")
        self.server = server
        self.port = config.port
        self.host = config.host
        self.reason = reason


class AddressInUse(BindFailed):
    def __init__(self, server: str, config: ServerConfig) -> None:
        super().__init__(server, config, "address in use")


NNG_SETTINGS = {
    "publisher": ("nng.publish_address", "nng.runtime_dir"),
    "ingest": ("market_data.feed.address", "nng.runtime_dir"),
}
"""The config keys that move each NNG socket, for the message of a failed bind."""


class NngBindFailed(BindFailed):
    """An NNG socket cannot listen at its ``address`` (ipc:// or tcp://); ``host``
    is the address too, so that code handling any BindFailed can name it."""

    def __init__(self, error: NngBindError, *, default_address: bool) -> None:
        Exception.__init__(self, str(error))
        self.server = f"nng_{error.role}"
        self.address = error.address
        self.host = error.address
        self.port = 0
        self.reason = error.reason
        self.settings = NNG_SETTINGS.get(error.role, ("nng.runtime_dir",))
        self.default_address = default_address
        """Whether the address is the default one, which follows journal.state_dir."""

    @property
    def hint(self) -> str:
        hint = f"another daemon may be listening there; set {' or '.join(self.settings)}"
        if self.default_address:
            hint += " (or give this daemon its own journal.state_dir)"
        return hint


COMMITTED_TOPICS = (
    Topic.STRATEGY_TRADE,
    Topic.STRATEGY_STATUS,
    Topic.EXECUTION_STATUS,
    Topic.MARKET_FEED,
    *ORDER_TOPICS,
)
"""What ``CommittedViews.apply`` folds: a quote need not stop there on its way out."""


class Daemon:
    def __init__(self, config: DaemonConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        # First: a recording that cannot work refuses the start before the journal is locked.
        self.recorder = self._open_recorder()
        self.journal = Journal.from_config(config.journal) if config.journal.enabled else None
        """None with ``journal.enabled = false``: events go straight to the outbox."""
        self.bus = EventBus()
        """Where the core publishes; the journal writer is its subscriber."""
        self.outbox = EventBus()
        """What the journal has committed, for the edges: no client hears of anything else."""
        self.fanout = Fanout(self.journal.last_position if self.journal is not None else 0)
        """The outbox's events to the servers, dgbit and NNG, each message built once."""
        self.outbox.subscribe(self.fanout.publish)
        self.feed = self._build_nng_feed()
        self.venue_feed = self._build_venue_feed()
        """The ccxt feed when the config asks for it: it reads through its venue's exchange."""
        watermarks = self.journal.id_watermarks() if self.journal is not None else None
        last_prices = self.journal.last_prices() if self.journal is not None else None
        self.core: TradingCore = build_trading_core(
            config, self.bus, self.clock, self.feed or self.venue_feed, watermarks, last_prices
        )
        self.registry = StrategyRegistry(config.strategies, self.core.runtime, self.bus, self.clock)
        self.core.runtime.on_failure = self.registry.fail
        if self.recorder is not None:
            self._record_market(self.recorder)
        self.jobs = JobManager(config.jobs, self.bus, self.clock)
        self._jobs_task: asyncio.Task[None] | None = None
        self.sweeps = SweepManager(
            config.sweeps,
            config.sweeps_directory(),
            self.bus,
            self.clock,
            DaskRunner(config.sweeps),
        )
        """Sweeps: their trials on Dask (the cluster starts at the first sweep)."""
        self._sweeps_task: asyncio.Task[None] | None = None
        self.writer: JournalWriter | DirectDelivery = DirectDelivery(self._deliver)
        if self.journal is not None:
            self.writer = JournalWriter.from_config(self.journal, self._deliver, config.journal)
        self.journal_stage = JournalStage(
            self.writer, self.outbox, self._heard, self.fanout.count_unheard
        )
        """The bus's events to the writer, or past it when it need not commit them."""
        self.journal_stage.attach(self.bus)
        self.fanout.follow_market_data(self.bus, MARKET_DATA)
        self._writer_task: asyncio.Task[None] | None = None
        self._saved_live: dict[str, dict[str, tuple[str, ...]]] = {}
        """venue -> the live strategies the journal restores there, with their symbols."""
        self.venues = self._build_venues()
        """Each configured venue's broker, by name (raises ConfigError without credentials)."""
        if self.venue_feed is not None:
            self._attach_venue_feed(self.venue_feed)
        self.reconcilers = self._build_reconcilers()
        """Each venue's account against the journal: at start and periodically."""
        self._venue_tasks: dict[str, asyncio.Task[None]] = {}
        self.epoch = self._begin_run()
        """This run's epoch (its start, ms): a client that resumes learns of a restart."""
        self.metrics = Metrics()
        self.health = Health()
        self.bus.subscribe(self.metrics.on_event, Metrics.TOPICS)
        self._setup = ServerSetup(
            connection=config.connections,
            security=config.security,
            auth=TokenChecker(config.security, required=config.security.has_tokens),
            epoch=self.epoch,
            replay_window=config.streams.replay_window,
            clock=self.clock,
            settled=self.writer.flush,
            metrics=self.metrics,
            health=self.health,
            archive=JournalReplay(self.journal, self.writer.flush)
            if self.journal is not None
            else None,
            delivered=lambda: self.fanout.delivered,
        )
        halt = self.core.execution.halt
        self.committed = CommittedViews(
            self.registry,
            self.core.execution.book.last_price,
            self.core.execution.status,
            halt.reason if halt is not None else None,
            clock=self.clock,
            initial_cash=config.broker.initial_cash,
        )
        """What clients are shown: the state after exactly the events delivered."""
        self.committed.seed(self.registry.catalog())
        self.outbox.subscribe(self.committed.apply, COMMITTED_TOPICS)
        self._snapshot = routes.Snapshot(self.committed)
        self.servers = {
            "orchestrator": self._build_orchestrator_server(),
            "market_data": self._build_market_data_server(),
            "risk": self._build_risk_server(),
        }
        for server in self.servers.values():
            self.fanout.add(server.publish, server.topics, server.deaf_topics)
            server.on_hearing = functools.partial(self.fanout.hear, server.publish)
        self.local_readers = LocalReaders(
            s for s in self.servers.values() if Topic.STRATEGY_TRADE in s.topics
        )
        if config.connections.yield_after_trades:
            self.fanout.add(self.local_readers.after_trade, (Topic.STRATEGY_TRADE,))
        self.notifier = SystemdNotifier()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        """The supervised background tasks, by name, once running."""
        self._watch()
        self.nng: NngPublisher | None = None
        if config.nng.enabled:
            address = config.nng_publish_address()
            self.nng = NngPublisher(config.nng, address, self.clock, self.epoch)
            self.nng.follow(self.fanout)

    def _watch(self) -> None:
        """What /healthz and /metrics report."""
        self.health.add("servers", lambda: all(s.serving for s in self.servers.values()))
        self.health.add("journal", self._journal_running)
        self.health.add("market_data", lambda: self._task_ok("market-data-feed"))
        stats = self.writer.stats
        self.metrics.watch(
            {name: _client_counter(server) for name, server in self.servers.items()},
            lambda: WriteLatency(stats.batches, stats.total_seconds, stats.max_seconds),
        )
        if self.recorder is not None:
            self.metrics.watch_recording(self.recorder)

    def _journal_running(self) -> bool:
        task = self._writer_task
        return task is not None and not task.done() and self.writer.failure is None

    def _task_ok(self, name: str) -> bool:
        task = self.tasks.get(name)
        return (
            task is None or not task.done() or (not task.cancelled() and task.exception() is None)
        )

    def _heard(self, topic: Topic) -> bool:
        """Whether anything on the outbox takes an event of ``topic`` now (one that
        nothing takes is only counted by the fan-out, for the NNG publisher's numbers)."""
        return topic in COMMITTED_TOPICS or self.fanout.hears(topic)

    def _deliver(self, events: Sequence[Event], positions: Sequence[int | None]) -> None:
        for event, position in zip(events, positions, strict=True):
            self.fanout.position = position  # the outbox carries the event alone
            self.outbox.publish(event)
        self.fanout.position = None

    def _begin_run(self) -> int:
        """The run's epoch: its start in ms, recorded in the journal (which makes it
        later than every earlier run's), so that a client of an earlier run that
        resumes is replayed what it missed from the journal."""
        proposed = int(self.clock.now() * 1000)
        if self.journal is None:
            return proposed
        return self.journal.begin_run(proposed, self.clock.now())

    def _build_venues(self) -> dict[str, VenueBroker]:
        """A live broker per venue, routed to by the strategies started on it."""
        if not self.config.venues:
            return {}
        # Imported here: ccxt takes 0.7 s to import, which a daemon without venues skips.
        from gateways.venues.broker import VenueBroker
        from gateways.venues.credentials import load_credentials

        venues = {}
        for name, config in self.config.venues.items():
            broker = VenueBroker(
                name, config, load_credentials(name, config), self.clock, self.core.ids
            )
            broker.on_settled = self.core.execution.collect
            broker.on_state = self.core.execution.announce
            broker.before_send = self.writer.flush  # committed before it leaves
            self.core.brokers.add_venue(name, broker)
            venues[name] = broker
        return venues

    def _build_reconcilers(self) -> dict[str, VenueReconciler]:
        if not self.venues:
            return {}
        from gateways.venues.reconcile import VenueReconciler  # ccxt: see _build_venues

        return {
            name: VenueReconciler(
                broker,
                self.journal,
                self.core.execution,
                self.core.risk,
                self.bus,
                self.clock,
                self._live_strategies,
            )
            for name, broker in self.venues.items()
        }

    async def _connect_venues(self) -> None:
        """Connect every venue before strategies are restored (one that does not answer
        is retried by its task; its live strategies are restored as ERROR)."""
        await asyncio.gather(*(broker.connect() for broker in self.venues.values()))
        for name, broker in self.venues.items():
            self._venue_tasks[name] = asyncio.create_task(broker.run(), name=f"venue-{name}")

    async def _reconcile_venues(self) -> None:
        """Each venue against the journal, before any strategy resumes; then periodically."""
        await asyncio.gather(
            *(
                reconciler.at_start_retried(self.config.venues[name].start_reconcile_seconds)
                for name, reconciler in self.reconcilers.items()
            )
        )
        for name, reconciler in self.reconcilers.items():
            interval = self.config.venues[name].reconcile_interval_seconds
            self._venue_tasks[f"{name}-reconcile"] = asyncio.create_task(
                reconciler.run(interval), name=f"venue-{name}-reconcile"
            )

    def _live_strategies(self, venue: str) -> dict[str, tuple[str, ...]]:
        """The strategies that trade on ``venue`` (live, not stopped), with their symbols:
        the journal's until they are restored, then the registry's."""
        live = dict(self._saved_live.get(venue, {}))
        for view in self.registry.catalog():
            config = view.config
            if config.real_trading and config.venue == venue:
                if view.status is StrategyStatus.STOPPED:
                    live.pop(view.id, None)
                else:
                    live[view.id] = tuple(config.symbols)
        return live

    async def venues_stopped(self) -> None:
        """Raise if a venue's task fails (it never returns on its own)."""
        if self._venue_tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in self._venue_tasks.values()))

    async def _close_venues(self) -> None:
        for task in self._venue_tasks.values():
            task.cancel()
        for task in self._venue_tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(broker.close() for broker in self.venues.values()))

    def _build_nng_feed(self) -> NngFeed | None:
        """The NNG feed when the config asks for it (the core cannot build it)."""
        feed = self.config.market_data.feed
        if not isinstance(feed, NngFeedConfig):
            return None
        return NngFeed(feed, self.config.nng_ingest_address(), self.clock)

    def _build_venue_feed(self) -> CcxtFeed | None:
        """The ccxt feed when the config asks for it (the core speaks no ccxt)."""
        feed = self.config.market_data.feed
        if not isinstance(feed, CcxtFeedConfig):
            return None
        from gateways.venues.feed import CcxtFeed  # ccxt: see _build_venues

        return CcxtFeed(feed, self.clock)

    def _attach_venue_feed(self, feed: CcxtFeed) -> None:
        """The ccxt feed reads through its venue's exchange, and streams from ccxt.pro's."""
        from gateways.venues.connector import build_stream_exchange  # ccxt: see _build_venues

        name = feed.config.venue
        venue = self.config.venues[name]
        feed.attach(self.venues[name].exchange, stream=lambda: build_stream_exchange(name, venue))
        feed.on_state = self._feed_state_changed

    def _feed_state_changed(self, state: FeedState) -> None:
        self.bus.publish(FeedStatusChanged(state))

    def _open_recorder(self) -> MarketRecorder | None:
        """The recorder of what the feed delivers, its directory ready (or RecordingUnavailable)."""
        if not self.config.recording.enabled:
            return None
        directory = self.config.recording_directory()
        recorder = MarketRecorder(self.config.recording, directory, self.clock)
        recorder.open()
        return recorder

    def _record_market(self, recorder: MarketRecorder) -> None:
        """Hand the recorder every tick and bar of the market data path, as configured."""
        if recorder.config.ticks:
            self.core.market.on_tick(recorder.record_tick)
        if recorder.config.bars:
            self.core.market.on_bar(recorder.record_bar)

    def _build_orchestrator_server(self) -> WebSocketServer:
        self.dgbit = DgbitEndpoints(
            DgbitTranslator(), self.clock, self._job_exists, self.config.connections
        )
        self.fanout.add(self.dgbit.publish, DGBIT_TOPICS)
        jobs = JobCommands(
            self.jobs, self.registry, self.config, self.clock, self.core.market.symbols
        )
        activity = RecentActivity(self.journal, self.clock)
        orders = OrderCommands(
            self.core.execution, self.registry, self.committed, "orchestrator", self.clock
        )
        lines = IndicatorHistory(self.core.runtime.lines, self.registry, self.clock)
        sweeps = SweepCommands(self.sweeps, jobs, self.clock)
        venues = VenueCommands(self.reconcilers, self.clock, "orchestrator")
        handlers = {
            **jobs.handlers(),
            **activity.handlers(),
            **orders.handlers(),
            **lines.handlers(),
            **sweeps.handlers(),
            **venues.handlers(),
        }
        return self._server(
            "orchestrator",
            orchestrator_command_parser(),
            handlers,
            endpoints=[self.dgbit],
            static=StaticFiles.from_package(self._web_config),
            pages=[ReportPages(self._report_of), SweepReportPages(self._sweep_report_of)],
        )

    def _job_exists(self, job_id: str) -> bool:
        """A backtest or a sweep: both have a dgbit job stream."""
        return self.jobs.exists(job_id) or self.sweeps.exists(job_id)

    def _report_of(self, job_id: str) -> tuple[BacktestReport, str]:
        spec = self.jobs.spec(job_id)
        report = self.jobs.report(job_id)
        symbols = ", ".join(spec.traded_symbols)
        title = f"{spec.strategy.name}: {symbols} backtest (job {job_id})"
        return report, title

    def _sweep_report_of(self, job_id: str) -> tuple[Mapping[str, Any], str]:
        info = self.sweeps.get(job_id)
        if info.status is not JobStatus.COMPLETED or info.result is None:
            raise UnknownJob(f"sweep {job_id} is {info.status}: a report needs it completed")
        spec = self.sweeps.spec(job_id).backtest
        symbols = ", ".join(spec.traded_symbols)
        return info.result, f"{spec.strategy.name}: {symbols} sweep (job {job_id})"

    def _web_config(self) -> dict[str, object]:
        """What the dashboard needs to open its connections (``/static/config.json``)."""
        return {
            "servers": {
                name: {"port": server.port, "path": getattr(self.config.servers, name).path}
                for name, server in self.servers.items()
            },
            "tls": self.config.security.tls_cert is not None,
            "authRequired": self.config.security.has_tokens,
            "symbols": sorted(self.core.market.symbols),
            "startConfig": start_config_bounds(),
        }

    def _build_market_data_server(self) -> WebSocketServer:
        subscriptions = MarketSubscriptions(
            self.core.market, self.clock, self.config.connections.max_subscriptions
        )
        server = self._server(
            "market_data",
            market_command_parser(),
            subscriptions.handlers(),
            on_disconnect=subscriptions.release,
            snapshot=lambda session: [
                *self._snapshot.messages(session),
                *self._snapshot.feed_messages(),
                *subscriptions.quote_messages(session),
            ],
        )
        subscriptions.server = server
        return server

    def _build_risk_server(self) -> WebSocketServer:
        risk = RiskCommands(self.core.risk, self.core.execution, self.committed, self.clock)
        venues = VenueCommands(self.reconcilers, self.clock, "risk")
        return self._server("risk", risk_command_parser(), {**risk.handlers(), **venues.handlers()})

    def _server(
        self,
        name: str,
        parser: CommandParser,
        extra_handlers: Mapping[str, CommandHandler] | None = None,
        on_disconnect: Callable[[Session], None] | None = None,
        snapshot: SnapshotMessages | None = None,
        endpoints: Iterable[Endpoint] = (),
        static: StaticFiles | None = None,
        pages: Sequence[Pages] = (),
    ) -> WebSocketServer:
        commands = StrategyCommands(self.registry, self.committed, name, self.clock)
        instruments = InstrumentQueries(self.config.market_data, self.clock)
        return WebSocketServer(
            name=name,
            config=getattr(self.config.servers, name),
            setup=self._setup,
            parser=parser,
            handlers={**commands.handlers(), **instruments.handlers(), **(extra_handlers or {})},
            routes=routes.ROUTES[name],
            keyed=routes.KEYED,
            snapshot=snapshot or self._snapshot.messages,
            on_disconnect=on_disconnect,
            endpoints=endpoints,
            static=static,
            pages=pages,
        )

    async def start(self) -> None:
        """Bind every server first (fail fast, leaving nothing listening), restore
        the journal's state, then accept clients: none sees the state before restore."""
        self._restore_kill_switch()
        started: list[WebSocketServer] = []
        for name, server in self.servers.items():
            try:
                await server.bind()
            except OSError as exc:
                await asyncio.gather(*(s.close() for s in started))
                config = getattr(self.config.servers, name)
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse(name, config) from exc
                raise BindFailed(name, config, exc.strerror or str(exc)) from exc
            started.append(server)
        try:
            await self._start_nng()
        except NngBindError as exc:
            await asyncio.gather(*(s.close() for s in started))
            raise NngBindFailed(exc, default_address=self._default_nng_address(exc.role)) from exc
        self._writer_task = asyncio.create_task(self.writer.run(), name="journal-writer")
        self._jobs_task = asyncio.create_task(self.jobs.run(), name="backtest-jobs")
        await self._connect_venues()
        self._sweeps_task = asyncio.create_task(self.sweeps.run(), name="sweep-jobs")
        await self._restore()
        self.core.execution.announce()
        if self.venue_feed is not None:
            self.venue_feed.announce()
        # What the start itself committed (fills reconciled with a venue, resting orders
        # cancelled) is in the first snapshot a client gets, not told after it. A journal
        # that fails here stops the daemon through its writer's task (exit code 1).
        with contextlib.suppress(JournalError):
            await self.writer.flush()
        _freeze_the_heap()
        for server in started:
            await server.start_serving()

    def _default_nng_address(self, role: str) -> bool:
        """Whether the NNG socket of ``role`` listens at its default address."""
        if role == "publisher":
            return self.config.nng.publish_address is None
        feed = self.config.market_data.feed
        return isinstance(feed, NngFeedConfig) and feed.address is None

    def _restore_kill_switch(self) -> None:
        """Engaged when the daemon stopped: it stays engaged until someone resumes.

        Restored before any server listens, so that no halt_trading a client sends
        can come before it (and be replaced by it)."""
        halt = self.journal.kill_switch() if self.journal is not None else None
        if halt is not None:
            self.core.execution.restore_halt(halt)
            self.committed.execution, self.committed.execution_reason = (
                self.core.execution.status,
                halt.reason,
            )

    async def _restore(self) -> None:
        """Positions, P&L and strategies as the journal left them."""
        journal = self.journal
        if journal is None:
            log.warning(
                "journal_disabled",
                reason="journal.enabled is false: nothing is journaled, and a restart will "
                "not restore strategies or positions",
            )
            await self._reconcile_venues()
            return
        for fill in journal.resolve_unfilled(
            "daemon restarted before the order filled", self.clock.now()
        ):
            self.bus.publish(TradeExecuted(fill, None))
        journal.rebuild_book(self.core.execution.book)
        journal.rebuild_book(self.committed.book)  # what clients are shown, from the same fills
        limits = {s.id: s.config for s in journal.strategies() if s.config is not None}
        self.core.risk.resync(limits)  # restored positions keep their stop-losses
        saved = journal.restorable_strategies()
        for strategy in saved:
            config = strategy.config
            if config is not None and config.real_trading and config.venue is not None:
                live = self._saved_live.setdefault(config.venue, {})
                live[strategy.id] = tuple(config.symbols)
        # What the venues did while the daemon was down, before any strategy resumes.
        await self._reconcile_venues()
        self._saved_live.clear()
        await self.registry.restore(saved)
        # Restored statuses, positions and resting orders are the journal's: committed by
        # definition.
        self.committed.seed(self.registry.catalog())
        self.committed.seed_orders(self._restore_resting(journal), journal.filled_quantities())
        for broker in self.venues.values():
            broker.follow_adopted()  # resting there, restored here: followed from now on
        if saved:
            log.info("strategies_restored", strategies={s.id: s.status.value for s in saved})

    def _restore_resting(self, journal: Journal) -> list[Order]:
        """The resting orders of the strategies restored as running (ACTIVE or PAUSED)
        rest again, bracket exits included; the others' are cancelled now (announced and
        journaled). Returns those that rest."""
        running = {
            view.id: view.config
            for view in self.registry.catalog()
            if view.status in (StrategyStatus.ACTIVE, StrategyStatus.PAUSED)
        }
        execution = self.core.execution
        kept: list[Order] = []
        orphans: list[Order] = []
        for order in journal.resting_orders():
            limits = running.get(order.strategy_id)
            if limits is not None:
                execution.restore_resting(order, limits)
                kept.append(order)
            else:
                orphans.append(order)
        for order in orphans:
            execution.cancel_unrestored(order, NOT_RESTORED)
        if kept or orphans:
            log.info("resting_orders_restored", restored=len(kept), cancelled=len(orphans))
        return kept

    async def writer_stopped(self) -> None:
        """Return (or raise) when the journal writer stops: a broken journal stops the daemon."""
        if self._writer_task is not None:
            await asyncio.shield(self._writer_task)

    async def jobs_stopped(self) -> None:
        """Raise if the backtest or the sweep job runner fails (neither returns on its own)."""
        tasks = [task for task in (self._jobs_task, self._sweeps_task) if task is not None]
        if tasks:
            # wait, not gather: cancelling this watch leaves the runners to stop in order.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()

    async def _start_nng(self) -> None:
        """Listen for pushed market data, then publish events (both fail fast)."""
        if self.feed is not None:
            self.feed.open()
        if self.nng is not None:
            try:
                await self.nng.start()
            except NngBindError:
                if self.feed is not None:
                    self.feed.close()
                raise

    def background_tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        tasks = {
            **self.core.background_tasks(),
            "loop-lag-probe": self.metrics.probe_loop_lag(),
            "systemd-watchdog": self.notifier.run_watchdog(self.summary),
        }
        if self.recorder is not None:
            tasks["market-recorder"] = self.recorder.run()
        return tasks

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        ports = "/".join(str(port) for port in self.ports().values())
        clients = sum(server.client_count for server in self.servers.values())
        active = len(self.registry.active())
        return (
            f"serving on {ports}; {plural(clients, 'client')}; "
            f"{plural(active, 'strategy', 'strategies')} running; "
            f"execution {self.core.execution.status.value}"
        )

    def reload_catalog(self, reload: Reload | None) -> None:
        """SIGHUP: take the file's strategy catalog; keep the old one if it is invalid."""
        if reload is None:
            log.warning("reload_unavailable", reason="the daemon was not started from a file")
            return
        try:
            fresh = reload()
        except ConfigError as exc:
            log.error("reload_refused", error=exc.message, problems=exc.problems)
            return
        changes = self.registry.reload_catalog(fresh.strategies)
        log.info("catalog_reloaded", changes=changes or ["none"])
        if fresh.model_copy(update={"strategies": self.config.strategies}) != self.config:
            log.warning(
                "reload_partial", reason="only the strategy catalog reloads; restart for the rest"
            )
        self.notifier.status(self.summary())

    async def close_servers(self) -> None:
        """Stop accepting, close clients with 1001, wait for their handlers."""
        await asyncio.gather(*(server.close() for server in self.servers.values()))

    async def stop(self) -> None:
        """Stop accepting, close clients with 1001, stop the core, then flush and
        close the journal."""
        gc.unfreeze()  # what start froze becomes collectable again (garbage, in tests)
        await self.close_servers()
        await self._stop_jobs()
        # While the core still settles: the orders on their way to a venue get their fills.
        await asyncio.gather(*(broker.settle_before_stop() for broker in self.venues.values()))
        await self.core.close()
        await self._close_venues()
        if self.feed is not None:
            self.feed.close()
        if self.recorder is not None:
            # After the feed: the last ticks it delivered are in the buffer, and written.
            await self.recorder.close()
        await self._close_journal()
        if self.nng is not None:
            await self.nng.close()

    async def _stop_jobs(self) -> None:
        """Backtests fail; the running sweep stops, to resume at the next start; the Dask
        cluster closes."""
        for task in (self._jobs_task, self._sweeps_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _close_journal(self) -> None:
        try:
            await self.writer.close()
        except JournalError as exc:
            log.error("journal_close_failed", error=exc.message)
        if self._writer_task is not None and not self._writer_task.done():
            self._writer_task.cancel()
        if self._writer_task is not None:
            with contextlib.suppress(asyncio.CancelledError, JournalError):
                await self._writer_task

    def ports(self) -> dict[str, int]:
        return {name: server.port for name, server in self.servers.items()}


def _freeze_the_heap() -> None:
    """Collect the start's garbage, then keep what is left out of the cyclic collector's
    sight for good (``gc.freeze``): the modules, the config and the restored state live
    as long as the daemon, and a full collection walks every tracked object, about
    140,000 of them once started (0.1 to 0.2 s on a 2-core VM), pausing every trade
    in flight. Frozen, a full collection walks only what the run made since."""
    gc.collect()
    gc.freeze()


Reload = Callable[[], DaemonConfig]
"""Reads the config file again (raises ConfigError when it is invalid)."""


async def serve_until_signalled(
    daemon: Daemon, stop: asyncio.Event | None = None, reload: Reload | None = None
) -> int:
    """Run the daemon until SIGINT/SIGTERM (or ``stop``); return the exit code.
    SIGHUP re-reads the strategy catalog with ``reload``."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload_catalog, reload)
    try:
        await daemon.start()
    except AddressInUse as exc:
        log.error("port_in_use", server=exc.server, host=exc.host, port=exc.port)
        return 2
    except NngBindFailed as exc:
        log.error(
            "bind_failed",
            server=exc.server,
            address=exc.address,
            error=exc.reason,
            settings=list(exc.settings),
            hint=exc.hint,
        )
        return 2
    except BindFailed as exc:
        log.error("bind_failed", server=exc.server, host=exc.host, port=exc.port, error=exc.reason)
        return 2
    log.info("daemon_ready", **daemon.ports())
    daemon.notifier.ready(daemon.summary())
    exit_code = 0
    try:
        exit_code = await _supervise(daemon, stop)
    finally:
        daemon.notifier.stopping()
        log.info("daemon_stopping")
        await daemon.stop()
        log.info("daemon_stopped", exit_code=exit_code)
        daemon.notifier.close()
    return exit_code


async def _supervise(daemon: Daemon, stop: asyncio.Event) -> int:
    """Run the background components; a failing one shuts the daemon down."""
    failed = False
    try:
        async with asyncio.TaskGroup() as group:
            for name, coro in daemon.background_tasks().items():
                daemon.tasks[name] = group.create_task(coro, name=name)
            tasks = list(daemon.tasks.values())
            tasks.append(group.create_task(daemon.writer_stopped(), name="journal-watch"))
            tasks.append(group.create_task(daemon.jobs_stopped(), name="jobs-watch"))
            tasks.append(group.create_task(daemon.venues_stopped(), name="venues-watch"))
            await stop.wait()
            # Clients first, while the feed still runs: a stop_strategy in flight
            # gets its closing fills before the market data stops.
            await daemon.close_servers()
            for task in tasks:
                task.cancel()
    except* Exception as failures:
        failed = True
        for failure in failures.exceptions:
            log.error("component_failed", error=repr(failure), exc_info=failure)
    return 1 if failed else 0


def _client_counter(server: WebSocketServer) -> Callable[[], int]:
    return lambda: server.client_count


def run(config: DaemonConfig, reload: Reload | None = None) -> int:
    return asyncio.run(_main(config, reload))


async def _main(config: DaemonConfig, reload: Reload | None) -> int:
    try:
        daemon = Daemon(config)
    except JournalLocked as exc:
        log.error("already_running", pid=exc.pid, state_dir=str(exc.path.parent), error=exc.message)
        return 2
    except JournalError as exc:
        log.error("journal_refused", error=exc.message)
        return 2
    except RecordingUnavailable as exc:
        log.error("recording_refused", error=exc.message)
        return 2
    except ConfigError as exc:  # a venue without its credentials
        log.error("config_refused", error=exc.message)
        return 2
    return await serve_until_signalled(daemon, reload=reload)
