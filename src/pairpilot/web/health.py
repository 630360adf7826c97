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
    """Each dependency's state: ``ok``, ``down`` or ``not_configured``; why not ready."""

    status: str
    checks: dict[str, str]
    reasons: list[str] = []


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 when the database (and Redis) answer, every task runs and nothing waits past its bound.

    503 otherwise, naming what is wrong in ``checks`` and ``reasons``.
    """
    checks: dict[str, str] = {}
    reasons: list[str] = []
    try:
        await services.store.ping()
        checks["database"] = "ok"
    except StorageError:
        checks["database"] = "down"
    if services.settings.redis_url:
        checks["redis"] = "ok" if await services.limiter.ping() else "down"
    else:
        checks["redis"] = "not_configured"
    down = services.supervisor.down()
    checks["tasks"] = "down" if down else "ok"
    reasons += [f"task_down:{task}" for task in down]
    if services.registry.backlogged():  # which rooms is not said: ids are links
        reasons.append("storage_backlog")
    if services.bus.backlogged():
        reasons.append("redis_backlog")
    checks["backlog"] = "full" if reasons[len(down) :] else "ok"
    ready = not reasons and "down" not in checks.values()
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks, reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus exposition of this process's series."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
