"""One persister per room across processes: a lease in Redis, fenced in the database."""

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pycrdt import Doc, Text
from redis.asyncio import Redis
from tests.conftest import backend_settings
from websockets.asyncio.client import connect

from pairpilot.bus.leases import LEASE
from pairpilot.sync import protocol
from pairpilot.testing import (
    LiveServer,
    ServerProcess,
    live_server,
    quick_settings,
    synced_client,
    wait_until,
)

pytestmark = pytest.mark.anyio


def _holds(server: LiveServer, room: str) -> bool:
    return room in server.services.bus._leases.held


async def _stored_text(server: LiveServer, room: str) -> str:
    merged = (await server.services.store.load(room)).merged()
    doc: Doc = Doc()
    if merged:
        doc.apply_update(merged)
    return str(doc.get("code", type=Text))


async def _eventually(check, what: str, timeout: float = 20.0) -> None:
    """Poll the async ``check`` until it holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_exactly_one_process_holds_a_rooms_lease_and_the_other_takes_over(
    tmp_path: Path, redis_url, room
):
    settings = quick_settings(tmp_path, redis_url=redis_url)
    lease_key = LEASE + room
    async with (
        Redis.from_url(redis_url) as redis,
        AsyncExitStack() as on_a,
        AsyncExitStack() as on_b,
    ):
        a = await on_a.enter_async_context(live_server(settings))
        b = await on_b.enter_async_context(live_server(settings))
        # Plain sockets: pycrdt's Provider holds a cancel scope, which must close in order.
        await on_a.enter_async_context(connect(await a.member_url(room), compression=None))
        await on_b.enter_async_context(connect(await b.member_url(room), compression=None))
        rounds = [_count_lease_rounds(a, room), _count_lease_rounds(b, room)]
        await wait_until(lambda: _holds(a, room) or _holds(b, room), what="a holder")
        # A few lease rounds on each side (the other does not try while the holder lives):
        # exactly one holder at every look.
        deadline = time.monotonic() + 20
        while min(count() for count in rounds) < 3:
            assert _holds(a, room) != _holds(b, room)
            assert time.monotonic() < deadline, "timed out waiting for rounds of the leases"
            await asyncio.sleep(0.02)
        assert _holds(a, room) != _holds(b, room)
        (holder, holder_stack), (other, _) = (
            ((a, on_a), (b, on_b)) if _holds(a, room) else ((b, on_b), (a, on_a))
        )
        value = holder.services.bus._leases.held[room].value
        await holder_stack.aclose()  # its client leaves, the holder stops and releases
        # Released, not left to expire: the key is no longer the holder's once it has stopped.
        assert await redis.get(lease_key) != value
        await wait_until(lambda: _holds(other, room), timeout=20, what="the other to take over")
        assert await redis.get(lease_key) == other.services.bus._leases.held[room].value


async def test_a_killed_persisters_unflushed_edits_are_stored_by_the_one_taking_over(
    tmp_path: Path, redis_url, room
):
    # A never flushes on its own; B must store what A's client typed once A is gone.
    a = ServerProcess(
        {
            "PAIRPILOT_DATA_DIR": str(tmp_path),
            "REDIS_URL": redis_url,
            "PAIRPILOT_FLUSH_MS": "600000",
            "PAIRPILOT_LOG_LEVEL": "WARNING",
        }
    )
    a.start()
    try:
        async with (
            Redis.from_url(redis_url) as redis,
            synced_client(await a.member_url(room)) as on_a,
        ):

            async def leased() -> bool:
                return bool(await redis.exists(LEASE + room))

            await _eventually(leased, what="A to take the lease")  # alone with the room: A's
            a_lease = await redis.get(LEASE + room)
            async with live_server(quick_settings(tmp_path, redis_url=redis_url)) as b:
                rounds = _count_lease_rounds(b, room)
                async with synced_client(await b.member_url(room)) as on_b:
                    on_a.get("code", type=Text).insert(0, "typed on A")
                    await wait_until(lambda: str(on_b.get("code", type=Text)) == "typed on A")
                    # B had two lease rounds (with the edit in its replica) and did not take it,
                    # so it stored nothing.
                    await wait_until(lambda: rounds() >= 2, what="two lease rounds on B")
                    assert not _holds(b, room)
                    assert await redis.get(LEASE + room) == a_lease
                    assert await _stored_text(b, room) == ""
                    a.kill()
                    await wait_until(lambda: _holds(b, room), timeout=20, what="B takes over")
                    await wait_until(lambda: not b.services.registry.rooms[room].pending)

                    async def stored() -> bool:
                        return await _stored_text(b, room) == "typed on A"

                    await _eventually(stored, what="B to store A's edit")
    finally:
        a.kill()


def _count_lease_rounds(server: LiveServer, room: str):  # type: ignore[no-untyped-def]
    """Count the server's lease rounds (renew or try) that named ``room``; a reader."""
    leases = server.services.bus._leases
    original = leases.keep
    rounds = 0

    async def counted(room_ids, *args):  # type: ignore[no-untyped-def]
        nonlocal rounds
        named = list(room_ids)
        taken = await original(named, *args)
        rounds += room in named
        return taken

    leases.keep = counted  # type: ignore[method-assign]
    return lambda: rounds


async def test_a_client_of_the_process_that_does_not_persist_is_told_saved(
    tmp_path: Path, redis_url, room
):
    settings = quick_settings(tmp_path, redis_url=redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await a.member_url(room)):
            await wait_until(lambda: _holds(a, room), what="A to persist the room")
            websocket = await connect(await b.member_url(room), compression=None)
            doc: Doc = Doc()
            await websocket.send(protocol.sync_step1(doc.get_state()))
            code = doc.get("code", type=Text)
            code.insert(0, "typed on B")
            await websocket.send(protocol.sync_update(doc.get_update()))
            mine = protocol.decode_state_vector(doc.get_state())[doc.client_id]
            while True:
                clocks = protocol.decode_saved(await asyncio.wait_for(websocket.recv(), 10))
                if clocks is not None and clocks.get(doc.client_id, 0) >= mine:
                    break
            assert not _holds(b, room)
            assert await _stored_text(a, room) == "typed on B"
            await websocket.close()


async def test_the_store_refuses_a_batch_fenced_by_an_older_lease(backend, tmp_path: Path, room):
    async with live_server(backend_settings(backend, tmp_path)) as server:
        store = server.services.store
        doc: Doc = Doc()
        code = doc.get("code", type=Text)
        code.insert(0, "new holder")
        assert await store.append([(room, doc.get_update())], {room: 2000}) == set()
        before = doc.get_state()
        code.insert(0, "old holder ")
        stale = doc.get_update(before)
        assert await store.append([(room, stale)], {room: 1000}) == {room}
        assert await _stored_text(server, room) == "new holder"
        assert await store.append([(room, stale)], {room: 2000}) == set()
        assert await _stored_text(server, room) == "old holder new holder"


async def test_one_batch_refuses_exactly_the_rooms_whose_fence_is_older(backend, tmp_path: Path):
    rooms = [f"fenced-{n}" for n in range(3)]
    async with live_server(backend_settings(backend, tmp_path)) as server:
        store = server.services.store
        doc: Doc = Doc()
        doc.get("code", type=Text).insert(0, "x")
        update = doc.get_update()
        assert await store.append([(r, update) for r in rooms], dict.fromkeys(rooms, 2000)) == set()
        # Older, the same, newer: only the older fence is refused, in one batch.
        fences = {rooms[0]: 1000, rooms[1]: 2000, rooms[2]: 3000}
        assert await store.append([(r, update) for r in rooms], fences) == {rooms[0]}
        # A room fenced for the first time is taken; an unfenced room in the batch is written.
        assert await store.append([("fresh", update), ("free", update)], {"fresh": 5}) == set()
        assert await store.append([(rooms[2], update)], {rooms[2]: 2500}) == {rooms[2]}
