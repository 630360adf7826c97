"""Row Level Security of ``room_comments``, in SQL as each role against migrated PostgreSQL.

Members read; editors and owners write their own; editors and owners resolve (and nothing
else of a row: the columns are not granted); authors delete their own, owners any.
"""

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tests.support import seed_room_rows

pytestmark = pytest.mark.anyio

OWNER, EDITOR, VIEWER, STRANGER = (str(uuid.uuid4()) for _ in range(4))
ROLES = {"owner": OWNER, "editor": EDITOR, "viewer": VIEWER, "stranger": STRANGER}


@pytest.fixture
async def seeded(migrated_postgres: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A room with a thread by the owner, one by the editor (with the owner's reply), and
    one by the viewer (written before they were made viewer)."""
    connection = await asyncpg.connect(migrated_postgres)
    room = f"rlsc-{uuid.uuid4().hex[:8]}"
    await seed_room_rows(connection, room, OWNER, EDITOR, VIEWER)
    rows = [
        (f"e-{room}", None, EDITOR),
        (f"r-{room}", f"e-{room}", OWNER),
        (f"v-{room}", None, VIEWER),
    ]
    for comment_id, thread_id, author in rows:
        await connection.execute(
            "INSERT INTO room_comments (id, room_id, thread_id, file, author_id, body, created_at)"
            " VALUES ($1, $2, $3, 'main.py', $4, 'words', now())",
            comment_id,
            room,
            thread_id,
            author,
        )
    try:
        yield connection, room
    finally:
        await connection.close()


async def _as(connection: asyncpg.Connection, user: str, sql: str, *args: object) -> str:
    """One statement in its own transaction as ``user``: its status line."""
    async with connection.transaction():
        await connection.execute(
            "SELECT set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": user, "role": "authenticated"}),
        )
        return str(await connection.execute(sql, *args))


async def _ids(connection: asyncpg.Connection, room: str) -> set[str]:
    rows = await connection.fetch("SELECT id FROM room_comments WHERE room_id = $1", room)
    return {row["id"] for row in rows}


UNRESOLVED = False
INSERT = (
    "INSERT INTO room_comments (id, room_id, thread_id, file, author_id, body, created_at,"
    " resolved) VALUES ($1, $2, $3, 'main.py', $4, 'new words', now(), $5)"
)


@pytest.mark.parametrize(
    ("role", "count"), [("owner", 4), ("editor", 4), ("viewer", 4), ("stranger", 0)]
)
async def test_members_read_every_comment_and_strangers_none(seeded, role, count):
    connection, room = seeded
    status = await _as(
        connection, ROLES[role], "SELECT * FROM room_comments WHERE room_id = $1", room
    )
    assert status == f"SELECT {count}"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("owner", True), ("editor", True), ("viewer", UNRESOLVED), ("stranger", UNRESOLVED)],
)
async def test_editors_and_owners_write_their_own_comments_only(seeded, role, allowed):
    connection, room = seeded
    user = ROLES[role]
    new = f"n-{uuid.uuid4().hex[:8]}"
    if allowed:
        assert (
            await _as(connection, user, INSERT, new, room, None, user, UNRESOLVED) == "INSERT 0 1"
        )
        reply = f"{new}-r"
        assert (
            await _as(connection, user, INSERT, reply, room, new, user, UNRESOLVED) == "INSERT 0 1"
        )
    else:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _as(connection, user, INSERT, new, room, None, user, UNRESOLVED)
    forged = [
        (f"{new}-f", room, None, OWNER if user != OWNER else EDITOR, UNRESOLVED),  # as someone else
        (f"{new}-s", room, None, user, not UNRESOLVED),  # born resolved
    ]
    for values in forged:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _as(connection, user, INSERT, *values)


async def test_a_reply_cannot_join_a_thread_of_another_room(seeded, migrated_postgres):
    connection, room = seeded
    other = f"rlso-{uuid.uuid4().hex[:8]}"
    await seed_room_rows(connection, other, EDITOR, OWNER, VIEWER)  # the editor owns it
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(connection, EDITOR, INSERT, "cross", other, f"e-{room}", EDITOR, UNRESOLVED)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # nor reply to a reply
        await _as(connection, EDITOR, INSERT, "nested", room, f"r-{room}", EDITOR, UNRESOLVED)


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("owner", "UPDATE 1"),
        ("editor", "UPDATE 1"),
        ("viewer", "UPDATE 0"),
        ("stranger", "UPDATE 0"),
    ],
)
async def test_editors_and_owners_resolve_anyones_thread(seeded, role, status):
    connection, room = seeded
    resolve = "UPDATE room_comments SET resolved = true, resolved_by = $2 WHERE id = $1"
    assert await _as(connection, ROLES[role], resolve, f"v-{room}", ROLES[role]) == status


@pytest.mark.parametrize("role", ["owner", "editor"])
async def test_nobody_rewrites_a_body_an_author_or_a_place(seeded, role):
    connection, room = seeded
    for column, value in (("body", "'rewritten'"), ("author_id", "'x'"), ("room_id", "'y'")):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _as(
                connection,
                ROLES[role],
                f"UPDATE room_comments SET {column} = {value} WHERE id = $1",
                f"e-{room}",
            )
    body = await connection.fetchval("SELECT body FROM room_comments WHERE id = $1", f"e-{room}")
    assert body == "words"


@pytest.mark.parametrize(
    ("role", "deletable"),
    [
        ("owner", {"e", "r", "v", "t"}),  # any
        ("editor", {"e"}),  # their own (the thread; the owner's reply goes by cascade)
        ("viewer", set()),  # not even their own: viewers read only
        ("stranger", set()),
    ],
)
async def test_authors_delete_their_own_and_owners_any(seeded, role, deletable):
    connection, room = seeded
    user = ROLES[role]
    ids = {"e": f"e-{room}", "r": f"r-{room}", "v": f"v-{room}", "t": f"t-{room}"[:32]}
    deleted = set()
    for key in ("r", "v", "t", "e"):  # the reply before its thread, so each is tried alone
        status = await _as(connection, user, "DELETE FROM room_comments WHERE id = $1", ids[key])
        if status == "DELETE 1":
            deleted.add(key)
        else:
            assert status == "DELETE 0"
    assert deleted == deletable
    left = await _ids(connection, room)
    gone = {ids[key] for key in deletable} | ({ids["r"]} if "e" in deletable else set())
    assert left == set(ids.values()) - gone


async def test_erasing_my_data_deletes_my_comments_only_in_any_role(seeded):
    connection, room = seeded
    erased = await _as(connection, VIEWER, "SELECT * FROM pairpilot_erase_my_comments()")
    assert erased != "SELECT 0"  # this room's, and other tests' rooms' (the ids are shared)
    mine = "SELECT count(*) FROM room_comments WHERE author_id = $1"
    assert await connection.fetchval(mine, VIEWER) == 0
    assert await _ids(connection, room) == {f"e-{room}", f"r-{room}", f"t-{room}"[:32]}
    assert await _as(connection, STRANGER, "SELECT * FROM pairpilot_erase_my_comments()") == (
        "SELECT 0"
    )
    assert len(await _ids(connection, room)) == 3
