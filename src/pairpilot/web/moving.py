"""Moving a room to a new id: owners move a room whose id could be guessed (issue #22).

The room keeps its content, members (with their roles) and history under a new random id;
its invites are dropped (they name the old id). Its live sockets close with 4301, the new id
as the reason, on every process; the old id answers 410 ``room_moved`` with ``new_room_id``
to members of the moved room and 404 to anyone else.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from pairpilot.access.authorizer import check_room_id
from pairpilot.storage.moving import new_room_id
from pairpilot.web.deletion import DELETE_ERRORS
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.rooms import RoomId

router = APIRouter(tags=["moving"])


class RoomMovedOut(BaseModel):
    """A moved room: its old id and the new one."""

    room_id: str
    new_room_id: str


@router.post(
    "/api/rooms/{room_id}/move",
    responses=DELETE_ERRORS,
    dependencies=[Depends(tag_room), WriteRate],
)
async def move_room(room_id: RoomId, identity: Caller, services: ServicesDep) -> RoomMovedOut:
    """Owners move the room to a new random id (403 others, 404 non-members, 410 gone)."""
    new_id = new_room_id(check_room_id(room_id))
    await services.directory.move_room(room_id, identity, new_id)
    await services.registry.move(room_id, new_id)
    return RoomMovedOut(room_id=room_id, new_room_id=new_id)
