"""Sentry on the server: off without SENTRY_DSN; never tokens, never document content."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sentry_sdk
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event

from pairpilot import __version__
from pairpilot.observability.logging import redact
from pairpilot.settings import Settings

SECRET_PARAMS = {"token", "access_token"}
SECRET_HEADERS = {"authorization", "cookie", "x-sentry-auth"}


def init_sentry(settings: Settings) -> bool:
    """Start the SDK when a DSN is configured; True when it is on."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        release=f"pairpilot@{__version__}",
        # Log lines stay breadcrumbs: events come from report() and unhandled errors only, so
        # a retried failure is one event per outage, not one per log line.
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            LoggingIntegration(event_level=None),
        ],
        max_request_body_size="never",  # bodies carry documents
        include_local_variables=False,  # locals carry documents and tokens
        traces_sample_rate=0.0,
        before_send=scrub,
        before_breadcrumb=scrub_breadcrumb,
    )
    return True


def close_sentry() -> None:
    """Flush and stop the SDK (app shutdown)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2.0)


def report(error: BaseException, **tags: str) -> None:
    """Capture an exception with tags such as room_id and user_id (nothing when Sentry is off).

    Off, building the event anyway read every traceback frame's locals, which on Python 3.11
    kept the flusher's failed batch alive until the next report (tests/integration/test_soak.py).
    """
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        sentry_sdk.capture_exception(error)


def scrub(event: Event, _hint: dict[str, Any]) -> Event:
    """Remove tokens from URLs, query strings and headers; drop request bodies."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        query = request.get("query_string")
        if isinstance(query, str):
            request["query_string"] = _without_secrets(query)
        url = request.get("url")
        if isinstance(url, str):
            parts = urlsplit(url)
            request["url"] = urlunsplit(parts._replace(query=_without_secrets(parts.query)))
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in SECRET_HEADERS:
                    headers[name] = "[Filtered]"
    return event


def scrub_breadcrumb(crumb: Breadcrumb, _hint: BreadcrumbHint) -> Breadcrumb:
    """Breadcrumbs copy log lines and URLs: take tokens out of them too."""
    message = crumb.get("message")
    if isinstance(message, str):
        crumb["message"] = redact(message)
    data = crumb.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str):
                data[key] = redact(value)
    return crumb


def _without_secrets(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "[Filtered]" if k in SECRET_PARAMS else v) for k, v in pairs])
