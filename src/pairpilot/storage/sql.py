"""RoomStore on SQLAlchemy Core: one set of portable queries for SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pairpilot.errors import RoomDeletedError, StorageError
from pairpilot.storage.b64 import b64decode, b64encode
from pairpilot.storage.deletion import deleted_among, is_deleted
from pairpilot.storage.merging import Merger, encoded_length
from pairpilot.storage.outbox import open_update_windows
from pairpilot.storage.retention import Retention
from pairpilot.storage.schema import room_updates
from pairpilot.storage.store import StoredRoom
from pairpilot.storage.stored_reads import (
    Folded,
    compact_sqlite_room,
    folded_rows_delete,
    log_query,
    logged_count_query,
    merge_sqlite_room,
    nothing_to_fold,
    on_sqlite_room,
    parts_of,
    snapshot_query,
    snapshot_upsert,
    stored_room,
)
from pairpilot.storage.versions import (
    VersionKind,
    insert_version,
    latest_checkpoint_at,
    thin_checkpoints,
    utc_now,
)
from pairpilot.typing import RoomChanges

T = TypeVar("T")


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets its directory, WAL and a busy timeout."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    database = sa.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # The most recently used connection first: SQLite drops a connection's page cache when
    # another connection wrote since its last use, so rotating through the pool (the default)
    # re-read the pages every flush touches (~100 reads per flush at K100; bench/README.md).
    # No statement cache (sqlite3's, per connection): a cached statement keeps the values last
    # bound to it, so every pooled connection held the last snapshot or update it wrote, ~1 MB
    # a connection with 1 MB documents (bench/README.md, "Memory per live room").
    engine = create_async_engine(url, pool_use_lifo=True, connect_args={"cached_statements": 0})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API has no type
        cursor = dbapi_connection.cursor()
        # Small pages: a flush appends a ~30-byte keystroke row, and WAL writes whole pages, so
        # 1 KiB pages cut the bytes written per edit about fourfold (only for a new database).
        cursor.execute("PRAGMA page_size=1024")
        # WAL + NORMAL survives a killed process (not a power cut) and keeps commits cheap.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A write waits up to 30 s for the write lock before it fails (503): a burst of room
        # creations queues on it (each holds it for its join), and 5 s was too short for the
        # soak's 16 concurrent joins on a slow machine (test_soak: "database is locked").
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # 512 KiB of page cache per pooled connection instead of 2 MiB: flushes touch ~100
        # pages, and the big rows of 1 MB documents filled every connection's 2 MiB, ~16 MB
        # a process (bench/README.md, "Memory per live room").
        cursor.execute("PRAGMA cache_size=-512")
        cursor.close()

    return engine


class SqlRoomStore:
    """RoomStore over an async SQLAlchemy engine; every failure surfaces as StorageError."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utc_now,
        retention: Retention | None = None,
        merger: Merger | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.retention = retention or Retention()
        self.merger = merger or Merger()
        # Told of each automatic checkpoint in its transaction (webhooks' version.created).
        self.changes: RoomChanges | None = None

    async def load(self, room_id: str) -> StoredRoom:
        """Read the snapshot, the log after it and when the room was last versioned.

        RoomDeletedError for a deleted room: it is never loaded again.
        """
        try:
            async with self.engine.connect() as conn:
                if await is_deleted(conn, room_id):
                    raise RoomDeletedError(f"room {room_id} was deleted")
                stored = await read_stored_room(conn, room_id)
                versioned_at = await latest_checkpoint_at(conn, room_id)
                return dataclasses.replace(stored, versioned_at=versioned_at)
        except (SQLAlchemyError, OSError) as exc:  # a refused connection is an OSError
            raise StorageError(f"loading room {room_id} failed") from exc

    async def measure(self, room_id: str, size_hint: int = 0) -> int:
        """The stored document's encoded length, encoded in the merge worker when it is big."""
        return await self.on_stored(room_id, encoded_length, size_hint)

    async def on_stored(
        self, room_id: str, job: Callable[[list[bytes]], T], size_hint: int = 0
    ) -> T:
        """``job(parts)`` of the stored room (its snapshot and log), in the worker when big.

        On SQLite the worker reads the rows too when ``size_hint`` says the room is big.
        """
        try:
            if (path := self._worker_reads(size_hint)) is not None:
                return await self.merger.run(on_sqlite_room, path, room_id, job)
            async with self.engine.connect() as conn:
                stored = await read_stored_room(conn, room_id)
        except (SQLAlchemyError, OSError) as exc:  # a refused connection is an OSError
            raise StorageError(f"reading room {room_id} failed") from exc
        parts = parts_of(stored)
        return await self.merger.run_sized(sum(map(len, parts)), job, parts)

    async def append(
        self,
        batch: Sequence[tuple[str, bytes]],
        fences: Mapping[str, int] | None = None,
        *,
        windows: Collection[str] = (),
    ) -> set[str]:
        """Append log rows in one transaction; the rooms whose fence was refused, or deleted.

        A room in ``fences`` is written only if its fence is at least the newest one the
        database has taken for it (a replaced persister's rows are left out). A deleted room
        is never written (``deletion.deleted_among``). The rooms in ``windows`` (written
        ones) open a ``room.updated`` debounce window: their pending row is written too.
        """
        if not batch:
            return set()
        refused: set[str] = set()
        try:
            async with self.engine.begin() as conn:
                # Deleted rooms are left out and named with the refused ones (never written).
                deleted = await deleted_among(conn, {room_id for room_id, _ in batch})
                if fences:
                    live = {room: fence for room, fence in fences.items() if room not in deleted}
                    refused = await _take_fences(conn, live) if live else set()
                refused |= deleted
                rows = [(room_id, update) for room_id, update in batch if room_id not in refused]
                if rows:
                    # The compiled statement and plain tuples, straight to the driver's
                    # executemany: this runs every flush, and SQLAlchemy's per-call statement
                    # handling was half of the flusher's time on the event loop (bench/README).
                    await conn.exec_driver_sql(_insert_updates_sql(conn.dialect), rows)
                if windows:
                    opened = [room_id for room_id in windows if room_id not in refused]
                    await open_update_windows(conn, opened, self.clock())
        except (SQLAlchemyError, OSError) as exc:  # a refused connection is an OSError
            raise StorageError("appending updates failed") from exc
        return refused

    async def compact(self, room_id: str, *, checkpoint: bool = False, size_hint: int = 0) -> int:
        """Fold the log into the snapshot row and delete the folded rows, atomically.

        With ``checkpoint`` the result is also stored as an automatic version (in the same
        transaction) and the room's automatic versions are thinned.

        The merge runs between two short database visits, off the event loop when it is big
        (``Merger``), and holds no lock: appends go on meanwhile (on SQLite a held write lock
        would stall them). The write then takes the room's compaction lock and goes ahead only
        if every row it folded is still in the log. Two compactions that read different logs
        would otherwise let the older merge overwrite the newer snapshot after the newer one
        deleted the rows only it had folded in (tests/integration/test_store.py); a compaction
        that finds its rows gone reads again.

        A room of at least ``size_hint`` bytes (its snapshot and log as the caller knows them)
        big enough for the worker is read by the worker too, on SQLite (``stored_reads``), and
        without ``checkpoint`` written by it as well (``stored_reads.compact_sqlite_room``).
        """
        path = self._worker_reads(size_hint)
        try:
            for _ in range(COMPACTION_ATTEMPTS):
                if path is not None and not checkpoint:
                    length, over = await self.merger.run(compact_sqlite_room, path, room_id)
                    if over:
                        return length
                    continue
                snapshot_length, update_ids, merged = await self._read_and_merge(
                    room_id, checkpoint=checkpoint, size_hint=size_hint
                )
                if merged is None:
                    return snapshot_length
                stored_as = await self._store_compacted(room_id, update_ids, merged)
                if stored_as is not None:
                    if stored_as and self.changes is not None:
                        self.changes.committed()
                    return merged.length
        except (SQLAlchemyError, OSError) as exc:  # a refused connection is an OSError
            raise StorageError(f"compacting room {room_id} failed") from exc
        raise StorageError(f"compacting room {room_id}: other compactions kept winning")

    async def _read_and_merge(
        self, room_id: str, *, checkpoint: bool, size_hint: int
    ) -> tuple[int, tuple[int, ...], Folded | None]:
        """``stored_reads.merge_sqlite_room``'s answer, in the worker or here."""
        path = self._worker_reads(size_hint)
        if path is not None:
            return await self.merger.run(merge_sqlite_room, path, room_id, encode=checkpoint)
        async with self.engine.connect() as conn:
            stored = await read_stored_room(conn, room_id)
        snapshot_length = len(stored.snapshot or b"")
        if nothing_to_fold(stored, encode=checkpoint):
            return snapshot_length, stored.update_ids, None
        merged = await self.merger.merge(parts_of(stored), encode=checkpoint)
        return snapshot_length, stored.update_ids, Folded.of(merged, await b64encode(merged.update))

    def _worker_reads(self, size_hint: int) -> str | None:
        """The SQLite file the worker reads a room of ``size_hint`` bytes from, or None."""
        if self.engine.dialect.name != "sqlite" or size_hint < self.merger.offload_min_bytes:
            return None
        database = self.engine.url.database
        return database if database and database != ":memory:" else None

    async def _store_compacted(
        self, room_id: str, update_ids: tuple[int, ...], merged: Folded
    ) -> int | None:
        """Write a compaction's result; None if another compaction folded its rows first.

        Otherwise the automatic checkpoint's version id, or 0 when none was written.
        """
        version_id = 0
        async with self.engine.begin() as conn:
            await lock_room(conn, room_id, COMPACTION_LOCK)
            if await deleted_among(conn, [room_id], write_locked=True):
                return 0  # deleted meanwhile: nothing of it may be written again
            if update_ids and not await _still_logged(conn, update_ids):
                return None
            if merged.document is not None:
                now = self.clock()
                version = await insert_version(
                    conn, room_id, VersionKind.AUTO, merged.document, now
                )
                version_id = version.id
                await thin_checkpoints(conn, room_id, now, self.retention)
                if self.changes is not None:
                    await self.changes.version_made(conn, room_id, version_id, "auto", None)
            if update_ids:
                dialect = conn.dialect.name
                await conn.execute(snapshot_upsert(dialect, room_id, merged.snapshot_b64))
                await conn.execute(folded_rows_delete(update_ids))
        return version_id

    async def ping(self) -> None:
        """Run a trivial query."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("database unreachable") from exc

    async def close(self) -> None:
        """Dispose of the connection pool and stop the merge worker."""
        try:
            await self.engine.dispose()
        finally:
            await self.merger.close()


_UPDATE_KEYS = ["room_id", "update"]


@functools.cache
def _insert_updates_sql(dialect: sa.Dialect) -> str:
    """``INSERT INTO room_updates (room_id, update)`` in the dialect's SQL and placeholders."""
    compiled = room_updates.insert().inline().compile(dialect=dialect, column_keys=_UPDATE_KEYS)
    if compiled.positiontup != _UPDATE_KEYS:  # the rows are tuples in this order
        raise RuntimeError(f"unexpected placeholders: {compiled.positiontup}")
    return str(compiled)


async def _still_logged(conn: AsyncConnection, update_ids: Sequence[int]) -> bool:
    """Whether every one of these log rows is still there (no other compaction took them)."""
    return await conn.scalar(logged_count_query(update_ids)) == len(update_ids)


async def _take_fences(conn: AsyncConnection, fences: Mapping[str, int]) -> set[str]:
    """Record each room's fence as its newest unless a newer one wrote; the rooms refused.

    One statement for the whole batch (``RETURNING`` names the rooms whose fence was taken):
    a statement per room made the fences most of a flush's cost with 100 live rooms. Its text
    is the same whatever the number of rooms (the rooms go as one JSON array), so SQLAlchemy
    compiles it once: a multi-row ``VALUES`` compiled anew for every batch size was a fifth of
    a one-process server's CPU with ``REDIS_URL`` set (bench/README.md, "The Redis bill").
    """
    rooms = json.dumps([[room_id, fence] for room_id, fence in fences.items()])
    statement = TAKE_FENCES[conn.dialect.name]
    result = await conn.execute(statement, {"rooms": rooms})
    return set(fences) - set(result.scalars())


# The rooms go as one JSON array of [room id, fence]. (SQLite needs the SELECT's WHERE: without
# it, its parser takes the ON CONFLICT for a join's.)
TAKE_FENCES = {
    "sqlite": sa.text(
        """
        INSERT INTO room_fences (room_id, fence)
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
        FROM json_each(:rooms) WHERE true
        ON CONFLICT (room_id) DO UPDATE SET fence = excluded.fence
        WHERE room_fences.fence <= excluded.fence
        RETURNING room_id
        """
    ),
    "postgresql": sa.text(
        """
        INSERT INTO room_fences (room_id, fence)
        SELECT room ->> 0, (room ->> 1)::bigint
        FROM jsonb_array_elements(CAST(:rooms AS jsonb)) AS room
        ON CONFLICT (room_id) DO UPDATE SET fence = excluded.fence
        WHERE room_fences.fence <= excluded.fence
        RETURNING room_id
        """
    ),
}


# A compaction that finds its rows taken by another (another process's) reads again, this often.
COMPACTION_ATTEMPTS = 3
# pg_advisory_xact_lock's first key, one per kind of work on a room; the room id's hash is the
# second. Compactions and role changes never wait for each other.
COMPACTION_LOCK = 0x5050
ROLES_LOCK = 0x5052


async def lock_room(conn: AsyncConnection, room_id: str, kind: int) -> None:
    """Hold the room's ``kind`` lock until ``conn``'s transaction ends; call it first.

    On SQLite this takes the database's write lock: pysqlite opens a transaction only at the
    first write, so reads before it would otherwise see the database as it was before another
    process's committed change.
    """
    if conn.dialect.name == "postgresql":
        key = sa.func.hashtext(room_id)
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(kind, key)))
    else:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def read_stored_room(conn: AsyncConnection, room_id: str) -> StoredRoom:
    """A room's snapshot and log as ``conn`` may see them (RLS applies on a user's connection).

    The log is read before the snapshot: each statement sees the latest commits (READ
    COMMITTED), so a compaction committing in between moves rows from the log into a snapshot
    this read still gets (merging a row twice changes nothing). The other order could miss them.
    """
    rows = (await conn.execute(log_query(room_id))).all()
    snapshot_row = (await conn.execute(snapshot_query(room_id))).first()
    snapshot = await b64decode(snapshot_row.snapshot_b64) if snapshot_row else None
    return stored_room(rows, snapshot_row, snapshot)
