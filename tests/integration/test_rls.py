"""Row Level Security, checked in SQL as each user against the migrated PostgreSQL."""

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

pytestmark = pytest.mark.anyio

A, B, V, E = (str(uuid.uuid4()) for _ in range(4))


@pytest.fixture
async def db(migrated_postgres: str) -> AsyncIterator[tuple[asyncpg.Connection, str, str]]:
    """A connection as the migrating role, with two seeded rooms: A's and B's (V views, E edits)."""
    connection = await asyncpg.connect(migrated_postgres)
    room_a, room_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    await connection.execute(
        """
        INSERT INTO rooms (id, owner_id) VALUES ($1, $3), ($2, $4);
        """.replace("$3", f"'{A}'")
        .replace("$4", f"'{B}'")
        .replace("$1", f"'{room_a}'")
        .replace("$2", f"'{room_b}'")
    )
    await connection.executemany(
        "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, $3)",
        [(room_a, A, "owner"), (room_b, B, "owner"), (room_b, V, "viewer"), (room_b, E, "editor")],
    )
    await connection.execute(
        "INSERT INTO room_snapshots (room_id, snapshot_b64) VALUES ($1, 'AAA='), ($2, 'AAA=')",
        room_a,
        room_b,
    )
    await connection.execute(
        "INSERT INTO room_updates (room_id, update) VALUES ($1, '\\x0000'), ($2, '\\x0000')",
        room_a,
        room_b,
    )
    try:
        yield connection, room_a, room_b
    finally:
        await connection.close()


async def _as(connection: asyncpg.Connection, user: str | None) -> None:
    claims = json.dumps({"sub": user, "role": "authenticated"} if user else {})
    await connection.execute(
        "SELECT set_config('role', 'authenticated', true), "
        "set_config('request.jwt.claims', $1, true)",
        claims,
    )


async def _run(connection: asyncpg.Connection, user: str | None, sql: str, *args: str) -> str:
    """Run one statement in its own transaction as ``user``; its status line."""
    async with connection.transaction():
        await _as(connection, user)
        return str(await connection.execute(sql, *args))


async def _count(connection: asyncpg.Connection, table: str, room: str) -> int:
    column = "id" if table == "rooms" else "room_id"
    return int(await connection.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", room))


TABLES = ["rooms", "room_members", "room_snapshots", "room_updates"]


async def test_a_user_sees_their_rooms_and_nothing_of_anyone_elses(db):
    connection, room_a, room_b = db
    async with connection.transaction():
        await _as(connection, A)
        for table in TABLES:
            assert await _count(connection, table, room_a) >= 1, table
            assert await _count(connection, table, room_b) == 0, table


async def test_a_user_cannot_write_into_another_users_room(db):
    connection, _, room_b = db
    attempts = [
        "INSERT INTO room_snapshots (room_id, snapshot_b64) VALUES ($1, 'AAA=')",
        "INSERT INTO room_updates (room_id, update) VALUES ($1, '\\x0000')",
        f"INSERT INTO room_members (room_id, user_id, role) VALUES ($1, '{A}', 'owner')",
        f"INSERT INTO room_members (room_id, user_id, role) VALUES ($1, '{B}', 'editor')",
    ]
    for statement in attempts:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _run(connection, A, statement, room_b)
    updates = [
        "UPDATE rooms SET default_role = 'viewer' WHERE id = $1",
        "UPDATE room_members SET role = 'viewer' WHERE room_id = $1",
        "UPDATE room_snapshots SET snapshot_b64 = 'BBB=' WHERE room_id = $1",
    ]
    for statement in updates:
        assert await _run(connection, A, statement, room_b) == "UPDATE 0"


async def test_a_viewer_cannot_write_a_snapshot_or_an_update(db):
    connection, _, room_b = db
    rewrite = "UPDATE room_snapshots SET snapshot_b64 = 'BBB=' WHERE room_id = $1"
    append = "INSERT INTO room_updates (room_id, update) VALUES ($1, '\\x0000')"
    assert await _run(connection, V, rewrite, room_b) == "UPDATE 0"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _run(connection, V, append, room_b)
    assert await _run(connection, E, rewrite, room_b) == "UPDATE 1"
    assert await _run(connection, E, append, room_b) == "INSERT 0 1"


async def test_a_member_cannot_promote_themself(db):
    connection, _, room_b = db
    promote = "UPDATE room_members SET role = 'owner' WHERE room_id = $1 AND user_id = $2"
    for user in (V, E):
        assert await _run(connection, user, promote, room_b, user) == "UPDATE 0"
    assert (
        await connection.fetchval(
            "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2", room_b, E
        )
        == "editor"
    )


async def test_with_no_claims_nothing_is_visible(db):
    connection, room_a, room_b = db
    async with connection.transaction():
        await _as(connection, None)
        for table in TABLES:
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # The persistence writer's role (the migrating one) bypasses RLS: it sees both rooms.
    assert await _count(connection, "room_updates", room_a) == 1
    assert await _count(connection, "room_updates", room_b) == 1


VERSION = (
    "INSERT INTO room_versions (room_id, kind, name, author_id, state, size_bytes, created_at)"
    " VALUES ($1, '{kind}', 'v', '{author}', '\\x00', 1, now())"
)


@pytest.fixture
async def versioned(db):
    """The seeded rooms, each with one automatic version written by the persistence writer."""
    connection, room_a, room_b = db
    for room in (room_a, room_b):
        await connection.execute(
            "INSERT INTO room_versions (room_id, kind, state, size_bytes, created_at)"
            " VALUES ($1, 'auto', '\\x00', 1, now())",
            room,
        )
    return db


async def test_members_read_a_rooms_versions_and_strangers_see_none(versioned):
    connection, room_a, room_b = versioned
    for user, room, visible in [(A, room_a, 1), (A, room_b, 0), (V, room_b, 1), (E, room_b, 1)]:
        async with connection.transaction():
            await _as(connection, user)
            assert await _count(connection, "room_versions", room) == visible, (user, room)
    async with connection.transaction():
        await _as(connection, None)
        assert await connection.fetchval("SELECT count(*) FROM room_versions") == 0


async def test_editors_create_named_versions_as_themselves_and_nobody_else_can(versioned):
    connection, _, room_b = versioned
    assert await _run(connection, E, VERSION.format(kind="named", author=E), room_b) == "INSERT 0 1"
    assert await _run(connection, B, VERSION.format(kind="restore", author=B), room_b) == (
        "INSERT 0 1"
    )
    refused = [
        (V, VERSION.format(kind="named", author=V)),  # a viewer
        (A, VERSION.format(kind="named", author=A)),  # a stranger
        (E, VERSION.format(kind="named", author=B)),  # in someone else's name
        (E, VERSION.format(kind="auto", author=E)),  # checkpoints are the writer's
    ]
    for user, statement in refused:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _run(connection, user, statement, room_b)


async def test_nobody_rewrites_a_version_and_only_owners_and_the_writer_delete_one(versioned):
    connection, _, room_b = versioned
    delete = "DELETE FROM room_versions WHERE room_id = $1"
    for user in (B, E):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _run(
                connection, user, "UPDATE room_versions SET name = 'x' WHERE room_id = $1", room_b
            )
    for user in (V, E, A):  # a viewer, an editor, a stranger (owners delete rooms: 0006)
        assert await _run(connection, user, delete, room_b) == "DELETE 0"
    assert await _run(connection, B, delete, room_b) == "DELETE 1"
    assert await connection.execute(delete, room_b) == "DELETE 0"


async def test_owners_remove_members_members_leave_and_nobody_else_removes_anyone(db):
    connection, _, room_b = db
    remove = "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2"
    assert await _run(connection, A, remove, room_b, V) == "DELETE 0"  # a stranger
    assert await _run(connection, E, remove, room_b, V) == "DELETE 0"  # an editor
    assert await _run(connection, V, remove, room_b, V) == "DELETE 1"  # leaving
    assert await _run(connection, B, remove, room_b, E) == "DELETE 1"  # the owner
    assert await _count(connection, "room_members", room_b) == 1


async def test_no_request_role_reads_or_writes_refresh_tokens(db):
    connection, _, _ = db
    for user in (A, None):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _run(connection, user, "SELECT count(*) FROM auth_refresh_tokens")
