"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from pairpilot.errors import StorageError
from pairpilot.web.deps import ServicesDep

router = APIRouter(tags=["operations"])


class ReadyOut(BaseModel):
    """Each dependency's state: ``ok``, ``down`` or ``not_configured``."""

    status: str
    checks: dict[str, str]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 when the database (and Redis, when configured) answer; 503 naming what did not."""
    checks: dict[str, str] = {}
    try:
        await services.store.ping()
        checks["database"] = "ok"
    except StorageError:
        checks["database"] = "down"
    if services.settings.redis_url:
        checks["redis"] = "ok" if await services.limiter.ping() else "down"
    else:
        checks["redis"] = "not_configured"
    ready = "down" not in checks.values()
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of this process's series."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
