"""OpenTelemetry traces when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; off and not imported otherwise.

``init_tracing`` sets up the SDK with the OTLP/HTTP exporter (which reads the standard
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` variables itself) and a batch processor, so a span
costs the request nothing but its recording. ``span(name, **attributes)`` is the one call the
rest of the code makes: a context manager that does nothing (and imports nothing) while tracing
is off. Attributes are ids and counts (``pairpilot.room_id``, ``enduser.id``): never document
content, names or tokens.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from pairpilot.settings import Settings

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
Attribute = str | int | float | bool | list[str] | None
# At server stop, queued spans get this long to reach the collector; then they are dropped.
SHUTDOWN_SECONDS = 5.0
# Spans the exporter delivered or gave up on (a batch failed after its retries), since start:
# ``pairpilot_spans_total{outcome}`` at scrape time. Written by the SDK's export thread only.
SPAN_COUNTS = {"exported": 0, "failed": 0}
log = logging.getLogger(__name__)


def init_tracing(settings: Settings) -> bool:
    """Start exporting spans when an OTLP endpoint is configured; whether tracing is on."""
    global _tracer, _provider  # noqa: PLW0603 - one tracer per process, like Sentry's client
    if not settings.otlp_endpoint or _tracer is not None:
        return _tracer is not None
    # Imported only here: the SDK and its exporter are megabytes an untraced server never needs.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from pairpilot import __version__  # noqa: PLC0415

    class CountingExporter(SpanExporter):
        """The OTLP exporter, counting the spans each batch delivered or failed to."""

        def __init__(self, exporter: SpanExporter) -> None:
            self._exporter = exporter

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            result = self._exporter.export(spans)
            outcome = "exported" if result is SpanExportResult.SUCCESS else "failed"
            SPAN_COUNTS[outcome] += len(spans)
            return result

        def shutdown(self) -> None:
            self._exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self._exporter.force_flush(timeout_millis)

    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    # Stopped by close_tracing (bounded), not by an atexit hook that can wait 30 s at exit.
    _provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    _provider.add_span_processor(BatchSpanProcessor(CountingExporter(OTLPSpanExporter())))
    # A full queue warns once per dropped span: a collector that is down would flood the log.
    # The exporter's own lines (one per retry of a batch) and the metric say it is down.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    _tracer = _provider.get_tracer("pairpilot", __version__)
    return True


def close_tracing() -> None:
    """Export what is buffered and stop (shutdown); at most ``SHUTDOWN_SECONDS``."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is None:
        return
    # With the collector down the SDK's shutdown retries each batch for the exporter's timeout
    # (10 s) and waits up to 30 s for its thread: the server's stop waits only so long.
    stopping = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    stopping.start()
    stopping.join(SHUTDOWN_SECONDS)
    if stopping.is_alive():
        log.warning("spans not exported at shutdown: the collector did not answer in time")


@contextlib.contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[None]:
    """A span named ``name`` around the block (ids as attributes), or nothing when tracing is off.

    An exception leaving the block marks the span as an error with ``error.type`` (its class)
    and is raised on; its message is not recorded (messages can quote what a client sent).
    """
    if _tracer is None:
        yield
        return
    clean = {f"pairpilot.{k}" if k != "user_id" else "enduser.id": v for k, v in attributes.items()}
    with _tracer.start_as_current_span(
        name,
        attributes={k: v for k, v in clean.items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield
        except BaseException as exc:
            _failed(current, exc)
            raise


def tag(**attributes: Attribute) -> None:
    """Add ids to the current span (the request's), when tracing is on."""
    if _tracer is None:
        return
    from opentelemetry import trace  # noqa: PLC0415 - only while tracing

    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute("enduser.id" if key == "user_id" else f"pairpilot.{key}", value)


class TracingMiddleware:
    """A span per HTTP request: method, route template, status; never the query or a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap an HTTP request in a span (other scopes pass through)."""
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        with _tracer.start_as_current_span(
            f"HTTP {scope['method']}",
            kind=_server_kind(),
            record_exception=False,
            set_status_on_exception=False,
        ) as s:
            try:
                await self.app(scope, receive, sending)
            except BaseException as exc:
                _failed(s, exc)
                raise
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                s.update_name(f"{scope['method']} {template}")
                s.set_attribute("http.request.method", scope["method"])
                s.set_attribute("http.route", template)
                s.set_attribute("http.response.status_code", status["code"])
                room = (scope.get("path_params") or {}).get("room_id")
                if isinstance(room, str):
                    s.set_attribute("pairpilot.room_id", room[:64])


def _failed(current: Span, error: BaseException) -> None:
    from opentelemetry.trace import StatusCode  # noqa: PLC0415 - only while tracing

    current.set_status(StatusCode.ERROR)
    current.set_attribute("error.type", type(error).__qualname__)


def _server_kind() -> SpanKind:
    from opentelemetry.trace import SpanKind  # noqa: PLC0415 - only while tracing

    return SpanKind.SERVER
