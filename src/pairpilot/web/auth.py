"""Anonymous sign-in and refresh (Supabase's shapes), for people with no account."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from pairpilot.guardrails import REFRESH_RATE, SIGNIN_RATE
from pairpilot.storage.tokens import Holder
from pairpilot.web.deps import ServicesDep, client_address
from pairpilot.web.schemas import AnonymousIn, ErrorOut, RefreshIn, TokenOut, UserOut
from pairpilot.web.services import Services

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def _answer(services: Services, holder: Holder, refresh_token: str | None = None) -> TokenOut:
    token, identity, ttl = services.identities.issue(holder.name, holder.user_id)
    if refresh_token is None:
        refresh_token = await services.refresh_tokens.issue(holder)
    return TokenOut(
        access_token=token,
        expires_in=ttl,
        expires_at=int(time.time()) + ttl,
        refresh_token=refresh_token,
        user=UserOut(id=identity.user_id, name=identity.name),
    )


@router.post("/anonymous", responses={c: {"model": ErrorOut} for c in (400, 429, 503)})
async def sign_in_anonymously(
    body: AnonymousIn, request: Request, services: ServicesDep
) -> TokenOut:
    """Create an anonymous user; its bearer token and a refresh token (PAIRPILOT_SIGNIN_RATE)."""
    await services.throttle.hit(SIGNIN_RATE, client_address(request))
    holder = Holder(str(uuid.uuid4()), body.name.strip() or "anonymous")
    return await _answer(services, holder)


@router.post(
    "/token",
    responses={c: {"model": ErrorOut} for c in (400, 401, 429, 503)},
)
async def refresh(
    body: RefreshIn,
    request: Request,
    services: ServicesDep,
    grant_type: Annotated[Literal["refresh_token"], Query()],
) -> TokenOut:
    """Exchange a refresh token (used once) for a new token of the same user and the next one.

    Counted per client address (PAIRPILOT_REFRESH_RATE) before the token is looked at.
    """
    del grant_type  # the only grant; anything else is a 400 from the query's schema
    await services.throttle.hit(REFRESH_RATE, client_address(request))
    holder, following = await services.refresh_tokens.rotate(body.refresh_token)
    return await _answer(services, holder, following)
