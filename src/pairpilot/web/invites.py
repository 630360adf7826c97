"""Invite links of a room: owners make, list and revoke them; ``POST /join`` redeems them."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request

from pairpilot.access.authorizer import check_room_id
from pairpilot.access.invites import InviteTokens
from pairpilot.storage.invites import Invite, RoomInvites
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.schemas import InviteCreatedOut, InviteIn, InviteOut

router = APIRouter(prefix="/api/rooms", tags=["invites"], dependencies=[Depends(tag_room)])
InviteId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="The invite id")]


def _invite_out(invite: Invite) -> InviteOut:
    return InviteOut(
        id=invite.id,
        role=invite.role,
        created_by=invite.created_by,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        revoked=invite.revoked_at is not None,
    )


@router.post("/{room_id}/invites", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def create_invite(
    room_id: RoomId, body: InviteIn, identity: Caller, services: ServicesDep, request: Request
) -> InviteCreatedOut:
    """Owners make an invite link granting ``editor`` or ``viewer`` (403 for anything more)."""
    check_room_id(room_id)
    now = services.directory.clock()
    issued = InviteTokens(services.identities).issue(room_id, body.role, now, body.expires_in_s)
    await RoomInvites(services.directory).create(identity, issued)
    url = f"{request.base_url}r/{quote(room_id)}?invite={issued.token}"
    return InviteCreatedOut(
        id=issued.id, token=issued.token, url=url, role=issued.role, expires_at=issued.expires_at
    )


@router.get("/{room_id}/invites", responses=ERRORS)
async def list_invites(room_id: RoomId, identity: Caller, services: ServicesDep) -> list[InviteOut]:
    """The room's invites that still work, newest first, without their tokens (owners)."""
    found = await RoomInvites(services.directory).live(check_room_id(room_id), identity)
    return [_invite_out(invite) for invite in found]


@router.delete("/{room_id}/invites/{invite_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def revoke_invite(
    room_id: RoomId, invite_id: InviteId, identity: Caller, services: ServicesDep
) -> InviteOut:
    """Owners revoke an invite: its link grants nothing from now on (members it made stay)."""
    invites = RoomInvites(services.directory)
    return _invite_out(await invites.revoke(check_room_id(room_id), identity, invite_id))
