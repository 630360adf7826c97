"""A room's stored rows, read (and compacted) by the merge worker itself on SQLite.

Reading a 33 MB snapshot row holds the GIL for 25-33 ms in aiosqlite's thread (measured), its
base64 decode and the hand-off of the rows to the worker (pickled with the GIL held) cost as
much again: pauses of every room's fan-out each time a big room was compacted or measured
against its quota. On SQLite the worker opens the database file and reads the rows itself: the
server sends a path and a room id and gets back a length, an export or a compaction's merge.
A compaction without a checkpoint is also written by the worker (``compact_sqlite_room``): a
full room's 44 MB snapshot text was unpickled, bound and committed by the server, pauses of
every room's fan-out of up to 50 ms per compaction (bench/README.md, "Off the event loop").
PostgreSQL's rows are read and written by the server as before (its driver is async only).
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from pairpilot.errors import StorageError
from pairpilot.storage.deletion import tombstoned_query
from pairpilot.storage.merging import Merged, merge
from pairpilot.storage.schema import room_snapshots, room_updates
from pairpilot.storage.store import StoredRoom

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Folded:
    """A compaction's merge as it is written: the snapshot's base64 and length, the checkpoint.

    Made in the worker for a room it read, so the server receives the text it stores (a 44 MB
    string for a full room) instead of bytes it would encode, and join, on the event loop.
    """

    snapshot_b64: str
    length: int  # of the snapshot, in bytes
    document: bytes | None = None  # the checkpoint's state, when one was asked for

    @classmethod
    def of(cls, merged: Merged, snapshot_b64: str) -> Folded:
        """A merge and its snapshot's base64."""
        return cls(snapshot_b64, len(merged.update), merged.document)


def log_query(room_id: str) -> sa.Select[tuple[int, bytes, datetime]]:
    """The room's log rows, oldest first."""
    return (
        sa.select(room_updates.c.id, room_updates.c.update, room_updates.c.created_at)
        .where(room_updates.c.room_id == room_id)
        .order_by(room_updates.c.id)
    )


def snapshot_query(room_id: str) -> sa.Select[tuple[str, datetime]]:
    """The room's snapshot row (base64), if any."""
    return sa.select(room_snapshots.c.snapshot_b64, room_snapshots.c.updated_at).where(
        room_snapshots.c.room_id == room_id
    )


def logged_count_query(update_ids: Sequence[int]) -> sa.Select[int]:
    """How many of these log rows are still there (a compaction folds only its own)."""
    return (
        sa.select(sa.func.count())
        .select_from(room_updates)
        .where(room_updates.c.id.in_(update_ids))
    )


def folded_rows_delete(update_ids: Sequence[int]) -> sa.Delete:
    """Exactly the log rows a compaction folded in.

    Ids are handed out before commit, so a row with a lower id than the last one read may
    have been committed since.
    """
    return room_updates.delete().where(room_updates.c.id.in_(update_ids))


def snapshot_upsert(dialect: str, room_id: str, snapshot_b64: str) -> sa.Insert:
    """The room's snapshot row set to ``snapshot_b64`` (written or replaced)."""
    values = {"room_id": room_id, "snapshot_b64": snapshot_b64, "updated_at": sa.func.now()}
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(room_snapshots).values(values)
    return statement.on_conflict_do_update(
        index_elements=[room_snapshots.c.room_id],
        set_={"snapshot_b64": statement.excluded.snapshot_b64, "updated_at": sa.func.now()},
    )


def stored_room(
    rows: Sequence[sa.Row[tuple[int, bytes, datetime]]],
    snapshot_row: sa.Row[tuple[str, datetime]] | None,
    snapshot: bytes | None,
) -> StoredRoom:
    """The StoredRoom of a log read and a snapshot read (``snapshot``: its decoded bytes)."""
    stamps = [row.created_at for row in rows] + ([snapshot_row.updated_at] if snapshot_row else [])
    return StoredRoom(
        snapshot or None,
        [row.update for row in rows],
        max(stamps, default=None),
        update_ids=tuple(row.id for row in rows),
    )


@functools.cache
def _engine(path: str) -> sa.Engine:
    # A connection per read: the worker keeps no page cache between reads of big rooms. A
    # write waits up to 5 s for the server's write lock, then fails: the compaction is retried.
    engine = sa.create_engine(
        f"sqlite:///{path}", poolclass=sa.NullPool, connect_args={"timeout": 5}
    )
    sa.event.listen(engine, "connect", _pragmas)
    return engine


def _pragmas(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API has no type
    """As the server's connections write (storage/sql.py ``create_engine``)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def read_sqlite_room(path: str, room_id: str) -> StoredRoom:
    """A room as the SQLite database at ``path`` holds it (in the worker).

    The log before the snapshot, as ``sql.read_stored_room`` reads it, for the same reason.
    """
    with _engine(path).connect() as conn:
        rows = conn.execute(log_query(room_id)).all()
        snapshot_row = conn.execute(snapshot_query(room_id)).first()
    snapshot = binascii.a2b_base64(snapshot_row.snapshot_b64) if snapshot_row else None
    return stored_room(rows, snapshot_row, snapshot)


def parts_of(stored: StoredRoom) -> list[bytes]:
    """The snapshot (if any) and the log after it."""
    return ([stored.snapshot] if stored.snapshot else []) + stored.updates


def nothing_to_fold(stored: StoredRoom, *, encode: bool) -> bool:
    """No log to fold, and no checkpoint asked for (or nothing stored to make one of)."""
    return not stored.updates and not (encode and stored.snapshot)


def on_sqlite_room(path: str, room_id: str, job: Callable[[list[bytes]], T]) -> T:
    """``job(parts)`` of the stored room (a quota's measure, an export), read here."""
    return job(parts_of(read_sqlite_room(path, room_id)))


def merge_sqlite_room(
    path: str, room_id: str, *, encode: bool
) -> tuple[int, tuple[int, ...], Folded | None]:
    """A compaction's read and merge, here.

    The snapshot's length, the log rows it folded, and the merge (None when there is nothing
    to fold: no log, and no checkpoint asked for).
    """
    stored = read_sqlite_room(path, room_id)
    snapshot_length = len(stored.snapshot or b"")
    if nothing_to_fold(stored, encode=encode):
        return snapshot_length, stored.update_ids, None
    merged = merge(parts_of(stored), encode=encode)
    snapshot_b64 = binascii.b2a_base64(merged.update, newline=False).decode("ascii")
    return snapshot_length, stored.update_ids, Folded.of(merged, snapshot_b64)


def compact_sqlite_room(path: str, room_id: str) -> tuple[int, bool]:
    """A compaction without a checkpoint, here: read, merge and write (``SqlRoomStore.compact``).

    The snapshot's length, and whether the compaction is over: False when another compaction
    folded some of the rows it read first (the caller reads again). The write takes the
    database's write lock, leaves a deleted room alone, and replaces the snapshot and deletes
    the folded rows in one transaction, as the server's own compaction does. StorageError
    when the database refuses (its write lock held past 5 s): the log is left as it was.
    """
    snapshot_length, update_ids, folded = merge_sqlite_room(path, room_id, encode=False)
    if folded is None:
        return snapshot_length, True
    try:
        with _engine(path).connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # held until commit: the checks stay true
            if conn.execute(tombstoned_query([room_id])).first() is not None:
                return folded.length, True  # deleted meanwhile: nothing of it may be written
            if conn.scalar(logged_count_query(update_ids)) != len(update_ids):
                return snapshot_length, False
            conn.execute(snapshot_upsert("sqlite", room_id, folded.snapshot_b64))
            conn.execute(folded_rows_delete(update_ids))
            conn.commit()
    except DBAPIError as exc:  # not SQLAlchemy's error: it would carry the 44 MB back
        raise StorageError(f"compacting room {room_id} failed: {exc.orig or exc}") from None
    return folded.length, True
