"""POST /api/ratelimit/run: asked by the client right before it starts a run."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pairpilot.access.authorizer import ROOM_ID_PATTERN
from pairpilot.web.deps import Caller, ServicesDep
from pairpilot.web.schemas import ErrorOut

router = APIRouter(prefix="/api/ratelimit", tags=["run"])


class RunIn(BaseModel):
    """The room the run is for."""

    roomId: str = Field(pattern=ROOM_ID_PATTERN)  # noqa: N815 - the contract's name


class RunDecisionOut(BaseModel):
    """The limiter's answer."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    degraded: bool = False


class LimitedOut(ErrorOut):
    """429: no run now."""

    allowed: bool = False
    limit: int
    remaining: int = 0
    reset_s: int


@router.post(
    "/run",
    response_model=RunDecisionOut,
    responses={429: {"model": LimitedOut}, **{c: {"model": ErrorOut} for c in (400, 401, 404)}},
)
async def may_run(
    body: RunIn, identity: Caller, services: ServicesDep
) -> RunDecisionOut | JSONResponse:
    """Count a run for (room, user): 3 per 60 s by default; members only; fails open."""
    await services.directory.membership(body.roomId, identity)
    decision = await services.limiter.check(body.roomId, identity.user_id)
    outcome = "degraded" if decision.degraded else "allowed" if decision.allowed else "limited"
    services.metrics.ratelimit_decisions.labels(outcome).inc()
    if decision.degraded:
        services.metrics.ratelimit_fail_open.inc()
    if not decision.allowed:
        retry = max(1, decision.reset_s)
        limited = LimitedOut(
            error="rate_limited",
            message=f"Run limit reached — try again in {retry} s",
            limit=decision.limit,
            reset_s=retry,
        )
        return JSONResponse(
            limited.model_dump(), status_code=429, headers={"Retry-After": str(retry)}
        )
    return RunDecisionOut(
        allowed=True,
        limit=decision.limit,
        remaining=decision.remaining,
        reset_s=decision.reset_s,
        degraded=decision.degraded,
    )
