"""Deleting a room: every row of it in one transaction, and its id retired by a tombstone.

A deleted id is never used again: joining it answers 410 and no statement re-creates it (on
PostgreSQL the rooms INSERT policy refuses a tombstoned id). Writers that bypass RLS (the
flusher's appends, compactions) call ``deleted_among`` first in their transaction. It waits for
a delete in progress (one lock, shared by writers, exclusive for a delete: deletes are rare, and
a flush takes one lock however many rooms it writes) and then names the deleted rooms with a
fresh snapshot. So a write in flight when a room is deleted either committed before the delete
began, and its rows are deleted with the rest, or it sees the tombstone and writes nothing.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.storage.schema import (
    room_comments,
    room_fences,
    room_members,
    room_snapshots,
    room_tombstones,
    room_updates,
    room_versions,
    rooms,
)

# pg_advisory_xact_lock's first key for deletions (the second is 0: one lock for every room).
# Migration 0006's pairpilot_deleted_among takes it shared with the same numbers (20548, 0).
DELETION_LOCK = 0x5044
# A room's rows besides ``rooms`` and ``room_members``, deleted first: on PostgreSQL the owner's
# right to delete them is read from the membership that the room's row cascades to.
CONTENT = (room_snapshots, room_updates, room_versions, room_fences, room_comments)


async def deleted_among(
    conn: AsyncConnection, room_ids: Collection[str], *, write_locked: bool = False
) -> set[str]:
    """The rooms of ``room_ids`` that are deleted, once no delete is in progress.

    Call it first in a writer's transaction: on SQLite it takes the database's write lock
    (unless ``write_locked``: the caller took it already), so the answer holds until commit.
    """
    if not room_ids:
        return set()
    if conn.dialect.name == "postgresql":
        rooms_array = sa.cast(list(room_ids), postgresql.ARRAY(sa.Text))
        found = await conn.execute(
            sa.select(sa.func.pairpilot_deleted_among(rooms_array, type_=sa.Text))
        )
        return set(found.scalars())
    if not write_locked:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    return set((await conn.execute(tombstoned_query(room_ids))).scalars())


def tombstoned_query(room_ids: Collection[str]) -> sa.Select[str]:
    """The rooms of ``room_ids`` that have a tombstone (SQLite's ``deleted_among``)."""
    return sa.select(room_tombstones.c.room_id).where(room_tombstones.c.room_id.in_(room_ids))


async def is_deleted(conn: AsyncConnection, room_id: str) -> bool:
    """Whether the room id is retired (readable by any caller: a SECURITY DEFINER helper)."""
    if conn.dialect.name == "postgresql":
        deleted = await conn.scalar(sa.select(sa.func.pairpilot_room_deleted(room_id)))
    else:
        deleted = await conn.scalar(
            sa.select(sa.exists().where(room_tombstones.c.room_id == room_id))
        )
    return bool(deleted)


async def lock_for_deletion(conn: AsyncConnection) -> None:
    """Wait for the writers in flight and hold new ones off until commit; call it first."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(DELETION_LOCK, 0)))
    else:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def erase_rows(conn: AsyncConnection, room_id: str) -> bool:
    """Delete every row of the room and insert its tombstone; whether its room row was there.

    Run under ``lock_for_deletion`` after the caller's right was checked (RLS checks it again
    on PostgreSQL): the content first, then the tombstone, then the room's row (its
    memberships cascade).
    """
    for table in CONTENT:
        await conn.execute(table.delete().where(table.c.room_id == room_id))
    await conn.execute(room_tombstones.insert().values(room_id=room_id))
    removed = await conn.execute(rooms.delete().where(rooms.c.id == room_id))
    await conn.execute(room_members.delete().where(room_members.c.room_id == room_id))
    return removed.rowcount == 1


async def room_rows(conn: AsyncConnection, room_id: str) -> dict[str, int]:
    """How many rows each table holds for the room (the tombstone included)."""
    counts = {
        "rooms": await _count(conn, rooms, rooms.c.id == room_id),
        "room_members": await _count(conn, room_members, room_members.c.room_id == room_id),
    }
    for table in (*CONTENT, room_tombstones):
        counts[table.name] = await _count(conn, table, table.c.room_id == room_id)
    return counts


async def _count(conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(table).where(where)) or 0)
