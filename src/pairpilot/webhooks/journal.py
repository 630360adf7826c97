"""Webhook events, stored in the transaction of the change that causes them (the outbox).

A join, a member leaving, a deleted room and a version each insert their event into
``webhook_events`` inside the transaction that makes the change (``RoomDirectory`` and the
store's checkpoints call this journal with their connection): once the change is acknowledged
its event is stored, and a change rolled back has none. The delivery task then ``fan_out``s
each event to the endpoints that want it (``webhook_deliveries``) and deletes it, in one
transaction. On PostgreSQL a user's transaction runs as ``authenticated`` under RLS, and that
role has no right on the webhook tables (a signed-in user, through Supabase's API for one, must
not forge an event the server then signs): the insert alone runs as the server's own role,
switched to for that statement and back (``SET LOCAL ROLE NONE``; the session user may).

``room.updated`` is debounced in memory (``RoomUpdates``). The flush that opens a room's window
stores the room's ``webhook_pending_updates`` row in its own transaction (``SqlRoomStore.append``),
and the end of the window turns the row into the event in one transaction (``announce``). A
process killed during a window leaves its row; once the window is long over
(``orphan_after_s``), whichever process's delivery task deletes the row first announces it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pairpilot.errors import StorageError
from pairpilot.storage.outbox import open_update_windows
from pairpilot.storage.schema import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
    webhook_pending_updates,
)
from pairpilot.storage.store import utc
from pairpilot.storage.versions import utc_now
from pairpilot.webhooks.events import (
    ROOM_DELETED,
    Event,
    member_joined,
    member_left,
    room_created,
    room_deleted,
    room_updated,
    version_created,
)
from pairpilot.webhooks.outbox import ALL_EVENTS, ROOM_DELETED_REASON

if TYPE_CHECKING:
    from pairpilot.settings import Settings

FAN_OUT_BATCH = 100  # events fanned out per transaction
# Beyond twice the debounce's longest wait: how long a pending row waits for its own process
# before any process announces it (its process is taken for dead).
ORPHAN_GRACE_S = 5.0


def orphan_after_s(settings: Settings) -> float:
    """How old a pending row's window is when any process may announce it."""
    return 2 * settings.webhook_debounce_max_s + ORPHAN_GRACE_S


@asynccontextmanager
async def _as_server(conn: AsyncConnection) -> AsyncIterator[None]:
    """Run the block's statements as the server's own role (PostgreSQL), then switch back."""
    if conn.dialect.name != "postgresql":
        yield
        return
    role = await conn.scalar(sa.text("SELECT current_setting('role')"))
    switched = role is not None and role != "none"
    if switched:
        await conn.execute(sa.text("SELECT set_config('role', 'none', true)"))
    yield
    if switched:
        await conn.execute(sa.text("SELECT set_config('role', :role, true)"), {"role": role})


async def _insert(conn: AsyncConnection, events: Sequence[Event]) -> None:
    await conn.execute(webhook_events.insert(), _rows(events))


def _rows(events: Sequence[Event]) -> list[dict[str, object]]:
    return [
        {
            "id": event.id,
            "type": event.type,
            "room_id": event.room_id,
            "payload": event.payload(),
            "created_at": event.at,
        }
        for event in events
    ]


class EventJournal:
    """Writes events into the changes' transactions; fans them out on its own connection."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        orphan_after_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self.orphan_after = timedelta(seconds=orphan_after_s)
        self.clock = clock
        self.on_committed: Callable[[], None] | None = None  # the delivery task's wake-up

    # RoomChanges: in the change's own transaction

    async def joined(self, conn: AsyncConnection, room_id: str, user_id: str, role: str) -> None:
        """``member.joined``; ``room.created`` first for an owner's (a join that created it)."""
        events = [member_joined(room_id, user_id, role)]
        if role == "owner":
            events.insert(0, room_created(room_id, user_id))
        await self.record(conn, events)

    async def left(self, conn: AsyncConnection, room_id: str, user_id: str) -> None:
        """``member.left``."""
        await self.record(conn, [member_left(room_id, user_id)])

    async def deleted(self, conn: AsyncConnection, room_id: str, by: str) -> None:
        """``room.deleted``, the room's last event: its pending ``room.updated`` goes."""
        pending = webhook_pending_updates
        async with _as_server(conn):
            await conn.execute(pending.delete().where(pending.c.room_id == room_id))
            await _insert(conn, [room_deleted(room_id, by)])

    async def version_made(
        self,
        conn: AsyncConnection,
        room_id: str,
        version_id: int,
        kind: str,
        author_id: str | None,
    ) -> None:
        """``version.created``."""
        await self.record(conn, [version_created(room_id, version_id, kind, author_id)])

    def committed(self) -> None:
        """The events' transaction committed: wake the delivery task."""
        if self.on_committed is not None:
            self.on_committed()

    async def record(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """Insert ``events`` in ``conn``'s transaction (as the server's role on PostgreSQL)."""
        async with _as_server(conn):
            await _insert(conn, events)

    # the delivery task's side, each in a transaction of its own

    async def fan_out(self) -> int:
        """Queue stored events for every endpoint that wants them and delete them; how many.

        Taken in order, a batch at a time, locked (SKIP LOCKED on PostgreSQL, the write lock
        on SQLite): two processes never fan out one event.
        """
        table = webhook_events
        query = sa.select(table).order_by(table.c.seq).limit(FAN_OUT_BATCH)
        try:
            async with self._engine.connect() as conn:
                if not await conn.scalar(sa.select(sa.exists().select_from(table))):
                    return 0
            async with self._engine.begin() as conn:
                if self._postgres:
                    query = query.with_for_update(skip_locked=True)
                else:
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                rows = (await conn.execute(query)).mappings().all()
                for row in rows:
                    await self._queue(conn, row)
                if rows:
                    await conn.execute(
                        table.delete().where(table.c.seq.in_([row["seq"] for row in rows]))
                    )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("queueing webhook events failed") from exc
        return len(rows)

    async def _queue(self, conn: AsyncConnection, event: sa.RowMapping) -> None:
        """One row per enabled endpoint that wants ``event``; a deleted room's then retire."""
        table, queue = webhook_endpoints, webhook_deliveries
        at = sa.literal(utc(event["created_at"]), sa.DateTime(timezone=True))
        now = sa.literal(self.clock(), sa.DateTime(timezone=True))
        wanted = sa.select(
            table.c.id,
            sa.literal(event["id"]),
            sa.literal(event["type"]),
            sa.literal(event["room_id"]),
            sa.literal(event["payload"]),
            now,
            now,
        ).where(
            table.c.disabled_at.is_(None),
            # A room's endpoint hears what happened after it was made, the operator's everything.
            sa.or_(
                table.c.room_id.is_(None),
                sa.and_(table.c.room_id == event["room_id"], table.c.created_at <= at),
            ),
            sa.or_(table.c.events == ALL_EVENTS, table.c.events.like(f"%,{event['type']},%")),
        )
        columns = [
            "endpoint_id",
            "event_id",
            "event_type",
            "room_id",
            "payload",
            "created_at",
            "next_attempt_at",
        ]
        await conn.execute(queue.insert().from_select(columns, wanted))
        if event["type"] == ROOM_DELETED:  # its endpoints take no new event, and go once sent
            await conn.execute(
                table.update()
                .where(table.c.room_id == event["room_id"])
                .values(disabled_at=self.clock(), disabled_reason=ROOM_DELETED_REASON)
            )

    async def open_windows(self, room_ids: Sequence[str]) -> None:
        """Store pending rows for windows that opened without one (see Webhooks.written)."""
        try:
            async with self._engine.begin() as conn:
                await open_update_windows(conn, room_ids, self.clock())
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("storing pending room.updated rows failed") from exc

    async def announce(self, ended: Sequence[tuple[str, bool]]) -> None:
        """Windows ended: each room's pending row becomes its ``room.updated``, atomically.

        A recorded window whose row is gone was announced already (by a process that took it
        for an orphan); one never recorded is announced all the same, and leaves the row (if
        a newer window stored one meanwhile) to that window.
        """
        pending = webhook_pending_updates
        events: list[Event] = []
        try:
            async with self._engine.begin() as conn:
                for room_id, recorded in ended:
                    if recorded:
                        gone = await conn.execute(
                            pending.delete().where(pending.c.room_id == room_id)
                        )
                        if gone.rowcount != 1:
                            continue
                    events.append(room_updated(room_id))
                if events:
                    await self.record(conn, events)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("announcing room.updated failed") from exc

    async def announce_orphans(self) -> datetime | None:
        """Announce pending rows whose window is long over; when the next one will be."""
        pending = webhook_pending_updates
        cutoff = self.clock() - self.orphan_after
        oldest_query = sa.select(sa.func.min(pending.c.since))
        try:
            async with self._engine.connect() as conn:
                oldest = await conn.scalar(oldest_query)
            if oldest is not None and utc(oldest) < cutoff:
                # The DELETE first: it takes the write lock (SQLite) or the rows (PostgreSQL),
                # so of processes sweeping at once, each row is announced by one.
                async with self._engine.begin() as conn:
                    orphans = pending.delete().where(pending.c.since < cutoff)
                    gone = await conn.execute(orphans.returning(pending.c.room_id))
                    rooms = sorted(gone.scalars())
                    if rooms:
                        await self.record(conn, [room_updated(room_id) for room_id in rooms])
                    oldest = await conn.scalar(oldest_query)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("announcing orphaned room.updated failed") from exc
        return None if oldest is None else utc(oldest) + self.orphan_after
