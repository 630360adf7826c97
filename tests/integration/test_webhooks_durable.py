"""Webhook events survive a ``kill -9``: acknowledged means stored, debounced means stored too.

A real ``pairpilot serve`` process is killed right after a join, a version and a deletion were
answered, and while a ``room.updated`` was still being debounced; started again, it delivers
each event to a receiver of the test's own. On PostgreSQL the test holds a lock on the
delivery queue while the change is made, so the killed process cannot have passed the event on
by any other way than the row its request stored.
"""

import asyncio
import base64
import json
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from pycrdt import Text
from tests.receiver import Receiver, webhook_receiver
from tests.support import eventually, new_user, stored_rows

from pairpilot.storage.outbox import open_update_windows
from pairpilot.storage.schema import webhook_events, webhook_pending_updates
from pairpilot.storage.sql import create_engine
from pairpilot.testing import (
    ServerProcess,
    live_server,
    quick_settings,
    synced_client,
    wait_until,
)
from pairpilot.webhooks.journal import EventJournal

pytestmark = pytest.mark.anyio

# After a restart: a delivery the killed process had claimed is sent when the claim runs out.
AFTER_RESTART_S = 90
SECRET = "whsec_" + base64.b64encode(b"operator-secret-of-the-tests!!").decode()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    """A server's environment on each backend, with the receiver as the operator's endpoint."""
    values = {
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "PAIRPILOT_JWT_SECRET": secrets.token_urlsafe(32),
        "PAIRPILOT_WEBHOOK_URL": receiver.url,
        "PAIRPILOT_WEBHOOK_SECRET": SECRET,
        "PAIRPILOT_WEBHOOK_RETRY_FIRST_S": "0.2",
        "PAIRPILOT_WEBHOOK_RETRY_MAX_S": "0.5",
        # A delivery claimed by the killed process waits out its claim (16 timeouts + 30 s).
        "PAIRPILOT_WEBHOOK_TIMEOUT_S": "0.5",
        "PAIRPILOT_WEBHOOK_DEBOUNCE_S": "0.3",
        "PAIRPILOT_WEBHOOK_DEBOUNCE_MAX_S": "1.0",
        "PAIRPILOT_FLUSH_MS": "50",
        "PAIRPILOT_LOG_LEVEL": "WARNING",
    }
    if request.param == "postgresql":
        values["DATABASE_URL"] = request.getfixturevalue("migrated_postgres")
    return values


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(env)
    try:
        yield process
    finally:
        process.kill()


def _database_url(env: dict[str, str]) -> str:
    url = env.get("DATABASE_URL") or f"sqlite:///{env['PAIRPILOT_DATA_DIR']}/pairpilot.sqlite3"
    return url.replace("postgresql://", "postgresql+asyncpg://").replace(
        "sqlite://", "sqlite+aiosqlite://"
    )


@asynccontextmanager
async def _queue_held(env: dict[str, str]) -> AsyncIterator[None]:
    """On PostgreSQL, nobody writes the delivery queue during the block (the test's lock)."""
    if "DATABASE_URL" not in env:
        yield
        return
    connection = await asyncpg.connect(env["DATABASE_URL"])
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


def _of_type(receiver: Receiver, kind: str, room: str) -> list[dict]:
    """The room's events of this kind (the shared PostgreSQL database may hold others')."""
    return [
        p
        for r in receiver.delivered()
        if (p := r.verified(SECRET))["type"] == kind and p["data"]["room_id"] == room
    ]


async def test_an_answered_join_version_and_deletion_are_delivered_after_a_kill_9(
    server: ServerProcess, env: dict[str, str], receiver: Receiver, room: str
):
    await asyncio.to_thread(server.start, 120)
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    await wait_until(
        lambda: _of_type(receiver, "member.joined", room), timeout=30, what="Ada's member.joined"
    )

    async def killed_after(change) -> dict:
        async with _queue_held(env):
            response = await change()
            assert response.status_code in {200, 201}, response.text
            await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start, 120)
        return response.json()

    def arrived(kind: str, **data: object) -> Callable[[], bool]:
        return lambda: any(
            data.items() <= p["data"].items() for p in _of_type(receiver, kind, room)
        )

    bob = await new_user(server.http_url, "Bob")
    await killed_after(lambda: bob.join(room))
    await wait_until(
        arrived("member.joined", user_id=bob.id), timeout=AFTER_RESTART_S, what="Bob's join"
    )
    version = await killed_after(
        lambda: ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "kept"})
    )
    await wait_until(
        arrived("version.created", version_id=version["id"]),
        timeout=AFTER_RESTART_S,
        what="version.created",
    )
    await killed_after(lambda: ada.call("DELETE", f"/api/rooms/{room}"))
    await wait_until(arrived("room.deleted"), timeout=AFTER_RESTART_S, what="room.deleted")
    # An event sent as the process was killed is sent again after its claim: with its id.
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for received in receiver.delivered():
        bodies[received.id].add(received.body)
    assert all(len(body) == 1 for body in bodies.values())
    events = [p for r in receiver.delivered() if (p := r.verified(SECRET))]
    assert len({json.dumps(p, sort_keys=True) for p in events}) == len(bodies)


async def test_a_room_updated_still_being_debounced_is_delivered_after_a_kill_9(
    env: dict[str, str], receiver: Receiver, room: str
):
    """Edits stored, their room.updated waiting out a long debounce: kill -9, start again (with
    a short debounce), and the row the flush stored is announced."""
    waiting = ServerProcess(
        {**env, "PAIRPILOT_WEBHOOK_DEBOUNCE_S": "600", "PAIRPILOT_WEBHOOK_DEBOUNCE_MAX_S": "600"}
    )
    engine = create_engine(_database_url(env))
    try:
        await asyncio.to_thread(waiting.start, 120)
        ada = await new_user(waiting.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        await wait_until(
            lambda: _of_type(receiver, "member.joined", room), timeout=30, what="the endpoint known"
        )
        async with synced_client(waiting.ws_url(room, ada.token)) as doc:
            doc.get("code", type=Text).insert(0, "stored, not yet announced")

            async def pending() -> bool:
                async with engine.connect() as conn:
                    query = sa.select(webhook_pending_updates.c.room_id)
                    return room in set((await conn.execute(query)).scalars())

            await eventually(pending, expected=True, what="the pending row stored")
        await asyncio.to_thread(waiting.kill)
        assert not _of_type(receiver, "room.updated", room)
        started = ServerProcess(env)
        try:
            await asyncio.to_thread(started.start, 120)
            await wait_until(
                lambda: _of_type(receiver, "room.updated", room), timeout=60, what="room.updated"
            )
        finally:
            await asyncio.to_thread(started.kill)
        assert len(_of_type(receiver, "room.updated", room)) == 1
    finally:
        waiting.kill()
        await engine.dispose()


async def test_with_no_endpoint_anywhere_a_flush_writes_no_pending_row(tmp_path: Path, room: str):
    """The embedded default's flush path costs nothing more: no endpoint, no pending row."""
    async with live_server(quick_settings(tmp_path)) as server:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        webhooks = server.services.webhooks
        await wait_until(lambda: not webhooks.endpoints_exist, what="no endpoint known")
        async with synced_client(server.ws_url(room, ada.token)) as doc:
            doc.get("code", type=Text).insert(0, "stored, with nobody to tell")

            async def stored() -> bool:  # in the log, or already folded into the snapshot
                rows = await stored_rows(server, room)
                return rows["room_updates"] + rows["room_snapshots"] > 0

            await eventually(stored, expected=True, what="the edit stored")
        async with server.services.store.engine.connect() as conn:
            pending = await conn.scalar(
                sa.select(sa.func.count()).select_from(webhook_pending_updates)
            )
        assert pending == 0


async def test_an_orphaned_pending_row_is_announced_once_by_processes_sweeping_at_once(
    migrated_postgres: str, room: str
):
    """Four sweeps find the same orphan while the test holds its row; let go, one announces it."""
    url = migrated_postgres.replace("postgresql://", "postgresql+asyncpg://")
    engines = [create_engine(url) for _ in range(4)]
    # Only a row this old is an orphan here: other tests' rows in the shared database are not.
    journals = [EventJournal(engine, orphan_after_s=3e8) for engine in engines]
    holder = await asyncpg.connect(migrated_postgres)
    watcher = await asyncpg.connect(migrated_postgres)
    try:
        async with engines[0].begin() as conn:
            await open_update_windows(conn, [room], datetime.now(UTC) - timedelta(days=3650))
        held = holder.transaction()
        await held.start()
        await holder.execute(
            "SELECT 1 FROM webhook_pending_updates WHERE room_id = $1 FOR UPDATE", room
        )
        sweeps = asyncio.gather(*(journal.announce_orphans() for journal in journals))

        async def waiting() -> int:  # asked outside the holder's transaction (its view is fixed)
            return await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%webhook_pending_updates%'"
            )

        await eventually(waiting, 4, what="every sweep waiting for the row")
        await held.commit()
        await sweeps
        async with engines[0].begin() as conn:
            mine = webhook_events.c.room_id == room
            announced = await conn.scalar(
                sa.select(sa.func.count()).select_from(webhook_events).where(mine)
            )
            await conn.execute(webhook_events.delete().where(mine))  # no later test's to send
    finally:
        await holder.close()
        await watcher.close()
        for engine in engines:
            await engine.dispose()
    assert announced == 1
