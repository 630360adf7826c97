"""One persister per room across processes: a lease in Redis, fenced in the database."""

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pycrdt import Doc, Text
from tests.conftest import backend_settings
from websockets.asyncio.client import connect

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


async def test_exactly_one_process_holds_a_rooms_lease_and_the_other_takes_over(
    tmp_path: Path, redis_url, room
):
    settings = quick_settings(tmp_path, redis_url=redis_url)
    async with AsyncExitStack() as on_a, AsyncExitStack() as on_b:
        a = await on_a.enter_async_context(live_server(settings))
        b = await on_b.enter_async_context(live_server(settings))
        # Plain sockets: pycrdt's Provider holds a cancel scope, which must close in order.
        await on_a.enter_async_context(connect(await a.member_url(room), compression=None))
        await on_b.enter_async_context(connect(await b.member_url(room), compression=None))
        await wait_until(lambda: _holds(a, room) or _holds(b, room), what="a holder")
        await asyncio.sleep(2.5)  # a few renewals later: still exactly one
        assert _holds(a, room) != _holds(b, room)
        (holder, holder_stack), (other, _) = (
            ((a, on_a), (b, on_b)) if _holds(a, room) else ((b, on_b), (a, on_a))
        )
        await holder_stack.aclose()  # its client leaves, the holder stops and releases
        started = time.monotonic()
        await wait_until(lambda: _holds(other, room), timeout=8, what="the other to take over")
        assert time.monotonic() - started < 3  # released, not expired: taken at the next renewal
        del holder


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
        async with synced_client(await a.member_url(room)) as on_a:
            await asyncio.sleep(1.5)  # A takes the lease first
            async with live_server(quick_settings(tmp_path, redis_url=redis_url)) as b:
                async with synced_client(await b.member_url(room)) as on_b:
                    on_a.get("code", type=Text).insert(0, "typed on A")
                    await wait_until(lambda: str(on_b.get("code", type=Text)) == "typed on A")
                    await asyncio.sleep(1.5)
                    assert not _holds(b, room)
                    assert await _stored_text(b, room) == ""
                    a.kill()
                    await wait_until(lambda: _holds(b, room), timeout=10, what="B takes over")
                    await wait_until(lambda: not b.services.registry.rooms[room].pending)
                    for _ in range(50):
                        if await _stored_text(b, room) == "typed on A":
                            break
                        await asyncio.sleep(0.1)
                    assert await _stored_text(b, room) == "typed on A"
    finally:
        a.kill()


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
