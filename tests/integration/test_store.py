"""The RoomStore contract, against SQLite and a real PostgreSQL alike."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pycrdt import Doc, Text, merge_updates
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.storage import sql
from pairpilot.storage.migrate import migrate
from pairpilot.storage.sql import SqlRoomStore, create_engine
from pairpilot.storage.store import StoredRoom

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlRoomStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_database").replace(
            "postgresql://", "postgresql+asyncpg://"
        )
    engine = create_engine(url)
    await migrate(engine)
    store = SqlRoomStore(engine)
    yield store
    await store.close()


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


def _edits(count: int) -> tuple[Doc, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        text.insert(len(text), str(i % 10))
    return doc, updates


def _replay(snapshot: bytes | None, updates: list[bytes]) -> str:
    doc: Doc = Doc()
    parts = ([snapshot] if snapshot else []) + updates
    if parts:
        doc.apply_update(merge_updates(*parts))
    return str(doc.get("code", type=Text))


async def test_an_unknown_room_is_empty(store: SqlRoomStore):
    stored = await store.load(_room())
    assert stored.snapshot is None
    assert stored.updates == []


async def test_appended_updates_load_back_in_order(store: SqlRoomStore):
    room = _room()
    doc, updates = _edits(20)
    await store.append([(room, u) for u in updates[:10]])
    await store.append([(room, u) for u in updates[10:]])
    stored = await store.load(room)
    assert stored.updates == updates
    assert _replay(stored.snapshot, stored.updates) == str(doc.get("code", type=Text))


async def test_one_batch_may_hold_several_rooms(store: SqlRoomStore):
    a, b = _room(), _room()
    _, updates = _edits(2)
    await store.append([(a, updates[0]), (b, updates[1])])
    assert (await store.load(a)).updates == [updates[0]]
    assert (await store.load(b)).updates == [updates[1]]


async def test_compaction_folds_the_log_into_the_snapshot(store: SqlRoomStore):
    room = _room()
    doc, updates = _edits(30)
    await store.append([(room, u) for u in updates[:15]])
    await store.compact(room)
    await store.append([(room, u) for u in updates[15:]])
    size = await store.compact(room)
    stored = await store.load(room)
    assert stored.updates == []
    assert stored.snapshot is not None
    assert size == len(stored.snapshot)
    assert _replay(stored.snapshot, []) == str(doc.get("code", type=Text))


async def test_compaction_keeps_rows_appended_after_it(store: SqlRoomStore):
    room = _room()
    doc, updates = _edits(4)
    await store.append([(room, updates[0])])
    await store.compact(room)
    await store.append([(room, u) for u in updates[1:]])
    stored = await store.load(room)
    assert len(stored.updates) == 3
    assert _replay(stored.snapshot, stored.updates) == str(doc.get("code", type=Text))


async def test_ping_answers(store: SqlRoomStore):
    await store.ping()


async def test_a_compaction_waits_for_another_process_compacting_the_same_room(
    store: SqlRoomStore, monkeypatch: pytest.MonkeyPatch
):
    # A second engine on the same database is what another server process holds.
    other = SqlRoomStore(create_engine(store.engine.url.render_as_string(hide_password=False)))
    room = _room()
    doc, updates = _edits(20)
    await store.append([(room, u) for u in updates[:10]])

    # Hold the first compaction between reading the log and writing the snapshot.
    has_read, resume = asyncio.Event(), asyncio.Event()
    read = sql.read_stored_room

    async def read_then_hold(conn: AsyncConnection, room_id: str) -> StoredRoom:
        stored = await read(conn, room_id)
        if not has_read.is_set():
            has_read.set()
            await resume.wait()
        return stored

    monkeypatch.setattr(sql, "read_stored_room", read_then_hold)

    async def the_other_process() -> None:
        await other.append([(room, u) for u in updates[10:]])
        await other.compact(room)

    try:
        first = asyncio.create_task(store.compact(room))
        await has_read.wait()
        second = asyncio.create_task(the_other_process())
        # Unserialised, the other process folds all 20 updates and deletes them from the log
        # here; the first compaction would then overwrite that snapshot with its 10.
        await asyncio.wait({second}, timeout=1.0)
        resume.set()
        await asyncio.gather(first, second)
        stored = await store.load(room)
    finally:
        await other.close()
    assert stored.updates == []
    assert _replay(stored.snapshot, []) == str(doc.get("code", type=Text))


class _PausingConnection:
    """A connection that holds after its first statement until ``resume`` is set."""

    def __init__(self, conn: AsyncConnection, paused: asyncio.Event, resume: asyncio.Event):
        self._conn, self._paused, self._resume, self._calls = conn, paused, resume, 0

    async def execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = await self._conn.execute(*args, **kwargs)
        self._calls += 1
        if self._calls == 1:
            self._paused.set()
            await self._resume.wait()
        return result

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._conn, name)


async def test_a_load_racing_a_compaction_still_sees_every_update(
    store: SqlRoomStore, monkeypatch: pytest.MonkeyPatch
):
    other = SqlRoomStore(create_engine(store.engine.url.render_as_string(hide_password=False)))
    room = _room()
    doc, updates = _edits(10)
    await store.append([(room, u) for u in updates])
    paused, resume = asyncio.Event(), asyncio.Event()
    read = sql.read_stored_room

    async def read_with_a_pause(conn: AsyncConnection, room_id: str) -> StoredRoom:
        return await read(_PausingConnection(conn, paused, resume), room_id)  # type: ignore[arg-type]

    monkeypatch.setattr(sql, "read_stored_room", read_with_a_pause)
    try:
        loading = asyncio.create_task(store.load(room))
        await paused.wait()
        monkeypatch.setattr(sql, "read_stored_room", read)
        await other.compact(room)  # moves every row into the snapshot between the two reads
        resume.set()
        stored = await loading
    finally:
        await other.close()
    assert _replay(stored.snapshot, stored.updates) == str(doc.get("code", type=Text))


@pytest.fixture
async def postgres_store(postgres_database: str) -> AsyncIterator[SqlRoomStore]:
    engine = create_engine(postgres_database.replace("postgresql://", "postgresql+asyncpg://"))
    await migrate(engine)
    store = SqlRoomStore(engine)
    yield store
    await store.close()


async def test_a_compaction_never_deletes_a_row_committed_after_its_read(
    postgres_store: SqlRoomStore, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL hands ids out before commit (SQLite serialises its writers: no such race)."""
    store = postgres_store
    other = SqlRoomStore(create_engine(store.engine.url.render_as_string(hide_password=False)))
    room = _room()
    doc, updates = _edits(2)
    slow = await other.engine.connect()
    try:
        await slow.begin()
        await slow.execute(sql.room_updates.insert().values(room_id=room, update=updates[0]))
        await store.append([(room, updates[1])])  # a higher id, committed first
        has_read, resume = asyncio.Event(), asyncio.Event()
        read = sql.read_stored_room

        async def read_then_hold(conn: AsyncConnection, room_id: str) -> StoredRoom:
            stored = await read(conn, room_id)
            has_read.set()
            await resume.wait()
            return stored

        monkeypatch.setattr(sql, "read_stored_room", read_then_hold)
        compaction = asyncio.create_task(store.compact(room))
        await has_read.wait()
        await slow.commit()  # the lower id lands after the compaction read the log
        resume.set()
        await compaction
        monkeypatch.setattr(sql, "read_stored_room", read)
        stored = await store.load(room)
    finally:
        await slow.close()
        await other.close()
    assert _replay(stored.snapshot, stored.updates) == str(doc.get("code", type=Text))
