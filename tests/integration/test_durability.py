"""Nothing typed is lost: flush, crash, restart, idle unload, storage failures."""

import asyncio
import gc
import random
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from pairpilot.errors import StorageError
from pairpilot.storage.schema import room_snapshots, room_updates
from pairpilot.sync import protocol
from pairpilot.testing import (
    LiveServer,
    ServerProcess,
    live_server,
    quick_settings,
    sign_in,
    synced_client,
    wait_until,
)
from pairpilot.web.services import Services

pytestmark = pytest.mark.anyio


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


async def _type(doc: Doc, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    text = doc.get("code", type=Text)
    for i in range(count):
        text.insert(rng.randint(0, len(text)), f"{i % 10}")
        await asyncio.sleep(0.001)


async def _log_rows(server: LiveServer, room_id: str) -> int:
    async with server.services.store.engine.connect() as conn:
        return int(
            await conn.scalar(sa.select(sa.func.count()).where(room_updates.c.room_id == room_id))
            or 0
        )


async def test_kill_9_after_the_flush_interval_loses_nothing(tmp_path: Path):
    process = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "200"})
    process.start()
    try:
        async with synced_client(await process.member_url("crash")) as doc:
            await _type(doc, 300, seed=7)
            typed = _text(doc).encode()
            await asyncio.sleep(0.2 + 0.3)  # the flush interval, and one write's worth
            process.kill()
        process.start()
        async with synced_client(await process.member_url("crash")) as fresh:
            await wait_until(lambda: _text(fresh).encode() == typed, what="restored text")
            assert _text(fresh).encode() == typed
    finally:
        process.kill()


async def test_graceful_shutdown_flushes_even_inside_the_interval(tmp_path: Path):
    process = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "60000"})
    process.start()
    try:
        async with synced_client(await process.member_url("term")) as doc:
            doc.get("code", type=Text).insert(0, "saved on SIGTERM")
            await asyncio.sleep(0.3)
        process.stop()
        process.start()
        async with synced_client(await process.member_url("term")) as fresh:
            await wait_until(lambda: _text(fresh) == "saved on SIGTERM")
    finally:
        process.kill()


async def test_a_request_that_never_finishes_does_not_hold_a_stop_up(tmp_path: Path):
    # An upload whose body never comes: uvicorn waits for open requests before the shutdown that
    # flushes the rooms; unbounded, SIGTERM never ended (`stop` waits 30 s, the bound is 10 s).
    process = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "60000"})
    process.start()
    try:
        async with synced_client(await process.member_url("held")) as doc:
            doc.get("code", type=Text).insert(0, "saved despite a stuck upload")
            async with synced_client(await process.member_url("held")) as seen:  # it arrived
                await wait_until(lambda: _text(seen) == "saved despite a stuck upload")
            token = await sign_in(process.http_url, "uploader")
            reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
            writer.write(
                b"POST /api/rooms/held/files HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"files": ['
            )
            await writer.drain()
            await asyncio.to_thread(process.stop)
            answer = await reader.read()  # to the end: the stop closed the connection
            assert not answer.startswith(b"HTTP/1.1 2"), answer  # cut or 500, never taken
            writer.close()
            await writer.wait_closed()
        process.start()
        async with synced_client(await process.member_url("held")) as fresh:
            await wait_until(lambda: _text(fresh) == "saved despite a stuck upload")
    finally:
        process.kill()


Stall = Callable[[Services], tuple[Any, str]]


async def _stop_while_stalled(tmp_path: Path, stall: Stall) -> list[str]:
    """Stop a server while a join is held inside ``stall``'s method; the rooms it got through.

    The method is released 1.5 s after the server begins to stop: long after a shutdown that
    does not wait for it has closed storage.
    """
    entered, release = asyncio.Event(), asyncio.Event()
    done: list[str] = []
    async with live_server(quick_settings(tmp_path)) as server:
        target, name = stall(server.services)
        original = getattr(target, name)

        async def stalled(room_id: str, *args: Any) -> Any:
            entered.set()
            await release.wait()
            result = await original(room_id, *args)
            done.append(room_id)
            return result

        setattr(target, name, stalled)
        ws = await connect(await server.member_url("stalled"), compression=None)
        await asyncio.wait_for(entered.wait(), 5)
        asyncio.get_running_loop().call_later(1.5, release.set)
    await ws.close()
    return done


async def test_a_server_stopping_mid_load_lets_the_load_finish_first(tmp_path: Path):
    # Storage closes right after the registry; a room load still reading then would open a
    # connection on the disposed engine and leave it unclosed.
    assert await _stop_while_stalled(tmp_path, lambda s: (s.store, "load")) == ["stalled"]


async def test_a_server_stopping_mid_join_lets_the_join_finish_first(tmp_path: Path):
    # A join reads memberships before the room loads: it too must be done before storage closes.
    assert await _stop_while_stalled(tmp_path, lambda s: (s.authorizer, "authorize")) == ["stalled"]


async def test_a_room_held_by_a_request_is_not_unloaded_under_it(server: LiveServer):
    # A request acquires the room while its idle unload is storing it, and changes it only after
    # awaiting something else (a restore writes its restore point first): the unload must leave
    # the room to it, or the change lands in a dropped room and is never stored.
    registry, flusher = server.services.registry, server.services.flusher
    author: Doc = Doc()
    author["code"] = code = Text("before")
    first = author.get_update()
    seen = author.get_state()
    code += " and after"
    room = await registry.acquire("held")
    room.apply_update(first)
    storing, stored = asyncio.Event(), asyncio.Event()
    flush_room = flusher.flush_room

    async def stalled_flush(target: Any) -> None:
        storing.set()
        await stored.wait()
        await flush_room(target)

    flusher.flush_room = stalled_flush  # type: ignore[method-assign]
    registry.release(room)  # idle: the unload starts after idle_unload_ms and stalls storing
    await asyncio.wait_for(storing.wait(), 10)
    held = await registry.acquire("held")  # the request takes the room mid-unload
    flusher.flush_room = flush_room  # type: ignore[method-assign]
    stored.set()
    await wait_until(lambda: not registry._unloading, what="the unload ended")
    held.apply_update(author.get_update(seen))  # the request's change, after its await
    registry.release(held)
    await wait_until(lambda: "held" not in registry.rooms, what="unload after the request")
    stored_room = await server.services.store.load("held")
    doc: Doc = Doc()
    doc.apply_update(stored_room.merged() or b"")
    assert _text(doc) == "before and after"


async def test_an_idle_room_is_flushed_compacted_and_unloaded(server: LiveServer):
    async with synced_client(await server.member_url("idle")) as doc:
        await _type(doc, 50)
        typed = _text(doc)
        room = server.services.registry.rooms["idle"]
        room_ref = weakref.ref(room)
        doc_ref = weakref.ref(room.doc)
        del room
    await wait_until(lambda: "idle" not in server.services.registry.rooms, what="unload")
    gc.collect()
    assert room_ref() is None
    assert doc_ref() is None
    assert await _log_rows(server, "idle") == 0
    async with server.services.store.engine.connect() as conn:
        assert await conn.scalar(
            sa.select(room_snapshots.c.snapshot_b64).where(room_snapshots.c.room_id == "idle")
        )
    async with synced_client(await server.member_url("idle")) as again:
        await wait_until(lambda: _text(again) == typed)


async def test_a_returning_client_cancels_the_unload(tmp_path: Path):
    # The idle timer is long, so the machine's speed cannot decide the outcome: what is checked
    # is that a client coming back cancels the timer its room's last leaver started.
    async with live_server(quick_settings(tmp_path, idle_unload_ms=60_000)) as server:
        registry = server.services.registry
        again = await server.member_url("back")
        async with synced_client(await server.member_url("back")) as doc:
            doc.get("code", type=Text).insert(0, "a")
            first = registry.rooms["back"]
        await wait_until(lambda: "back" in registry._idle, what="the idle timer")
        timer = registry._idle["back"]
        async with synced_client(again):
            assert timer.cancelled()
            assert "back" not in registry._idle
            assert registry.rooms["back"] is first
        await wait_until(lambda: "back" in registry._idle, what="the next idle timer")


async def test_concurrent_first_connects_load_the_room_once(server: LiveServer):
    store = server.services.store
    await store.append([("crowd", _update_with("seeded"))])
    original = store.load
    calls = 0

    async def counting_load(room_id: str):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # widen the window in which the connects overlap
        return await original(room_id)

    store.load = counting_load  # type: ignore[method-assign]
    urls = [await server.member_url("crowd") for _ in range(10)]
    sockets = await asyncio.gather(*(connect(url, compression=None) for url in urls))
    try:
        for ws in sockets:
            await ws.send(protocol.sync_step1(Doc().get_state()))
        for ws in sockets:
            doc: Doc = Doc()
            while True:
                message = protocol.decode_message(await ws.recv())  # type: ignore[arg-type]
                if isinstance(message, protocol.SyncStep2):
                    doc.apply_update(message.update)
                    break
            assert _text(doc) == "seeded"
        assert calls == 1
    finally:
        for ws in sockets:
            await ws.close()


def _update_with(content: str) -> bytes:
    doc: Doc = Doc()
    doc["code"] = Text(content)
    return doc.get_update()


async def test_a_storage_failure_never_stops_the_room_and_is_retried(server: LiveServer, caplog):
    store = server.services.store
    original = store.append
    failing = True

    async def flaky_append(batch):  # type: ignore[no-untyped-def]
        if failing:
            raise StorageError("disk on fire")
        return await original(batch)

    store.append = flaky_append  # type: ignore[method-assign]
    async with (
        synced_client(await server.member_url("flaky")) as a,
        synced_client(await server.member_url("flaky")) as b,
    ):
        a.get("code", type=Text).insert(0, "typed while the disk burns")
        await wait_until(lambda: _text(b) == "typed while the disk burns", what="live relay")
        await wait_until(lambda: server.services.flusher.failures >= 2, what="retries")
        assert any("flush failed" in str(r.msg) for r in caplog.records)
        assert await _log_rows(server, "flaky") == 0
        failing = False
        await wait_until(lambda: not server.services.registry.rooms["flaky"].pending)
    stored = await store.load("flaky")
    restored: Doc = Doc()
    for part in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
        restored.apply_update(part)
    assert _text(restored) == "typed while the disk burns"


async def test_the_log_is_compacted_once_it_outgrows_the_threshold(tmp_path: Path):
    settings = quick_settings(tmp_path, compact_min_bytes=2048, idle_unload_ms=60_000)
    async with (
        live_server(settings) as server,
        synced_client(await server.member_url("grow")) as doc,
    ):
        text = doc.get("code", type=Text)
        for _ in range(40):
            text.insert(len(text), "y" * 200)
            await asyncio.sleep(0.06)
        await wait_until(lambda: server.services.registry.rooms["grow"].snapshot_bytes > 0)
        room = server.services.registry.rooms["grow"]
        assert room.log_bytes < 2048 + 400
        stored = await server.services.store.load("grow")
        assert stored.snapshot is not None
        assert stored.log_bytes < 2048 + 400
