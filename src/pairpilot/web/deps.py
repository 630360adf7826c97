"""Request-scoped dependencies: the services, the caller, its address, the write rate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pairpilot.access.identity import Identity
from pairpilot.guardrails import WRITE_RATE
from pairpilot.observability.sentry import set_tag
from pairpilot.observability.tracing import tag

if TYPE_CHECKING:
    from pairpilot.web.services import Services

_bearer = HTTPBearer(auto_error=False, description="A Supabase-shaped JWT")


def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    """The verified identity behind ``Authorization: Bearer``; 401 otherwise."""
    token = credentials.credentials if credentials else None
    identity = await services(request).identities.authenticate(token)
    set_tag("user_id", identity.user_id)
    tag(user_id=identity.user_id)
    return identity


def client_address(request: Request) -> str:
    """The client's IP address (the rates per address count it).

    The socket's peer, or the client ``X-Forwarded-For`` names when the peer is a proxy listed
    in PAIRPILOT_FORWARDED_ALLOW_IPS (uvicorn puts it in the scope then).
    """
    return request.client.host if request.client else "unknown"


async def count_write(request: Request, identity: Annotated[Identity, Depends(caller)]) -> None:
    """Count one REST write of the caller (429 over PAIRPILOT_WRITE_RATE); see ``WriteRate``."""
    await services(request).throttle.hit(WRITE_RATE, identity.user_id)


def tag_room(room_id: str) -> None:
    """Tag this request's error reports with its room (a router dependency)."""
    set_tag("room_id", room_id)


Caller = Annotated[Identity, Depends(caller)]
ServicesDep = Annotated["Services", Depends(services)]
# Every REST route that changes something lists it: ``@router.post(…, dependencies=[WriteRate])``.
WriteRate = Depends(count_write)
