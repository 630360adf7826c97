"""Anonymous sign-in (Supabase's shape), for people with no account."""

from __future__ import annotations

from fastapi import APIRouter

from pairpilot.web.deps import ServicesDep
from pairpilot.web.schemas import AnonymousIn, ErrorOut, TokenOut, UserOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/anonymous", responses={400: {"model": ErrorOut}})
async def sign_in_anonymously(body: AnonymousIn, services: ServicesDep) -> TokenOut:
    """Create an anonymous user and return its bearer token."""
    token, identity, ttl = services.identities.issue(body.name.strip() or "anonymous")
    return TokenOut(
        access_token=token, expires_in=ttl, user=UserOut(id=identity.user_id, name=identity.name)
    )
