"""Deleting data: an owner deletes a room, a user deletes themself (issue #21).

A deleted room loses every row in every table, its Redis keys and its live sockets (4410 on
every process), and its id is retired: joining it again answers 410, so a client that kept
the document cannot bring it back by reconnecting.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from pairpilot.access.authorizer import check_room_id
from pairpilot.storage.comments import erase_authored
from pairpilot.web.comments import tell_deleted
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId

router = APIRouter(tags=["deletion"])
DELETE_ERRORS = {**WRITE_ERRORS, 410: ERRORS[404]}


class RoomDeletedOut(BaseModel):
    """A deleted room."""

    room_id: str
    deleted: bool = True


class UserDeletedOut(BaseModel):
    """What deleting one's data did: the rooms deleted (owned alone) and the rooms left."""

    deleted_rooms: list[str]
    left_rooms: list[str]


@router.delete(
    "/api/rooms/{room_id}",
    responses=DELETE_ERRORS,
    dependencies=[Depends(tag_room), WriteRate],
)
async def delete_room(room_id: RoomId, identity: Caller, services: ServicesDep) -> RoomDeletedOut:
    """Owners delete the room: every row, its live sockets (4410), and its id for good."""
    await services.directory.delete_room(check_room_id(room_id), identity)
    await services.registry.delete(room_id)
    services.webhooks.forget(room_id)
    return RoomDeletedOut(room_id=room_id)


@router.delete("/api/me", responses=DELETE_ERRORS, dependencies=[WriteRate])
async def delete_me(identity: Caller, services: ServicesDep) -> UserDeletedOut:
    """Delete the caller's data: comments, memberships, refresh tokens, the rooms they alone own.

    Rooms with another owner stay; the caller's sockets there close with 4403.
    """
    # Their comments first, in every room and whatever their role there: they are their data.
    erased = await erase_authored(services.directory, identity)
    deleted, left = await services.directory.delete_user(identity)
    for gone in erased:
        if gone.room_id not in deleted:
            tell_deleted(services, gone)
    for room_id in deleted:
        await services.registry.delete(room_id)
        services.webhooks.forget(room_id)
    for room_id in left:
        services.access.removed(room_id, identity.user_id, "you deleted your data")
    await services.refresh_tokens.forget_user(identity.user_id)
    # The webhooks they made stay their rooms' (an owner's, not a person's), unattributed.
    await services.webhooks.outbox.forget_creator(identity.user_id)
    return UserDeletedOut(deleted_rooms=deleted, left_rooms=left)
