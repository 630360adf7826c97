"""Compaction with its merge in the worker process, on SQLite and a real PostgreSQL alike."""

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pycrdt import Doc, Text
from tests.conftest import backend_settings

from pairpilot.errors import StorageError
from pairpilot.storage import sql, stored_reads
from pairpilot.storage.merging import Merged, Merger
from pairpilot.storage.migrate import migrate
from pairpilot.storage.schema import room_snapshots, room_updates, room_versions
from pairpilot.storage.sql import SqlRoomStore, create_engine
from pairpilot.storage.store import fold
from pairpilot.testing import live_server, synced_client, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def stores(
    backend: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlRoomStore, SqlRoomStore]]:
    """Two stores on one database: merging in the worker, and merging in the event loop."""
    url = backend_settings(backend, tmp_path).resolved_database_url
    offloading = SqlRoomStore(create_engine(url), merger=Merger(offload_min_bytes=0))
    inline = SqlRoomStore(create_engine(url), merger=Merger(offload_min_bytes=1 << 40))
    await migrate(offloading.engine)
    yield offloading, inline
    await offloading.close()
    await inline.close()


def _edits(count: int) -> tuple[str, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text.insert(0, "a document of some size " * 200)
    for i in range(count):
        text.insert((i * 7919) % len(text), str(i % 10))
    return str(text), updates


def _text(update: bytes | None) -> str:
    doc: Doc = Doc()
    if update:
        doc.apply_update(update)
    return str(doc.get("code", type=Text))


async def _stored(store: SqlRoomStore, room_id: str) -> tuple[str, bytes, int]:
    """The room's snapshot row, its newest automatic version's state, and its log rows."""
    async with store.engine.connect() as conn:
        snapshot = await conn.scalar(
            sa.select(room_snapshots.c.snapshot_b64).where(room_snapshots.c.room_id == room_id)
        )
        version = await conn.scalar(
            sa.select(room_versions.c.state)
            .where(room_versions.c.room_id == room_id)
            .order_by(room_versions.c.id.desc())
            .limit(1)
        )
    return snapshot, version, len((await store.load(room_id)).updates)


async def test_the_worker_stores_what_the_event_loop_would_have_stored(
    stores: tuple[SqlRoomStore, SqlRoomStore], room: str
):
    offloading, inline = stores
    expected, updates = _edits(200)
    for store, room_id in ((offloading, f"{room}-w"), (inline, f"{room}-i")):
        await store.append([(room_id, u) for u in updates[:100]])
        await store.compact(room_id)
        await store.append([(room_id, u) for u in updates[100:]])
        await store.compact(room_id, checkpoint=True)
    assert offloading.merger.offloaded == 2
    assert inline.merger.offloaded == 0
    assert await _stored(offloading, f"{room}-w") == await _stored(inline, f"{room}-i")
    stored = await offloading.load(f"{room}-w")
    assert stored.updates == []
    assert _text(stored.snapshot) == expected


async def test_a_killed_worker_fails_the_compaction_and_leaves_the_log_whole(
    stores: tuple[SqlRoomStore, SqlRoomStore], room: str
):
    store, _ = stores
    expected, updates = _edits(50)
    await store.append([(room, u) for u in updates])
    await store.merger.merge([updates[0]])  # starts the worker
    assert store.merger._pool is not None
    for pid in list(store.merger._pool._processes or {}):
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(StorageError):
        await store.compact(room)
    stored = await store.load(room)
    assert stored.snapshot is None
    assert stored.updates == updates
    assert await store.compact(room) > 0  # a new worker
    stored = await store.load(room)
    assert stored.updates == []
    assert _text(stored.snapshot) == expected


async def test_the_flusher_retries_a_compaction_whose_worker_was_killed(
    backend: pytest.FixtureRequest, tmp_path: Path, room: str
):
    settings = backend_settings(backend, tmp_path, compact_min_bytes=2048, idle_unload_ms=60_000)
    async with live_server(settings) as server:
        merger = server.services.store.merger
        merger.offload_min_bytes = 0
        await merger.merge([b"\x00\x00"])  # start the worker, then kill it: the next fails
        assert merger._pool is not None
        for pid in list(merger._pool._processes or {}):
            os.kill(pid, signal.SIGKILL)
        compactions = server.services.metrics.compactions
        async with synced_client(await server.member_url(room)) as doc:
            text = doc.get("code", type=Text)
            for i in range(60):
                text.insert(len(text), f"{i:03d}" + "y" * 197)
                await asyncio.sleep(0.02)
            typed = str(text)
            await wait_until(lambda: compactions.labels("done")._value.get() >= 1)
            live = server.services.registry.rooms[room]
            # Written, not only taken: a batch in flight has left ``pending`` already.
            await wait_until(lambda: not live.pending and not live.writing, what="written")
            assert compactions.labels("failed")._value.get() >= 1
            stored = await server.services.store.load(room)
            parts = ([stored.snapshot] if stored.snapshot else []) + stored.updates
            restored: Doc = Doc()
            for part in parts:
                restored.apply_update(part)
            assert str(restored.get("code", type=Text)) == typed
    assert not merger.started  # shutdown stopped the worker


async def test_a_big_sqlite_room_is_read_by_the_worker_not_the_server(
    tmp_path: Path, room: str, monkeypatch: pytest.MonkeyPatch
):
    """Reading a 33 MB snapshot row held the GIL 25-33 ms in aiosqlite's thread, a pause of
    every room: on SQLite the worker reads a big room itself, for a compaction and for a quota
    measure, and stores exactly what the server's own read would have led to."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'big.sqlite3'}"
    store = SqlRoomStore(create_engine(url), merger=Merger(offload_min_bytes=1024))
    await migrate(store.engine)
    try:
        expected, updates = _edits(200)
        await store.append([(room, u) for u in updates[:100]])
        await store.compact(room)  # small as far as the caller knows: read here
        await store.append([(room, u) for u in updates[100:]])
        reads = []
        real_read = sql.read_stored_room
        monkeypatch.setattr(sql, "read_stored_room", lambda *a: reads.append(a) or real_read(*a))
        measured = await store.measure(room, size_hint=1 << 20)
        snapshot_length = await store.compact(room, checkpoint=True, size_hint=1 << 20)
        assert reads == []  # neither read the room in this process
        doc: Doc = Doc()
        doc.apply_update(fold(updates))
        assert measured == len(doc.get_update())
        monkeypatch.undo()
        stored = await store.load(room)
        assert stored.updates == []
        assert len(stored.snapshot or b"") == snapshot_length
        assert _text(stored.snapshot) == expected
        _, version, log_rows = await _stored(store, room)
        assert version is not None  # the checkpoint, written by the same compaction
        assert log_rows == 0
    finally:
        await store.close()


@pytest.fixture
async def big_sqlite(tmp_path: Path) -> AsyncIterator[tuple[SqlRoomStore, str]]:
    """A store on SQLite whose rooms of 1 KiB or more go to the worker, and its file."""
    path = str(tmp_path / "big.sqlite3")
    store = SqlRoomStore(
        create_engine(f"sqlite+aiosqlite:///{path}"), merger=Merger(offload_min_bytes=1024)
    )
    await migrate(store.engine)
    yield store, path
    await store.close()


async def test_a_big_sqlite_rooms_compaction_is_written_by_the_worker(
    big_sqlite: tuple[SqlRoomStore, str], room: str, monkeypatch: pytest.MonkeyPatch
):
    """Unpickling, binding and committing a full room's 44 MB snapshot text paused every room
    up to 50 ms: without a checkpoint, the worker writes the compaction itself."""
    store, _ = big_sqlite
    expected, updates = _edits(200)
    await store.append([(room, u) for u in updates[:100]])
    await store.compact(room)  # small as far as the caller knows: read and written here
    await store.append([(room, u) for u in updates[100:]])
    written_here = []
    real_store = SqlRoomStore._store_compacted
    monkeypatch.setattr(
        SqlRoomStore,
        "_store_compacted",
        lambda self, *a: written_here.append(a) or real_store(self, *a),
    )
    offloaded = store.merger.offloaded
    snapshot_length = await store.compact(room, size_hint=1 << 20)
    assert written_here == []
    assert store.merger.offloaded == offloaded + 1  # read, merged and written in one job
    stored = await store.load(room)
    assert stored.updates == []
    assert len(stored.snapshot or b"") == snapshot_length
    assert _text(stored.snapshot) == expected
    assert await store.compact(room, size_hint=1 << 20) == snapshot_length  # nothing to fold


def _meanwhile(path: str, statement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``statement`` on the database between the worker job's merge and its write."""
    real_merge = stored_reads.merge

    def merge_then(parts: list[bytes], *, encode: bool = False) -> Merged:
        merged = real_merge(parts, encode=encode)
        with sqlite3.connect(path) as other:
            other.execute(statement)
        return merged

    monkeypatch.setattr(stored_reads, "merge", merge_then)


async def test_the_workers_compaction_writes_nothing_when_its_rows_were_folded_meanwhile(
    big_sqlite: tuple[SqlRoomStore, str], room: str, monkeypatch: pytest.MonkeyPatch
):
    store, path = big_sqlite
    _, updates = _edits(50)
    await store.append([(room, u) for u in updates])
    # Another compaction takes the oldest row between this one's read and its write.
    _meanwhile(
        path, "DELETE FROM room_updates WHERE id = (SELECT min(id) FROM room_updates)", monkeypatch
    )
    assert stored_reads.compact_sqlite_room(path, room) == (0, False)  # read again
    stored = await store.load(room)
    assert stored.snapshot is None
    assert stored.updates == updates[1:]


async def test_the_workers_compaction_leaves_a_room_deleted_meanwhile_alone(
    big_sqlite: tuple[SqlRoomStore, str], room: str, monkeypatch: pytest.MonkeyPatch
):
    store, path = big_sqlite
    _, updates = _edits(50)
    await store.append([(room, u) for u in updates])
    _meanwhile(path, f"INSERT INTO room_tombstones (room_id) VALUES ('{room}')", monkeypatch)
    length, over = stored_reads.compact_sqlite_room(path, room)
    assert over
    assert length > 0
    async with store.engine.connect() as conn:  # the room no longer loads: its rows, as left
        snapshots = await conn.scalar(sa.select(sa.func.count()).select_from(room_snapshots))
        rows = await conn.scalar(sa.select(sa.func.count()).select_from(room_updates))
    assert snapshots == 0
    assert rows == len(updates)


async def test_the_workers_compaction_fails_whole_when_the_write_lock_stays_taken(
    big_sqlite: tuple[SqlRoomStore, str], room: str
):
    store, path = big_sqlite
    expected, updates = _edits(50)
    await store.append([(room, u) for u in updates])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer keeps the lock past the worker's 5 s
    try:
        with pytest.raises(StorageError, match="database is locked"):
            await store.compact(room, size_hint=1 << 20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await store.load(room)).updates == updates
    await store.compact(room, size_hint=1 << 20)
    stored = await store.load(room)
    assert stored.updates == []
    assert _text(stored.snapshot) == expected
