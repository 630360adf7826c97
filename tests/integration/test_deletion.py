"""Deleting data (issue #21): rooms by their owners, a user's own data, on both backends."""

import asyncio
import base64
import dataclasses
import io
import json
import os
import sys
import uuid
import zipfile
from asyncio.subprocess import PIPE
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio
from pycrdt import Doc, Map, Text
from tests.support import RETIRED_ROWS, new_user, seed_room_rows, stored_rows, thread_body
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.bus.leases import LEASE
from pairpilot.bus.streams import stream_key
from pairpilot.storage.schema import refresh_tokens
from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _typed(doc: Doc, text: str) -> None:
    files = doc.get("files", type=Map)
    files["main.py"] = Text(text)


async def _closed_with(websocket, timeout: float = 10.0) -> int | None:
    """Read until the server closes the socket; the close code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await websocket.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def _stored(server: LiveServer, room: str) -> bool:
    rows = await stored_rows(server, room)
    return rows["room_updates"] + rows["room_snapshots"] > 0


async def test_an_owner_deletes_a_room_and_every_row_of_it_is_gone(api_server, room):
    owner = await new_user(api_server.http_url, "Ada")
    assert (await owner.join(room)).status_code == 200
    async with synced_client(api_server.ws_url(room, owner.token)) as doc:
        _typed(doc, "print('secret')")
        for _ in range(100):
            if await _stored(api_server, room):
                break
            await asyncio.sleep(0.05)
        named = await owner.call("POST", f"/api/rooms/{room}/versions", json={"name": "v1"})
        assert named.status_code == 201
        made = await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body())
        assert made.status_code == 201
        await api_server.services.flusher.compact(api_server.services.registry.rooms[room])
        before = await stored_rows(api_server, room)
        assert before["room_updates"] + before["room_snapshots"] > 0
        assert before["room_versions"] >= 1
        assert before["room_comments"] == 1
        answer = await owner.call("DELETE", f"/api/rooms/{room}")
    assert answer.status_code == 200
    assert answer.json() == {"room_id": room, "deleted": True}
    assert await stored_rows(api_server, room) == RETIRED_ROWS
    assert room not in api_server.services.registry.rooms
    assert (await owner.call("GET", f"/api/rooms/{room}/snapshot")).status_code == 410


async def test_only_owners_delete_and_strangers_are_told_nothing(api_server, room):
    owner = await new_user(api_server.http_url, "Ada")
    editor = await new_user(api_server.http_url, "Bob")
    viewer = await new_user(api_server.http_url, "Cy")
    stranger = await new_user(api_server.http_url, "Eve")
    await owner.join(room)
    await editor.join(room)
    await viewer.join(room)
    await owner.call("PUT", f"/api/rooms/{room}/members/{viewer.id}", json={"role": "viewer"})
    for user in (editor, viewer):
        refused = await user.call("DELETE", f"/api/rooms/{room}")
        assert refused.status_code == 403, refused.text
    hidden = await stranger.call("DELETE", f"/api/rooms/{room}")
    missing = await stranger.call("DELETE", "/api/rooms/no-such-room-here")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"] == missing.json()["error"] == "not_found"
    rows = await stored_rows(api_server, room)
    assert rows["rooms"] == 1
    assert rows["room_members"] == 3
    assert rows["room_tombstones"] == 0


async def test_a_connected_client_is_closed_with_4410(api_server, room):
    owner = await new_user(api_server.http_url, "Ada")
    editor = await new_user(api_server.http_url, "Bob")
    await owner.join(room)
    await editor.join(room)
    async with connect(api_server.ws_url(room, editor.token), compression=None) as websocket:
        await wait_until(lambda: room in api_server.services.registry.rooms)
        await wait_until(lambda: len(api_server.services.registry.rooms[room].sessions) == 1)
        assert (await owner.call("DELETE", f"/api/rooms/{room}")).status_code == 200
        assert await _closed_with(websocket) == 4410
        assert websocket.close_reason == "This room was deleted"


async def test_a_stale_client_cannot_bring_a_deleted_room_back(api_server, room):
    owner = await new_user(api_server.http_url, "Ada")
    await owner.join(room)
    kept = Doc()
    async with synced_client(api_server.ws_url(room, owner.token), kept):
        _typed(kept, "kept on the client")
        await wait_until(lambda: room in api_server.services.registry.rooms)
        assert (await owner.call("DELETE", f"/api/rooms/{room}")).status_code == 200
    # The client still holds the document: it re-joins, posts it, reconnects with it.
    rejoin = await owner.join(room)
    assert rejoin.status_code == 410
    assert rejoin.json()["error"] == "room_deleted"
    state = base64.b64encode(kept.get_update()).decode()
    posted = await owner.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": state})
    assert posted.status_code == 410
    async with connect(api_server.ws_url(room, owner.token), compression=None) as websocket:
        assert await _closed_with(websocket) == 4410
    await api_server.services.flusher.flush_all()
    assert await stored_rows(api_server, room) == RETIRED_ROWS
    again = await owner.call("DELETE", f"/api/rooms/{room}")
    assert again.status_code == 410


async def test_a_write_after_the_delete_stores_nothing(api_server, room):
    """The flusher's append and a compaction of a deleted room write no row (the DB guard)."""
    owner = await new_user(api_server.http_url, "Ada")
    await owner.join(room)
    assert (await owner.call("DELETE", f"/api/rooms/{room}")).status_code == 200
    doc = Doc()
    _typed(doc, "written by a write that was in flight")
    store = api_server.services.store
    assert await store.append([(room, doc.get_update())]) == {room}
    assert await store.append([(room, doc.get_update())], {room: 1}) == {room}
    await store.compact(room, checkpoint=True)
    assert await stored_rows(api_server, room) == RETIRED_ROWS


async def test_deleting_my_data_deletes_rooms_i_alone_own_and_leaves_the_others(api_server):
    me = await new_user(api_server.http_url, "Ada")
    other = await new_user(api_server.http_url, "Bob")
    mine, shared, theirs = (f"del-{name}-{me.id[:8]}" for name in ("mine", "shared", "theirs"))
    await me.join(mine)
    await me.join(shared)
    await other.join(shared)
    await me.call("PUT", f"/api/rooms/{shared}/members/{other.id}", json={"role": "owner"})
    await other.join(theirs)
    await me.join(theirs)
    async with (
        connect(api_server.ws_url(mine, me.token), compression=None) as in_mine,
        connect(api_server.ws_url(shared, me.token), compression=None) as in_shared,
    ):
        await wait_until(lambda: {mine, shared} <= set(api_server.services.registry.rooms))
        answer = await me.call("DELETE", "/api/me")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"deleted_rooms": [mine], "left_rooms": sorted([shared, theirs])}
        assert await _closed_with(in_mine) == 4410
        assert await _closed_with(in_shared) == 4403
    assert await stored_rows(api_server, mine) == RETIRED_ROWS
    for room in (shared, theirs):
        rows = await stored_rows(api_server, room)
        assert rows["rooms"] == 1
        assert rows["room_members"] == 1  # the other user's
    members = await other.call("GET", f"/api/rooms/{shared}/members")
    assert [member["user_id"] for member in members.json()] == [other.id]
    async with api_server.services.store.engine.connect() as conn:
        left = await conn.execute(refresh_tokens.select().where(refresh_tokens.c.user_id == me.id))
        assert left.first() is None


async def test_a_socket_on_another_process_is_closed_and_nothing_is_stored_after(
    tmp_path: Path, redis_url, room
):
    # Two servers on one database and one Redis, as two processes would be (test_scale_out).
    settings = quick_settings(tmp_path, redis_url=redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        owner = await new_user(a.http_url, "Ada")
        editor = await new_user(a.http_url, "Bob")
        await owner.join(room)
        await editor.join(room)
        async with (
            synced_client(a.ws_url(room, owner.token)) as on_a,
            connect(b.ws_url(room, editor.token), compression=None) as on_b,
        ):
            _typed(on_a, "typed on A")
            await wait_until(lambda: room in b.services.registry.rooms)
            client = redis.asyncio.Redis.from_url(redis_url)
            try:
                await wait_until(lambda: bool(b.services.registry.rooms[room].doc.get_state()))
                assert (await owner.call("DELETE", f"/api/rooms/{room}")).status_code == 200
                assert await _closed_with(on_b) == 4410
                await wait_until(lambda: room not in b.services.registry.rooms)
                await b.services.flusher.flush_all()
                await a.services.flusher.flush_all()
                assert await stored_rows(a, room) == RETIRED_ROWS
                for key in (stream_key(room), LEASE + room):
                    for _ in range(400):  # the stream expires ERASED_TTL_MS after its entry
                        if not await client.exists(key):
                            break
                        await asyncio.sleep(0.05)
                    assert not await client.exists(key), key
            finally:
                await client.aclose()
        assert await stored_rows(b, room) == RETIRED_ROWS


# Row Level Security: the delete as each role, straight in SQL as `authenticated` (no Python).

OWNER, EDITOR, VIEWER, STRANGER = (str(uuid.uuid4()) for _ in range(4))
CONTENT = ["room_snapshots", "room_updates", "room_versions", "room_fences", "room_comments"]


@pytest.fixture
async def seeded(migrated_postgres: str):
    """A room with every kind of row, an owner, an editor and a viewer (as the writer seeds it)."""
    connection = await asyncpg.connect(migrated_postgres)
    room = f"rls-{uuid.uuid4().hex[:8]}"
    await seed_room_rows(connection, room, OWNER, EDITOR, VIEWER)
    await connection.execute("INSERT INTO room_fences (room_id, fence) VALUES ($1, 1)", room)
    try:
        yield connection, room
    finally:
        await connection.close()


async def _delete_as(connection: asyncpg.Connection, user: str, room: str) -> list[str]:
    """The delete the API runs, as ``user`` with no Python check: each statement's status."""
    async with connection.transaction():
        await connection.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": user, "role": "authenticated"}),
        )
        statuses = [
            await connection.execute(f"DELETE FROM {table} WHERE room_id = $1", room)
            for table in CONTENT
        ]
        statuses.append(
            await connection.execute("INSERT INTO room_tombstones (room_id) VALUES ($1)", room)
        )
        statuses.append(await connection.execute("DELETE FROM rooms WHERE id = $1", room))
    return statuses


async def _counts(connection: asyncpg.Connection, room: str) -> dict[str, int]:
    counts = {"rooms": await connection.fetchval("SELECT count(*) FROM rooms WHERE id = $1", room)}
    for table in ["room_members", *CONTENT, "room_tombstones"]:
        counts[table] = await connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE room_id = $1", room
        )
    return counts


@pytest.mark.parametrize("user", [EDITOR, VIEWER, STRANGER], ids=["editor", "viewer", "stranger"])
async def test_rls_lets_nobody_but_an_owner_delete_a_room(seeded, user):
    connection, room = seeded
    before = await _counts(connection, room)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the tombstone's INSERT policy
        await _delete_as(connection, user, room)
    assert await _counts(connection, room) == before
    async with connection.transaction():  # the DELETEs alone delete nothing either
        await connection.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": user, "role": "authenticated"}),
        )
        for table in CONTENT:
            status = await connection.execute(f"DELETE FROM {table} WHERE room_id = $1", room)
            assert status == "DELETE 0", (table, status)
        assert await connection.execute("DELETE FROM rooms WHERE id = $1", room) == "DELETE 0"


async def test_rls_lets_an_owner_delete_every_row_and_the_id_is_never_inserted_again(seeded):
    connection, room = seeded
    statuses = await _delete_as(connection, OWNER, room)
    assert statuses == ["DELETE 1"] * len(CONTENT) + ["INSERT 0 1", "DELETE 1"]
    assert await _counts(connection, room) == {
        "rooms": 0,
        "room_members": 0,  # cascaded from the room's row
        **dict.fromkeys(CONTENT, 0),
        "room_tombstones": 1,
    }
    # Re-creating the id is refused by the rooms INSERT policy, even for its first owner.
    async with connection.transaction():
        await connection.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": OWNER, "role": "authenticated"}),
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(
                "INSERT INTO rooms (id, owner_id, default_role) VALUES ($1, $2, 'editor')",
                room,
                OWNER,
            )


async def test_a_write_in_flight_waits_for_the_delete_and_then_writes_nothing(
    migrated_postgres: str, room
):
    """A flush that starts while a delete holds its lock sees the tombstone once it commits."""
    from pairpilot.storage.deletion import erase_rows, lock_for_deletion  # noqa: PLC0415
    from pairpilot.storage.sql import SqlRoomStore, create_engine  # noqa: PLC0415

    engine = create_engine(migrated_postgres.replace("postgresql://", "postgresql+asyncpg://"))
    store = SqlRoomStore(engine)
    doc = Doc()
    _typed(doc, "in flight")
    watcher = await asyncpg.connect(migrated_postgres)
    try:
        await store.append([(room, doc.get_update())])
        async with engine.begin() as conn:
            await lock_for_deletion(conn)
            await erase_rows(conn, room)
            flush = asyncio.create_task(store.append([(room, doc.get_update())]))
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            for _ in range(400):
                if await watcher.fetchval(waiting):
                    break
                await asyncio.sleep(0.025)
            assert await watcher.fetchval(waiting) >= 1, "the flush never waited for the delete"
            assert not flush.done()
        assert await flush == {room}
        counts = await _counts(watcher, room)
        assert counts["room_updates"] == 0
        assert counts["room_tombstones"] == 1
    finally:
        await watcher.close()
        await store.close()


async def _pairpilot(data_dir: Path, *args: str) -> tuple[int, bytes, str]:
    """Run the `pairpilot` command on a data dir; exit status, stdout, stderr."""
    env = {**os.environ, "PAIRPILOT_DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pairpilot", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out, err.decode()


async def test_the_operator_lists_exports_and_deletes_rooms(tmp_path: Path):
    settings = quick_settings(tmp_path)
    async with live_server(settings) as server:
        owner = await new_user(server.http_url, "Ada")
        await owner.join("big")
        await owner.join("small")
        async with synced_client(server.ws_url("big", owner.token)) as doc:
            _typed(doc, "x = 1\n" * 500)
            for _ in range(200):
                if await _stored(server, "big"):
                    break
                await asyncio.sleep(0.05)
        exported = await owner.call("GET", "/api/rooms/big/export.zip")
    status, out, _ = await _pairpilot(tmp_path, "rooms", "list")
    assert status == 0
    lines = out.decode().splitlines()
    assert lines[0].split() == [
        "ROOM",
        "BYTES",
        "LOG",
        "ROWS",
        "VERSIONS",
        "MEMBERS",
        "LAST",
        "EDIT",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["big", "small"]  # biggest first
    assert int(lines[1].split()[1]) > 3000
    status, out, _ = await _pairpilot(tmp_path, "rooms", "show", "big")
    assert status == 0
    assert owner.id in out.decode()
    status, zipped, _ = await _pairpilot(tmp_path, "rooms", "export", "big")
    assert status == 0
    assert zipfile.ZipFile(io.BytesIO(zipped)).read("main.py") == b"x = 1\n" * 500
    api_zip = zipfile.ZipFile(io.BytesIO(exported.content))
    cli_zip = zipfile.ZipFile(io.BytesIO(zipped))
    assert {name: cli_zip.read(name) for name in cli_zip.namelist()} == {
        name: api_zip.read(name) for name in api_zip.namelist()
    }
    status, out, _ = await _pairpilot(tmp_path, "rooms", "delete", "big")
    assert status == 0, out
    status, out, _ = await _pairpilot(tmp_path, "rooms", "list")
    assert [line.split()[0] for line in out.decode().splitlines()[1:]] == ["small"]
    status, _, err = await _pairpilot(tmp_path, "rooms", "delete", "big")
    assert status == 1
    assert "deleted already" in err
    async with live_server(settings) as server:
        assert await stored_rows(server, "big") == RETIRED_ROWS
        again = dataclasses.replace(owner, base=server.http_url)  # the same user, new server
        assert (await again.join("big")).status_code == 410
