"""Moving a room to a new id: every row re-keyed in one transaction, the old id retired.

An owner moves a room whose id could be guessed (issue #22): its row, memberships with their
roles, snapshot, update log, versions, comments and webhook endpoints (with their queued
deliveries) go to a new random id; its invites (links
that name the old id) and its persister fence are dropped. The old id gets a tombstone whose
``moved_to`` names the new id, so it counts as gone for every writer (``deletion.deleted_among``
answers it) and is never created again, and members of the moved room who open the old id are
told where it went. The move takes the deletion lock, so a write in flight either committed
before it (and its rows moved with the rest) or sees the tombstone and writes nothing.

On PostgreSQL one SECURITY DEFINER function (migration 0008) does it all inside the caller's
transaction, after checking as the caller that they own the room: the other members' rows are
not the caller's to change under RLS.
"""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.errors import NotFoundError, RoomDeletedError, RoomMovedError
from pairpilot.storage.schema import (
    room_comments,
    room_fences,
    room_invites,
    room_members,
    room_snapshots,
    room_tombstones,
    room_updates,
    room_versions,
    rooms,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
    webhook_pending_updates,
)

# Random bytes of a new id: 128 bits, as the start page's ids (client/src/names.ts).
NEW_ID_RANDOM_BYTES = 16
# The readable words kept from the old id (``brave-otter-``), as the page's ids start.
_WORDS = re.compile(r"^[a-z]{1,16}-[a-z]{1,16}-")
_DEFAULT_WORDS = "moved-room-"
# Re-keyed from the old id to the new one, after the room's row exists under the new id.
# What migration 0008's pairpilot_room_retired answers for a move the caller may not learn of.
HIDDEN_MOVE = "-"
# The room's webhook endpoints go with it, with their queued deliveries, its events not yet
# fanned out and its pending room.updated (migration 0011 does the same on PostgreSQL).
REKEYED = (
    room_members,
    room_snapshots,
    room_updates,
    room_versions,
    room_comments,
    webhook_endpoints,
    webhook_deliveries,
    webhook_events,
    webhook_pending_updates,
)


def new_room_id(old_id: str) -> str:
    """A fresh id with 128 random bits, keeping the old id's readable words if it had any."""
    words = _WORDS.match(old_id)
    prefix = words.group(0) if words else _DEFAULT_WORDS
    return prefix + secrets.token_urlsafe(NEW_ID_RANDOM_BYTES)


async def move_rows(conn: AsyncConnection, old_id: str, new_id: str) -> None:
    """Re-key every row of ``old_id`` to ``new_id`` and retire ``old_id``.

    Run in the caller's transaction after their ownership was checked under
    ``deletion.lock_for_deletion``; on PostgreSQL the function checks it again as the caller
    (and takes the lock itself).
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pairpilot_move_room(old_id, new_id)))
        return
    copy = sa.select(
        sa.literal(new_id),
        rooms.c.owner_id,
        rooms.c.default_role,
        rooms.c.link_access,
        rooms.c.created_at,
    ).where(rooms.c.id == old_id)
    await conn.execute(
        rooms.insert().from_select(
            ["id", "owner_id", "default_role", "link_access", "created_at"], copy
        )
    )
    for table in REKEYED:
        await conn.execute(table.update().where(table.c.room_id == old_id).values(room_id=new_id))
    for table in (room_fences, room_invites):
        await conn.execute(table.delete().where(table.c.room_id == old_id))
    await conn.execute(
        room_tombstones.update().where(room_tombstones.c.moved_to == old_id).values(moved_to=new_id)
    )
    await conn.execute(room_tombstones.insert().values(room_id=old_id, moved_to=new_id))
    await conn.execute(rooms.delete().where(rooms.c.id == old_id))


async def retired_error(
    conn: AsyncConnection, room_id: str, user_id: str
) -> RoomDeletedError | NotFoundError | None:
    """Why a retired id is gone, as the caller may learn it; None when it is not retired.

    A moved room: RoomMovedError (with the new id) for a member of the room it went to,
    NotFoundError for anyone else (as for an id never used). A deleted room: RoomDeletedError.
    """
    if conn.dialect.name == "postgresql":
        retired = await conn.scalar(
            sa.select(sa.func.pairpilot_room_retired(room_id, type_=sa.String))
        )
        if retired is None:
            return None
        moved_to = retired or None
        hidden = retired == HIDDEN_MOVE
    else:
        row = (
            await conn.execute(
                sa.select(room_tombstones.c.moved_to).where(room_tombstones.c.room_id == room_id)
            )
        ).first()
        if row is None:
            return None
        moved_to = row.moved_to
        hidden = moved_to is not None and not await _member_of(conn, moved_to, user_id)
    if hidden:
        return NotFoundError(f"room {room_id} not found")
    if moved_to is not None:
        return RoomMovedError(room_id, moved_to)
    return RoomDeletedError(f"room {room_id} was deleted")


async def _member_of(conn: AsyncConnection, room_id: str, user_id: str) -> bool:
    found = await conn.scalar(
        sa.select(
            sa.exists().where(room_members.c.room_id == room_id, room_members.c.user_id == user_id)
        )
    )
    return bool(found)
