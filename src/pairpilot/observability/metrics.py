"""Prometheus metrics, one registry per app (tests run several apps in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """Every series PairPilot exports; hot-path children are bound once here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.live_rooms = Gauge("pairpilot_live_rooms", "Rooms loaded in memory", registry=r)
        self.open_sockets = Gauge(
            "pairpilot_open_sockets", "Open collaboration sockets", registry=r
        )
        self.traffic = Traffic()
        r.register(self.traffic)
        self.fanout_seconds = Histogram(
            "pairpilot_fanout_seconds",
            "From an applied update to its frame queued for every other socket",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.closes = Counter(
            "pairpilot_socket_closes", "Sockets closed by the server, by code", ["code"], registry=r
        )
        self.flush_seconds = Histogram(
            "pairpilot_flush_seconds",
            "Time to write one batch of updates",
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.flush_failures = Counter(
            "pairpilot_flush_failures", "Failed writes of the update log", registry=r
        )
        self.compactions = Counter(
            "pairpilot_compactions", "Update logs folded into snapshots", ["outcome"], registry=r
        )
        self.quota_measures = Counter(
            "pairpilot_quota_measures",
            "Rooms' documents measured against their quota: the live document on the event"
            " loop (live), or the stored one, encoded in the merge worker when big (stored)",
            ["place"],
            registry=r,
        )
        self.ratelimit_decisions = Counter(
            "pairpilot_ratelimit_decisions",
            "Run rate-limit answers, by outcome (allowed, limited, degraded)",
            ["outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "pairpilot_refusals",
            "Requests, messages and connections refused by a guardrail, by reason"
            " (see pairpilot.guardrails)",
            ["reason"],
            registry=r,
        )
        self.ratelimit_fail_open = Counter(
            "pairpilot_ratelimit_fail_open",
            "Runs allowed because the limiter's storage was unreachable",
            registry=r,
        )
        self.guardrail_fail_open = Counter(
            "pairpilot_guardrail_fail_open",
            "Actions a rate guardrail let through unchecked because the limiter's storage was"
            " unreachable, by reason (see pairpilot.guardrails)",
            ["reason"],
            registry=r,
        )
        self.awareness_dropped = Counter(
            "pairpilot_awareness_dropped",
            "Awareness frames dropped because they set or removed presence their socket does"
            " not own, by reason (not_owner, too_many_ids)",
            ["reason"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "pairpilot_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retried; disabled: the endpoint"
            " was given up on)",
            ["outcome"],
            registry=r,
        )

        self.handoffs = Counter(
            "pairpilot_room_handoffs",
            "Sockets passed to their room's home worker (passed) and taken from another worker"
            " (received), with `serve --workers N`",
            ["direction"],
            registry=r,
        )
        self.handoff_fallbacks = Counter(
            "pairpilot_room_handoff_fallbacks",
            "Sockets served off their room's home worker because it could not take them, by"
            " reason (home_unreachable, home_busy, not_plain_tcp, request_too_large, error)",
            ["reason"],
            registry=r,
        )

    def watch_worker(self, index: int) -> None:
        """Name this process's index among `serve --workers N` (which worker a scrape reached)."""
        Gauge(
            "pairpilot_worker", "This process's index among the workers", registry=self.registry
        ).set(index)

    def watch_rooms(self, rooms: Callable[[], int], sockets: Callable[[], int]) -> None:
        """Read the live gauges from the registry at scrape time (no bookkeeping)."""
        self.live_rooms.set_function(lambda: float(rooms()))
        self.open_sockets.set_function(lambda: float(sockets()))

    def watch_backlogs(self, storage: Callable[[], int], redis: Callable[[], int]) -> None:
        """Bytes waiting for storage (every room's) and for Redis, read at scrape time."""
        gauge = Gauge(
            "pairpilot_backlog_bytes",
            "Bytes of applied updates waiting for storage, and of frames waiting for Redis",
            ["for"],
            registry=self.registry,
        )
        gauge.labels("storage").set_function(lambda: float(storage()))
        gauge.labels("redis").set_function(lambda: float(redis()))

    def watch_tasks(self, restarts: Callable[[], dict[str, int]]) -> None:
        """Restarts of each supervised background task, read at scrape time."""
        self.registry.register(
            _Counts(
                "pairpilot_task_restarts",
                "Background tasks started again after an unexpected exception, by task",
                "task",
                restarts,
            )
        )

    def watch_spans(self, counts: Callable[[], dict[str, int]]) -> None:
        """Spans exported to the OTLP collector, or given up on, read at scrape time."""
        self.registry.register(
            _Counts(
                "pairpilot_spans",
                "Spans the OTLP exporter delivered (exported) or gave up on (failed)",
                "outcome",
                counts,
            )
        )


class _Counts(Collector):
    """A counter with one label whose values someone else counts (``<name>_total{label}``)."""

    def __init__(
        self, name: str, documentation: str, label: str, read: Callable[[], dict[str, int]]
    ) -> None:
        self._name, self._documentation, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterator[Metric]:
        """One sample per label value counted so far."""
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._read().items()):
            family.add_metric([value], count)
        yield family


FRAME_TYPES = {0: "sync", 1: "awareness", 2: "auth", 3: "query_awareness"}
KINDS = [*FRAME_TYPES.values(), "other", "empty"]
# A frame's kind from its first byte (one-byte bytes objects are shared, so no allocation).
_KIND_INDEX = {bytes([code]): index for index, code in enumerate(FRAME_TYPES)} | {b"": 5}
_OTHER = 4


class Traffic(Collector):
    """Frames and bytes in and out, by message type.

    Counted in plain integers, several times per frame on the hot path, and read when
    Prometheus scrapes: a ``Counter`` takes a lock on every increment.
    """

    def __init__(self) -> None:
        self.frames_in = [0] * len(KINDS)
        self.frames_out = [0] * len(KINDS)
        self.bytes_in = 0
        self.bytes_out = 0

    def count_in(self, frame: bytes) -> None:
        """Count one received frame."""
        self.frames_in[_KIND_INDEX.get(frame[:1], _OTHER)] += 1
        self.bytes_in += len(frame)

    def count_out(self, frame: bytes, copies: int = 1) -> None:
        """Count a frame sent to ``copies`` sockets."""
        self.frames_out[_KIND_INDEX.get(frame[:1], _OTHER)] += copies
        self.bytes_out += len(frame) * copies

    def collect(self) -> Iterator[Metric]:
        """The four traffic series as Prometheus counters."""
        for name, doc, counts in (
            ("pairpilot_messages_in", "Frames received, by message type", self.frames_in),
            ("pairpilot_messages_out", "Frames sent, by message type", self.frames_out),
        ):
            family = CounterMetricFamily(name, doc, labels=["type"])
            for kind, count in zip(KINDS, counts, strict=True):
                family.add_metric([kind], count)
            yield family
        yield CounterMetricFamily("pairpilot_bytes_in", "Bytes received", value=self.bytes_in)
        yield CounterMetricFamily("pairpilot_bytes_out", "Bytes sent", value=self.bytes_out)
