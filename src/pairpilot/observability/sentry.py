"""Sentry on the server: off without SENTRY_DSN; never tokens, never document content.

``sentry_sdk`` is imported only when a DSN is configured (by ``init_sentry``): with its
integrations and urllib3 it is 3 MB of every server's memory (bench/README.md, "Where memory
goes"). An SDK that was never imported cannot be on, so the other functions here do nothing
until it is.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pairpilot import __version__
from pairpilot.observability.logging import redact
from pairpilot.settings import Settings

if TYPE_CHECKING:
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event

SECRET_PARAMS = {"token", "access_token"}
SECRET_HEADERS = {"authorization", "cookie", "x-sentry-auth"}


def init_sentry(settings: Settings) -> bool:
    """Start the SDK when a DSN is configured (importing it then); True when it is on."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk  # noqa: PLC0415
    from sentry_sdk.integrations.fastapi import FastApiIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.starlette import StarletteIntegration  # noqa: PLC0415

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


def is_on() -> bool:
    """True when the SDK is imported and its client started (by ``init_sentry`` or a test)."""
    if "sentry_sdk" not in sys.modules:
        return False
    import sentry_sdk  # noqa: PLC0415 - already imported: a dictionary lookup

    return sentry_sdk.get_client().is_active()


def close_sentry() -> None:
    """Flush and stop the SDK (app shutdown)."""
    if is_on():
        import sentry_sdk  # noqa: PLC0415 - imported by init_sentry

        sentry_sdk.get_client().close(timeout=2.0)


def report(error: BaseException, **tags: str) -> None:
    """Capture an exception with tags such as room_id and user_id (nothing when Sentry is off).

    Off, building the event anyway read every traceback frame's locals, which on Python 3.11
    kept the flusher's failed batch alive until the next report (tests/integration/test_soak.py).
    """
    if not is_on():
        return
    import sentry_sdk  # noqa: PLC0415 - imported by init_sentry

    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        sentry_sdk.capture_exception(error)


def set_tag(key: str, value: str) -> None:
    """Tag the current request's error reports (nothing when Sentry is off)."""
    if is_on():
        import sentry_sdk  # noqa: PLC0415 - imported by init_sentry

        sentry_sdk.set_tag(key, value)


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
