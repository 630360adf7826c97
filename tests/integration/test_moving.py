"""Moving a room to a new id (issue #22, "Links"): owners move a room whose id is guessable."""

import asyncio
import base64
import json
import re
import uuid

import asyncpg
import pytest
from pycrdt import Doc, Map, Text
from tests.support import RETIRED_ROWS, User, new_user, seed_room_rows, stored_rows, thread_body
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio

NEW_ID = re.compile(r"^[a-z]+-[a-z]+-[A-Za-z0-9_-]{22}$")  # readable words + 128 random bits


def _typed(doc: Doc, text: str) -> None:
    doc.get("files", type=Map)["main.py"] = Text(text)


def _text(doc: Doc) -> str:
    files = doc.get("files", type=Map)
    return str(files["main.py"]) if "main.py" in files else ""


async def _stored_text(user: User, room: str) -> str:
    answer = await user.call("GET", f"/api/rooms/{room}/snapshot")
    assert answer.status_code == 200, answer.text
    doc = Doc()
    if answer.json()["snapshot_b64"]:
        doc.apply_update(base64.b64decode(answer.json()["snapshot_b64"]))
    return _text(doc)


async def _closed(websocket) -> tuple[int | None, str | None]:
    try:
        async with asyncio.timeout(10):
            while True:
                await websocket.recv()
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, None)


async def _members(server: LiveServer, room: str) -> tuple[User, User, User]:
    owner = await new_user(server.http_url, "Ada")
    editor = await new_user(server.http_url, "Bob")
    viewer = await new_user(server.http_url, "Cy")
    for user in (owner, editor, viewer):
        assert (await user.join(room)).status_code == 200
    await owner.call("PUT", f"/api/rooms/{room}/members/{viewer.id}", json={"role": "viewer"})
    return owner, editor, viewer


async def _move(owner: User, room: str) -> str:
    answer = await owner.call("POST", f"/api/rooms/{room}/move")
    assert answer.status_code == 200, answer.text
    assert answer.json()["room_id"] == room
    return str(answer.json()["new_room_id"])


async def test_a_moved_room_keeps_content_members_roles_and_versions(api_server, room):
    owner, editor, viewer = await _members(api_server, room)
    async with synced_client(api_server.ws_url(room, owner.token)) as doc:
        _typed(doc, "print('kept')")
        await wait_until(lambda: "kept" in _text(api_server.services.registry.rooms[room].doc))
        await api_server.services.flusher.flush_all()
        named = await owner.call("POST", f"/api/rooms/{room}/versions", json={"name": "v1"})
        assert named.status_code == 201, named.text
        made = await editor.call("POST", f"/api/rooms/{room}/comments", json=thread_body())
        assert made.status_code == 201, made.text
        new = await _move(owner, room)
    assert NEW_ID.match(new), new
    assert await _stored_text(viewer, new) == "print('kept')"
    members = (await editor.call("GET", f"/api/rooms/{new}/members")).json()
    roles = {member["user_id"]: member["role"] for member in members}
    assert roles == {owner.id: "owner", editor.id: "editor", viewer.id: "viewer"}
    versions = (await viewer.call("GET", f"/api/rooms/{new}/versions")).json()
    listed = versions["versions"] if isinstance(versions, dict) else versions
    assert "v1" in [version.get("name") for version in listed]
    [thread] = (await viewer.call("GET", f"/api/rooms/{new}/comments")).json()["threads"]
    assert thread["author_id"] == editor.id
    joined = await owner.join(new)
    assert joined.json()["member"]["role"] == "owner"
    assert await stored_rows(api_server, room) == RETIRED_ROWS


async def test_the_old_id_tells_members_where_it_went_and_strangers_nothing(api_server, room):
    owner, editor, viewer = await _members(api_server, room)
    stranger = await new_user(api_server.http_url, "Eve")
    for user in (editor, viewer):
        assert (await user.call("POST", f"/api/rooms/{room}/move")).status_code == 403
    hidden = await stranger.call("POST", f"/api/rooms/{room}/move")
    assert hidden.status_code == 404
    new = await _move(owner, room)
    for user in (owner, viewer):
        moved = await user.join(room)
        assert moved.status_code == 410
        assert moved.json()["error"] == "room_moved"
        assert moved.json()["new_room_id"] == new
    snapshot = await editor.call("GET", f"/api/rooms/{room}/snapshot")
    assert (snapshot.status_code, snapshot.json()["new_room_id"]) == (410, new)
    again = await owner.call("POST", f"/api/rooms/{room}/move")
    assert (again.status_code, again.json()["error"]) == (410, "room_moved")
    for answer in (
        await stranger.join(room),
        await stranger.call("GET", f"/api/rooms/{room}/members"),
    ):
        assert answer.status_code == 404, answer.text
        assert new not in answer.text
    assert (await stored_rows(api_server, room))[
        "rooms"
    ] == 0  # the stranger's join created nothing


async def test_a_connected_client_is_closed_with_4301_and_the_new_id(api_server, room):
    owner, editor, _ = await _members(api_server, room)
    async with connect(api_server.ws_url(room, editor.token), compression=None) as websocket:
        await wait_until(lambda: room in api_server.services.registry.rooms)
        await wait_until(lambda: len(api_server.services.registry.rooms[room].sessions) == 1)
        new = await _move(owner, room)
        assert await _closed(websocket) == (4301, new)
    assert room not in api_server.services.registry.rooms
    async with connect(api_server.ws_url(room, editor.token), compression=None) as websocket:
        assert await _closed(websocket) == (4301, new)
    stranger = await new_user(api_server.http_url, "Eve")
    async with connect(api_server.ws_url(room, stranger.token), compression=None) as websocket:
        code, reason = await _closed(websocket)
        assert code != 4301
        assert new not in (reason or "")


async def test_edits_not_yet_stored_reach_the_new_id_and_nothing_is_written_under_the_old(
    api_server, room
):
    owner, editor, _ = await _members(api_server, room)
    async with synced_client(api_server.ws_url(room, editor.token)) as doc:
        _typed(doc, "typed just before the move")
        await wait_until(
            lambda: "just before" in _text(api_server.services.registry.rooms[room].doc)
        )
        new = await _move(owner, room)
    await api_server.services.flusher.flush_all()
    assert await _stored_text(owner, new) == "typed just before the move"
    assert await stored_rows(api_server, room) == RETIRED_ROWS


async def test_a_write_in_flight_after_the_move_writes_nothing_under_the_old_id(api_server, room):
    owner, _, _ = await _members(api_server, room)
    await _move(owner, room)
    doc = Doc()
    _typed(doc, "written by a write that was in flight")
    store = api_server.services.store
    assert await store.append([(room, doc.get_update())]) == {room}
    assert await store.append([(room, doc.get_update())], {room: 1}) == {room}
    await store.compact(room, checkpoint=True)
    assert await stored_rows(api_server, room) == RETIRED_ROWS


# Row Level Security: the move function as each role, straight in SQL as `authenticated`.

OWNER, EDITOR, VIEWER, STRANGER = (str(uuid.uuid4()) for _ in range(4))
TABLES = ["room_members", "room_snapshots", "room_updates", "room_versions", "room_comments"]


@pytest.fixture
async def seeded(migrated_postgres: str):
    connection = await asyncpg.connect(migrated_postgres)
    room = f"rls-{uuid.uuid4().hex[:8]}"
    await seed_room_rows(connection, room, OWNER, EDITOR, VIEWER)
    try:
        yield connection, room
    finally:
        await connection.close()


async def _as(connection: asyncpg.Connection, user: str, query: str, *args: object) -> object:
    async with connection.transaction():
        await connection.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": user, "role": "authenticated"}),
        )
        return await connection.fetchval(query, *args)


async def _counts(connection: asyncpg.Connection, room: str) -> dict[str, int]:
    counts = {"rooms": await connection.fetchval("SELECT count(*) FROM rooms WHERE id = $1", room)}
    for table in TABLES:
        counts[table] = await connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE room_id = $1", room
        )
    return counts


@pytest.mark.parametrize("user", [EDITOR, VIEWER, STRANGER], ids=["editor", "viewer", "stranger"])
async def test_rls_lets_nobody_but_an_owner_call_the_move_function(seeded, user):
    connection, room = seeded
    before = await _counts(connection, room)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(connection, user, "SELECT pairpilot_move_room($1, $2)", room, f"{room}-x")
    assert await _counts(connection, room) == before
    assert await _counts(connection, f"{room}-x") == dict.fromkeys(before, 0)


async def test_rls_lets_an_owner_move_every_row_and_tells_only_members_where(seeded):
    connection, room = seeded
    new = f"{room}-moved"
    before = await _counts(connection, room)
    await _as(connection, OWNER, "SELECT pairpilot_move_room($1, $2)", room, new)
    assert await _counts(connection, new) == before
    assert await _counts(connection, room) == dict.fromkeys(before, 0)
    retired = "SELECT pairpilot_room_retired($1)"
    assert await _as(connection, EDITOR, retired, room) == new
    assert await _as(connection, STRANGER, retired, room) == "-"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the old id is retired for good
        await _as(
            connection,
            OWNER,
            "INSERT INTO rooms (id, owner_id, default_role) VALUES ($1, $2, 'editor')",
            room,
            OWNER,
        )


async def test_a_socket_on_another_process_is_closed_with_the_new_id(tmp_path, redis_url, room):
    # Two servers on one database and one Redis, as two processes would be (test_scale_out).
    settings = quick_settings(tmp_path, redis_url=redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        owner, editor, _ = await _members(a, room)
        async with (
            synced_client(a.ws_url(room, owner.token)) as on_a,
            connect(b.ws_url(room, editor.token), compression=None) as on_b,
        ):
            _typed(on_a, "typed on A")
            await wait_until(lambda: room in b.services.registry.rooms)
            await wait_until(lambda: "on A" in _text(b.services.registry.rooms[room].doc))
            new = await _move(owner, room)
            assert await _closed(on_b) == (4301, new)
            await wait_until(lambda: room not in b.services.registry.rooms)
        await b.services.flusher.flush_all()
        await a.services.flusher.flush_all()
        assert await _stored_text(editor, new) == "typed on A"
        assert await stored_rows(a, room) == RETIRED_ROWS
