"""A room's webhook endpoints: owners register, list and remove them (README "Webhooks")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from pairpilot.access.authorizer import check_room_id
from pairpilot.access.identity import Identity
from pairpilot.access.policy import require_owner
from pairpilot.errors import ConflictError, NotFoundError
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.services import Services
from pairpilot.webhooks import Endpoint
from pairpilot.webhooks.addresses import MAX_URL_LENGTH, check_address

router = APIRouter(prefix="/api/rooms", tags=["webhooks"], dependencies=[Depends(tag_room)])
EndpointId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="The webhook id")]
EventType = Literal[
    "room.updated",
    "room.created",
    "room.deleted",
    "version.created",
    "member.joined",
    "member.left",
]


class WebhookIn(BaseModel):
    """A new endpoint: where, and which events (all when omitted)."""

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=6)


class WebhookOut(BaseModel):
    """An endpoint as its owners see it: whether it works, and why not."""

    id: str
    url: str
    events: list[str] | None
    created_by: str | None
    created_at: datetime
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    last_error: str | None
    last_success_at: datetime | None
    pending: int


class WebhookCreatedOut(WebhookOut):
    """A new endpoint, with the secret its receiver verifies signatures with (shown once)."""

    secret: str


class WebhookDeletedOut(BaseModel):
    """A removed endpoint."""

    id: str
    deleted: bool = True


def _out(endpoint: Endpoint) -> WebhookOut:
    return WebhookOut(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        created_by=endpoint.created_by,
        created_at=endpoint.created_at,
        enabled=endpoint.disabled_at is None,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
        last_error=endpoint.last_error,
        last_success_at=endpoint.last_success_at,
        pending=endpoint.pending,
    )


async def _require_owner(services: Services, room_id: str, identity: Identity) -> None:
    """404 for non-members (RLS hides the room), 403 for editors and viewers."""
    _, member = await services.directory.membership(check_room_id(room_id), identity)
    require_owner(member.role)


@router.post(
    "/{room_id}/webhooks", status_code=201, responses=WRITE_ERRORS, dependencies=[WriteRate]
)
async def add_webhook(
    room_id: RoomId, body: WebhookIn, identity: Caller, services: ServicesDep
) -> WebhookCreatedOut:
    """Owners register an endpoint for the room's events; its signing secret is shown only here."""
    await _require_owner(services, room_id, identity)
    settings = services.settings
    await check_address(
        body.url, allow_private=settings.webhook_allow_private, resolver=services.webhooks.resolver
    )
    webhooks = services.webhooks.outbox
    most = settings.webhooks_per_room
    made = await webhooks.add(room_id, body.url, list(body.events or []), identity.user_id, most)
    if made is None:
        raise ConflictError(f"A room has at most {most} webhooks: remove one first")
    endpoint_id, secret = made
    services.webhooks.endpoint_added()
    found = next(e for e in await webhooks.endpoints(room_id) if e.id == endpoint_id)
    return WebhookCreatedOut(**_out(found).model_dump(), secret=secret)


@router.get("/{room_id}/webhooks", responses=ERRORS)
async def list_webhooks(
    room_id: RoomId, identity: Caller, services: ServicesDep
) -> list[WebhookOut]:
    """The room's endpoints without their secrets, with why one was disabled (owners)."""
    await _require_owner(services, room_id, identity)
    return [_out(e) for e in await services.webhooks.outbox.endpoints(room_id)]


@router.delete("/{room_id}/webhooks/{webhook_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def remove_webhook(
    room_id: RoomId, webhook_id: EndpointId, identity: Caller, services: ServicesDep
) -> WebhookDeletedOut:
    """Owners remove an endpoint; what was queued for it is dropped."""
    await _require_owner(services, room_id, identity)
    if not await services.webhooks.outbox.remove(room_id, webhook_id):
        raise NotFoundError(f"the room has no webhook {webhook_id}")
    return WebhookDeletedOut(id=webhook_id)
