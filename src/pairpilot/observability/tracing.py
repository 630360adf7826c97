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
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind, Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from pairpilot.settings import Settings

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
Attribute = str | int | float | bool | None


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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    from pairpilot import __version__  # noqa: PLC0415

    resource = Resource.create({"service.name": "pairpilot", "service.version": __version__})
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = _provider.get_tracer("pairpilot", __version__)
    return True


def close_tracing() -> None:
    """Export what is buffered and stop (shutdown)."""
    global _tracer, _provider  # noqa: PLW0603
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextlib.contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[None]:
    """A span named ``name`` around the block (ids as attributes), or nothing when tracing is off.

    An exception leaving the block is recorded on the span and raised on.
    """
    if _tracer is None:
        yield
        return
    clean = {f"pairpilot.{k}" if k != "user_id" else "enduser.id": v for k, v in attributes.items()}
    with _tracer.start_as_current_span(
        name, attributes={k: v for k, v in clean.items() if v is not None}
    ):
        yield


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

        with _tracer.start_as_current_span(f"HTTP {scope['method']}", kind=_server_kind()) as s:
            try:
                await self.app(scope, receive, sending)
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


def _server_kind() -> SpanKind:
    from opentelemetry.trace import SpanKind  # noqa: PLC0415 - only while tracing

    return SpanKind.SERVER
