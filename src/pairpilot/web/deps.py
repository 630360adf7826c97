"""Request-scoped dependencies: the services and the verified caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pairpilot.access.identity import Identity
from pairpilot.observability.sentry import set_tag

if TYPE_CHECKING:
    from pairpilot.web.app import Services

_bearer = HTTPBearer(auto_error=False, description="A Supabase-shaped JWT")


def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    """The verified identity behind ``Authorization: Bearer``; 401 otherwise."""
    token = credentials.credentials if credentials else None
    identity = services(request).identities.verify(token)
    set_tag("user_id", identity.user_id)
    return identity


def tag_room(room_id: str) -> None:
    """Tag this request's error reports with its room (a router dependency)."""
    set_tag("room_id", room_id)


Caller = Annotated[Identity, Depends(caller)]
ServicesDep = Annotated["Services", Depends(services)]
