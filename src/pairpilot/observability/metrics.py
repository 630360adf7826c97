"""Prometheus metrics, one registry per app (tests run several apps in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.messages_in = Counter(
            "pairpilot_messages_in", "Frames received, by message type", ["type"], registry=r
        )
        self.messages_out = Counter(
            "pairpilot_messages_out", "Frames sent, by message type", ["type"], registry=r
        )
        self.bytes_in = Counter("pairpilot_bytes_in", "Bytes received on sockets", registry=r)
        self.bytes_out = Counter("pairpilot_bytes_out", "Bytes sent on sockets", registry=r)
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
        self.ratelimit_decisions = Counter(
            "pairpilot_ratelimit_decisions",
            "Run rate-limit answers, by outcome (allowed, limited, degraded)",
            ["outcome"],
            registry=r,
        )
        self.ratelimit_fail_open = Counter(
            "pairpilot_ratelimit_fail_open",
            "Runs allowed because the limiter's storage was unreachable",
            registry=r,
        )

        # Hot path: label children are looked up once, not per frame.
        kinds = [*FRAME_TYPES.values(), "other", "empty"]
        self.in_by_type = {kind: self.messages_in.labels(kind) for kind in kinds}
        self.out_by_type = {kind: self.messages_out.labels(kind) for kind in kinds}

    def count_in(self, frame: bytes) -> None:
        """Count one received frame."""
        self.in_by_type[frame_type(frame)].inc()
        self.bytes_in.inc(len(frame))

    def count_out(self, frame: bytes, copies: int = 1) -> None:
        """Count a frame sent to ``copies`` sockets."""
        self.out_by_type[frame_type(frame)].inc(copies)
        self.bytes_out.inc(len(frame) * copies)

    def watch_rooms(self, rooms: Callable[[], int], sockets: Callable[[], int]) -> None:
        """Read the live gauges from the registry at scrape time (no bookkeeping)."""
        self.live_rooms.set_function(lambda: float(rooms()))
        self.open_sockets.set_function(lambda: float(sockets()))


FRAME_TYPES = {0: "sync", 1: "awareness", 2: "auth", 3: "query_awareness"}


def frame_type(frame: bytes) -> str:
    """The message-type label of a y-websocket frame."""
    return FRAME_TYPES.get(frame[0], "other") if frame else "empty"
