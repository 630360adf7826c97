"""POST /monitoring: the browser SDK's tunnel to Sentry, for the configured DSN only.

The envelope's header line names a DSN; it is forwarded only when that DSN's host and project
id are the configured browser DSN's (never an open relay). Bodies over the limit get 413,
anything else malformed 400. A failed forward is logged, and the browser still gets 200: its
error reporting must never become an error of its own.
"""

from __future__ import annotations

import json
from urllib.parse import SplitResult, urlsplit

import structlog
from fastapi import APIRouter, Request, Response

from pairpilot.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from pairpilot.web.deps import ServicesDep
from pairpilot.web.schemas import ErrorOut

router = APIRouter(tags=["monitoring"])
log = structlog.get_logger(__name__)


def _project(dsn: SplitResult) -> tuple[str, int | None, str]:
    return (dsn.hostname or "", dsn.port, dsn.path.rstrip("/").rsplit("/", 1)[-1])


def ingest_url(dsn: str) -> str:
    """Sentry's envelope endpoint for a DSN (``{scheme}://{host}{prefix}/api/{project}/envelope/``)."""
    parts = urlsplit(dsn)
    prefix, _, project = parts.path.rstrip("/").rpartition("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{prefix}/api/{project}/envelope/"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"envelope over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"envelope over {limit} bytes")
    return bytes(body)


def _envelope_dsn(body: bytes) -> SplitResult:
    header_line = body.split(b"\n", 1)[0]
    try:
        header = json.loads(header_line)
    except ValueError as exc:
        raise BadRequestError("the envelope header is not JSON") from exc
    dsn = header.get("dsn") if isinstance(header, dict) else None
    if not isinstance(dsn, str) or not dsn:
        raise BadRequestError("the envelope header names no DSN")
    try:
        return urlsplit(dsn)
    except ValueError as exc:
        raise BadRequestError("the envelope's DSN is not a URL") from exc


@router.post(
    "/monitoring",
    status_code=200,
    responses={code: {"model": ErrorOut} for code in (400, 404, 413)},
)
async def tunnel(request: Request, services: ServicesDep) -> Response:
    """Forward one browser envelope to the configured Sentry project."""
    configured = services.settings.browser_sentry_dsn
    if not configured:
        raise NotFoundError("browser monitoring is not configured")
    body = await _read_limited(request, services.settings.tunnel_max_bytes)
    try:
        same_project = _project(_envelope_dsn(body)) == _project(urlsplit(configured))
    except ValueError as exc:  # a port that is not a number
        raise BadRequestError("the envelope's DSN is not a URL") from exc
    if not same_project:
        raise BadRequestError("the envelope's DSN is not this server's browser DSN")
    import httpx  # noqa: PLC0415 - only with a browser DSN: 2 MB a server without one never needs

    try:
        answer = await services.http.post(
            ingest_url(configured),
            content=body,
            headers={"Content-Type": "application/x-sentry-envelope"},
        )
        if answer.status_code >= 400:
            log.warning("sentry rejected a browser envelope", status=answer.status_code)
    except httpx.HTTPError as exc:
        log.warning("forwarding a browser envelope failed", error=repr(exc))
    return Response(status_code=200)
