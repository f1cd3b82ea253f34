"""Health and metrics over plain HTTP on every server's port.

``GET /healthz``: 200 with a small JSON status when every component runs, 503
otherwise. ``GET /metrics``: the Prometheus text format (prometheus_client).
Both are answered by websockets' ``process_request`` before any upgrade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from websockets.datastructures import Headers
from websockets.http11 import Response

from orchestrator.marketdata.recording import RECORDED_KINDS, MarketRecorder
from orchestrator.model.events import Event, OrderSubmitted, Topic, TradeExecuted
from orchestrator.model.orders import TradeStatus

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ComponentCheck = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class WriteLatency:
    batches: int
    total_seconds: float
    max_seconds: float


class Metrics:
    """Every figure /metrics shows; the servers and the bus feed it."""

    TOPICS = (Topic.ORDER_SUBMITTED, Topic.STRATEGY_TRADE)
    """What :meth:`on_event` counts, the bus topics to subscribe it to."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter(
            "orchestrator_messages_in",
            "Frames received from clients.",
            ["server"],
            registry=self.registry,
        )
        self.messages_out = Counter(
            "orchestrator_messages_out",
            "Messages written to clients.",
            ["server"],
            registry=self.registry,
        )
        self.errors = Counter(
            "orchestrator_errors",
            "Error replies by code.",
            ["server", "code"],
            registry=self.registry,
        )
        self.orders = Counter(
            "orchestrator_orders", "Orders accepted by risk.", registry=self.registry
        )
        self.fills = Counter("orchestrator_fills", "Orders filled.", registry=self.registry)
        self.rejections = Counter(
            "orchestrator_rejections",
            "Orders rejected (risk, broker or restart).",
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            "orchestrator_event_loop_lag_seconds",
            "How late the last event-loop probe woke up.",
            registry=self.registry,
        )

    def watch(
        self, connections: Mapping[str, Callable[[], int]], latency: Callable[[], WriteLatency]
    ) -> None:
        """Gauges read at scrape time: connections per server, journal latency."""
        self.registry.register(_LiveFigures(connections, latency))

    def watch_recording(self, recorder: MarketRecorder) -> None:
        """Counters read at scrape time: the rows the recorder wrote, dropped, lost."""
        self.registry.register(_RecordingFigures(recorder))

    def on_event(self, event: Event) -> None:
        if isinstance(event, OrderSubmitted):
            self.orders.inc()
        elif isinstance(event, TradeExecuted):
            if event.fill.status is TradeStatus.FILLED:
                self.fills.inc()
            else:
                self.rejections.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def probe_loop_lag(self, interval: float = 0.5) -> None:
        """A blocked event loop shows here (and stops the systemd watchdog)."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag.set(max(0.0, loop.time() - expected))


class _LiveFigures(Collector):
    def __init__(
        self,
        connections: Mapping[str, Callable[[], int]],
        latency: Callable[[], WriteLatency],
    ) -> None:
        self._connections = connections
        self._latency = latency

    def collect(self) -> Iterator[GaugeMetricFamily | SummaryMetricFamily]:
        gauge = GaugeMetricFamily(
            "orchestrator_connections", "Open client connections.", labels=["server"]
        )
        for server, count in self._connections.items():
            gauge.add_metric([server], count())
        yield gauge
        latency = self._latency()
        summary = SummaryMetricFamily(
            "orchestrator_journal_write_seconds", "Journal commit latency per batch."
        )
        summary.add_metric([], count_value=latency.batches, sum_value=latency.total_seconds)
        yield summary
        slowest = GaugeMetricFamily(
            "orchestrator_journal_write_max_seconds", "Slowest journal commit so far."
        )
        slowest.add_metric([], latency.max_seconds)
        yield slowest


class _RecordingFigures(Collector):
    def __init__(self, recorder: MarketRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[CounterMetricFamily]:
        rows = CounterMetricFamily(
            "orchestrator_recording_rows",
            "Rows of the recording by kind and outcome: written (in complete files), "
            "dropped (the writer too far behind), failed (a file not written).",
            labels=["kind", "outcome"],
        )
        recorder = self._recorder
        outcomes = (("written", recorder.rows_written), ("dropped", recorder.dropped),
                    ("failed", recorder.failed))  # fmt: skip
        for outcome, counts in outcomes:
            for kind in RECORDED_KINDS:
                rows.add_metric([kind, outcome], counts[kind])
        yield rows


class Health:
    """Components report whether they run; /healthz sums them up."""

    def __init__(self, started: float | None = None) -> None:
        self._checks: dict[str, ComponentCheck] = {}
        self._started = started if started is not None else time.time()

    def add(self, name: str, check: ComponentCheck) -> None:
        self._checks[name] = check

    def status(self) -> tuple[bool, dict[str, object]]:
        components = {name: "ok" if check() else "failing" for name, check in self._checks.items()}
        healthy = all(state == "ok" for state in components.values())
        body: dict[str, object] = {
            "status": "ok" if healthy else "failing",
            "uptimeSeconds": round(time.time() - self._started, 3),
            "components": components,
        }
        return healthy, body


def http_response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


def health_response(health: Health) -> Response:
    healthy, body = health.status()
    status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
    return http_response(status, orjson.dumps(body), "application/json")


def metrics_response(metrics: Metrics) -> Response:
    return http_response(HTTPStatus.OK, metrics.render(), PROMETHEUS_CONTENT_TYPE)
