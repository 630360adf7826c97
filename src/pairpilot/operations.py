"""`pairpilot rooms list | show | delete | export`: an operator's view of the stored rooms.

The commands run as the operator on ``DATABASE_URL`` (the table owner: RLS does not apply).
``delete`` is the API's delete (the same statements and tombstone); with ``REDIS_URL`` set it
also appends the room's ERASED entry, so running servers close its sockets (4410) and drop it,
and its Redis keys go. Without Redis a running server cannot be told: its sockets stay open
until they reconnect (then 4410), and nothing of the room is written again (the writers'
guard). ``export`` writes the same zip as ``GET /api/rooms/{id}/export.zip``, from storage
(edits not yet flushed, at most ``PAIRPILOT_FLUSH_MS`` old, are not in it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pairpilot.errors import RoomDeletedError
from pairpilot.settings import Settings
from pairpilot.storage.deletion import erase_rows, is_deleted, lock_for_deletion
from pairpilot.storage.schema import (
    room_members,
    room_snapshots,
    room_updates,
    room_versions,
    rooms,
)
from pairpilot.storage.schema_version import at_head
from pairpilot.storage.sql import SqlRoomStore, create_engine
from pairpilot.storage.store import utc


@dataclass
class RoomStats:
    """One stored room as the operator sees it."""

    id: str
    bytes: int = 0  # the snapshot's and the log's encoded updates
    log_rows: int = 0
    versions: int = 0
    members: int = 0
    last_edit: datetime | None = None

    def edited(self, moment: datetime | None) -> None:
        """Keep the latest edit time."""
        if moment is not None and (self.last_edit is None or utc(moment) > self.last_edit):
            self.last_edit = utc(moment)


async def room_stats(conn: AsyncConnection, room_id: str | None = None) -> list[RoomStats]:
    """Every stored room (or one), biggest first."""
    found: dict[str, RoomStats] = {}

    def stats(room: str) -> RoomStats:
        return found.setdefault(room, RoomStats(room))

    def only(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        return column == room_id if room_id is not None else sa.true()

    for row in await conn.execute(sa.select(rooms.c.id).where(only(rooms.c.id))):
        stats(row.id)
    snapshot = room_snapshots.c.snapshot_b64
    padding = sa.case((snapshot.like("%=="), 2), (snapshot.like("%="), 1), else_=0)
    for row in await conn.execute(
        sa.select(
            room_snapshots.c.room_id,
            (sa.func.length(snapshot) * 3 / 4 - padding).label("size"),
            room_snapshots.c.updated_at,
        ).where(only(room_snapshots.c.room_id))
    ):
        room = stats(row.room_id)
        room.bytes += int(row.size or 0)
        room.edited(row.updated_at)
    for row in await conn.execute(
        sa.select(
            room_updates.c.room_id,
            sa.func.count().label("rows"),
            sa.func.sum(sa.func.length(room_updates.c.update)).label("size"),
            sa.func.max(room_updates.c.created_at).label("last"),
        )
        .where(only(room_updates.c.room_id))
        .group_by(room_updates.c.room_id)
    ):
        room = stats(row.room_id)
        room.log_rows, room.bytes = int(row.rows), room.bytes + int(row.size or 0)
        room.edited(row.last)
    for table, field in ((room_versions, "versions"), (room_members, "members")):
        for row in await conn.execute(
            sa.select(table.c.room_id, sa.func.count().label("n"))
            .where(only(table.c.room_id))
            .group_by(table.c.room_id)
        ):
            setattr(stats(row.room_id), field, int(row.n))
    return sorted(found.values(), key=lambda room: (-room.bytes, room.id))


def table(stats: list[RoomStats]) -> str:
    """A plain aligned table of rooms."""
    header = ("ROOM", "BYTES", "LOG ROWS", "VERSIONS", "MEMBERS", "LAST EDIT")
    rows = [
        (
            room.id,
            str(room.bytes),
            str(room.log_rows),
            str(room.versions),
            str(room.members),
            room.last_edit.strftime("%Y-%m-%d %H:%M:%S") if room.last_edit else "-",
        )
        for room in stats
    ]
    widths = [max(len(line[column]) for line in (header, *rows)) for column in range(6)]
    lines = []
    for line in (header, *rows):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


async def _show(engine: AsyncEngine, room_id: str) -> int:
    async with engine.connect() as conn:
        if await is_deleted(conn, room_id):
            print(f"room {room_id}: deleted")  # noqa: T201 - the command's output
            return 1
        found = await room_stats(conn, room_id)
        members = (
            await conn.execute(
                sa.select(room_members.c.user_id, room_members.c.role, room_members.c.name)
                .where(room_members.c.room_id == room_id)
                .order_by(room_members.c.created_at)
            )
        ).all()
    if not found:
        print(f"pairpilot: no room {room_id}", file=sys.stderr)  # noqa: T201
        return 1
    print(table(found))  # noqa: T201
    for member in members:
        print(f"  {member.role:<7} {member.user_id}  {member.name or ''}".rstrip())  # noqa: T201
    return 0


async def _delete(settings: Settings, engine: AsyncEngine, room_id: str) -> int:
    async with engine.begin() as conn:
        await lock_for_deletion(conn)
        if await is_deleted(conn, room_id):
            print(f"pairpilot: room {room_id} was deleted already", file=sys.stderr)  # noqa: T201
            return 1
        if not await room_stats(conn, room_id):
            print(f"pairpilot: no room {room_id}", file=sys.stderr)  # noqa: T201
            return 1
        await erase_rows(conn, room_id)
    told = ""
    if settings.redis_url:
        from redis.asyncio import Redis  # noqa: PLC0415 - only with Redis

        from pairpilot.bus.streams import erase_room  # noqa: PLC0415

        # A hung Redis must not hang the command: it fails with a timeout instead.
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0)
        try:
            await erase_room(redis, room_id)
        finally:
            await redis.aclose()
        told = "; running servers told through Redis"
    print(f"deleted room {room_id}{told}")  # noqa: T201
    return 0


async def _export(engine: AsyncEngine, room_id: str) -> int:
    from pairpilot.sync.transfer import export_archive  # noqa: PLC0415 - the API's own zip

    store = SqlRoomStore(engine)
    try:
        stored = await store.load(room_id)
    except RoomDeletedError:
        print(f"pairpilot: room {room_id} was deleted", file=sys.stderr)  # noqa: T201
        return 1
    async with engine.connect() as conn:
        if not await room_stats(conn, room_id):
            print(f"pairpilot: no room {room_id}", file=sys.stderr)  # noqa: T201
            return 1
    sys.stdout.buffer.write(export_archive(stored.merged()))
    sys.stdout.buffer.flush()
    return 0


async def run(settings: Settings, action: str, room_id: str | None) -> int:
    """Run one ``rooms`` command; its exit status."""
    engine = create_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite" and not await at_head(engine):
            from pairpilot.storage.migrate import migrate  # noqa: PLC0415 - Alembic is slow

            await migrate(engine)  # the embedded database, as `pairpilot serve` would
        if action == "list":
            async with engine.connect() as conn:
                print(table(await room_stats(conn)))  # noqa: T201
            return 0
        assert room_id is not None  # noqa: S101 - argparse requires it for the others
        if action == "show":
            return await _show(engine, room_id)
        if action == "delete":
            return await _delete(settings, engine, room_id)
        return await _export(engine, room_id)
    finally:
        await engine.dispose()
