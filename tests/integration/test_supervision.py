"""Background tasks cannot stop quietly, a hung Redis is an outage, restores keep their point.

Failures are injected in-process (a fold, the stream reader and publisher, the lease renewer,
a restore point's write) or by freezing a private redis-server with SIGSTOP.
"""

import asyncio
import base64
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Map, Text
from tests.conftest import RedisProcess
from tests.support import new_user

from pairpilot.errors import StorageError
from pairpilot.storage.versions import VersionKind
from pairpilot.sync import flusher as flusher_module
from pairpilot.sync.room import Room
from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


async def _readyz(server: LiveServer) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await client.get("/readyz")


async def _until_unready(server: LiveServer, reason: str, timeout: float = 10.0) -> None:
    """Poll /readyz until it answers 503 with ``reason``."""
    deadline = time.monotonic() + timeout
    while True:
        response = await _readyz(server)
        if response.status_code == 503 and reason in response.json()["reasons"]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"/readyz never said {reason}: {response.json()}")
        await asyncio.sleep(0.02)


async def _until_ready(server: LiveServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (response := await _readyz(server)).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"/readyz stayed unready: {response.json()}")
        await asyncio.sleep(0.02)


async def _stored_text(server: LiveServer, room_id: str) -> str:
    stored = await server.services.store.load(room_id)
    doc: Doc = Doc()
    content = stored.merged()
    if content is not None:
        doc.apply_update(content)
    return _text(doc)


def _settled(room: Room) -> bool:
    return not room.pending and not room.writing


async def test_an_exception_folding_a_batch_loses_nothing_and_the_flusher_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    failing = True
    rows_of = flusher_module.rows_of

    def broken_fold(updates: list[bytes]) -> list[bytes]:
        if failing:
            raise RuntimeError("injected: fold failed")
        return rows_of(updates)

    monkeypatch.setattr(flusher_module, "rows_of", broken_fold)
    async with live_server(quick_settings(tmp_path, idle_unload_ms=60_000)) as server:
        async with synced_client(await server.member_url("folds")) as doc:
            doc.get("code", type=Text).insert(0, "kept through a broken fold")
            await _until_unready(server, "task_down:flusher")
            room = server.services.registry.rooms["folds"]
            assert room.pending  # given back, not dropped
            failing = False
            await wait_until(lambda: _settled(room), what="the updates stored")
            await _until_ready(server)
            assert server.services.supervisor.restarts["flusher"] >= 1
        assert await _stored_text(server, "folds") == "kept through a broken fold"


@pytest.fixture
def two_redis_servers(redis_url: str, tmp_path: Path) -> tuple[str, Path, Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return redis_url, tmp_path / "a", tmp_path / "b"


async def test_an_exception_in_the_stream_reader_loses_nothing_and_the_reader_starts_again(
    two_redis_servers: tuple[str, Path, Path], tmp_path: Path
):
    redis_url, dir_a, dir_b = two_redis_servers
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    room_id = f"reader-{os.urandom(4).hex()}"
    settings = {"redis_url": redis_url, "database_url": database, "idle_unload_ms": 60_000}
    async with (
        live_server(quick_settings(dir_a, **settings)) as a,
        live_server(quick_settings(dir_b, **settings)) as b,
    ):
        token_url = await a.member_url(room_id, "Ada")
        async with (
            synced_client(token_url) as on_a,
            synced_client(await b.member_url(room_id, "Bo")) as on_b,
        ):
            on_a.get("code", type=Text).insert(0, "before. ")
            await wait_until(lambda: _text(on_b) == "before. ", what="the first relay")
            replica = b.services.registry.rooms[room_id]
            failing = True
            apply_remote = replica.apply_remote

            def broken_apply(frame: bytes, process: bytes = b"") -> None:
                if failing:
                    raise RuntimeError("injected: the reader failed on an entry")
                apply_remote(frame, process)

            replica.apply_remote = broken_apply  # type: ignore[method-assign]
            on_a.get("code", type=Text).insert(8, "while the reader fails")
            await _until_unready(b, "task_down:stream-reader")
            failing = False
            want = "before. while the reader fails"
            await wait_until(lambda: _text(on_b) == want, what="the entry after the restart")
            await _until_ready(b)
            assert b.services.supervisor.restarts["stream-reader"] >= 1


async def test_an_exception_in_the_lease_renewer_loses_nothing_and_it_starts_again(
    redis_url: str, tmp_path: Path
):
    settings = quick_settings(tmp_path, redis_url=redis_url, idle_unload_ms=60_000)
    room_id = f"leases-{os.urandom(4).hex()}"
    async with live_server(settings) as server:
        leases = server.services.bus._leases  # type: ignore[attr-defined]
        keep = leases.keep
        failing = True

        async def broken_keep(room_ids: list[str], *args: Any) -> Any:
            if failing:
                raise RuntimeError("injected: the lease renewer failed")
            return await keep(room_ids, *args)

        leases.keep = broken_keep
        async with synced_client(await server.member_url(room_id)) as doc:
            doc.get("code", type=Text).insert(0, "stored once the leases are kept again")
            await _until_unready(server, "task_down:lease-renewer")
            failing = False
            room = server.services.registry.rooms[room_id]
            await wait_until(
                lambda: room_id in leases.held and _settled(room), what="the lease and a write"
            )
            await _until_ready(server)
        assert await _stored_text(server, room_id) == "stored once the leases are kept again"


async def test_a_frozen_redis_is_an_outage_loads_and_unloads_return_and_rooms_recover(
    private_redis: tuple[str, RedisProcess], tmp_path: Path
):
    url, redis = private_redis
    assert redis.process is not None
    settings = quick_settings(tmp_path, redis_url=url, idle_unload_ms=200)
    async with live_server(settings) as server:
        async with synced_client(await server.member_url("frozen")) as doc:
            doc.get("code", type=Text).insert(0, "typed before the freeze")
            room = server.services.registry.rooms["frozen"]
            await wait_until(lambda: _settled(room), what="the first write")
        other_url = await server.member_url("opened-while-frozen")
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            async with synced_client(other_url) as other:  # a load: its catch-up times out
                other.get("code", type=Text).insert(0, "typed during the freeze")
                # The bus's read timeout is 2 s (redis-py's default of 5 s is what it had).
                assert time.monotonic() - started < 4
            # Both rooms unload within their timeouts (the lease cannot be asked for).
            await wait_until(
                lambda: not server.services.registry.rooms, timeout=8, what="the unloads"
            )
            assert server.services.bus.down  # type: ignore[attr-defined]
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        await wait_until(
            lambda: not server.services.bus.down,  # type: ignore[attr-defined]
            timeout=15,
            what="the bus back",
        )
        await _until_ready(server)
        async with synced_client(await server.member_url("frozen")) as doc:
            assert _text(doc) == "typed before the freeze"
            doc.get("code", type=Text).insert(0, "after. ")
            room = server.services.registry.rooms["frozen"]
            await wait_until(lambda: _settled(room) and room.id in _held(server))
        assert await _stored_text(server, "opened-while-frozen") == "typed during the freeze"
        assert await _stored_text(server, "frozen") == "after. typed before the freeze"


def _held(server: LiveServer) -> dict[str, Any]:
    held: dict[str, Any] = server.services.bus._leases.held  # type: ignore[attr-defined]
    return held


async def _restore_setup(server: LiveServer, room: str) -> tuple[Any, dict[str, Any]]:
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    doc: Doc = Doc()
    doc.get("files", type=Map)["a.py"] = Text("v1\n")
    body = {"snapshot_b64": base64.b64encode(doc.get_update()).decode()}
    assert (await ada.call("POST", f"/api/rooms/{room}/snapshot", json=body)).status_code == 200
    version = (await ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "v1"})).json()
    doc.get("files", type=Map)["a.py"].insert(0, "edited ")
    body = {"snapshot_b64": base64.b64encode(doc.get_update()).decode()}
    assert (await ada.call("POST", f"/api/rooms/{room}/snapshot", json=body)).status_code == 200
    return ada, version


async def _files(server: LiveServer, room: str) -> dict[str, str]:
    live = server.services.registry.rooms[room].doc
    return {name: str(text) for name, text in live.get("files", type=Map).items()}


async def test_a_restore_whose_restore_point_cannot_be_written_is_refused(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
):
    ada, version = await _restore_setup(server, "no-point")
    directory = server.services.directory
    add_version = directory.add_version

    async def failing_add(room_id: str, identity: object, kind: VersionKind, *args: Any) -> Any:
        if kind is VersionKind.RESTORE:
            raise StorageError("injected: the restore point's write failed")
        return await add_version(room_id, identity, kind, *args)

    monkeypatch.setattr(directory, "add_version", failing_add)
    async with synced_client(server.ws_url("no-point", ada.token)):  # keeps the room live
        response = await ada.call("POST", f"/api/rooms/no-point/versions/{version['id']}/restore")
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "storage_unavailable"
        assert await _files(server, "no-point") == {"a.py": "edited v1\n"}


async def test_a_restore_refuses_when_edits_keep_landing_during_its_restore_point(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
):
    """The restore point must hold exactly the state the restore replaces."""
    ada, version = await _restore_setup(server, "busy")
    directory = server.services.directory
    add_version = directory.add_version
    points: list[int] = []

    async def add_while_editing(
        room_id: str, identity: object, kind: VersionKind, *args: Any
    ) -> Any:
        made = await add_version(room_id, identity, kind, *args)
        if kind is VersionKind.RESTORE:  # someone types while the point is written
            points.append(made.id)
            room = server.services.registry.rooms[room_id]
            edit: Doc = Doc()
            edit.apply_update(room.doc.get_update())
            edit.get("files", type=Map)["a.py"].insert(0, "x")
            room.apply_update(edit.get_update(room.doc.get_state()))
        return made

    monkeypatch.setattr(directory, "add_version", add_while_editing)
    async with synced_client(server.ws_url("busy", ada.token)):
        response = await ada.call("POST", f"/api/rooms/busy/versions/{version['id']}/restore")
        assert response.status_code == 503, response.text
        files = await _files(server, "busy")
        assert files["a.py"].endswith("edited v1\n")  # not restored
        assert files["a.py"] != "v1\n"
    assert points  # the tries were made


async def test_an_exception_in_the_stream_publisher_loses_nothing_and_it_starts_again(
    two_redis_servers: tuple[str, Path, Path], tmp_path: Path
):
    """A publisher pass that fails leaves its frames queued: the restarted publisher sends
    them, and the other process's socket gets the edit made while it was down."""
    redis_url, dir_a, dir_b = two_redis_servers
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    room_id = f"publisher-{os.urandom(4).hex()}"
    settings = {"redis_url": redis_url, "database_url": database, "idle_unload_ms": 60_000}
    async with (
        live_server(quick_settings(dir_a, **settings)) as a,
        live_server(quick_settings(dir_b, **settings)) as b,
    ):
        async with (
            synced_client(await a.member_url(room_id, "Ada")) as on_a,
            synced_client(await b.member_url(room_id, "Bo")) as on_b,
        ):
            on_a.get("code", type=Text).insert(0, "before. ")
            await wait_until(lambda: _text(on_b) == "before. ", what="the first relay")
            bus_a = a.services.bus
            append = bus_a._append_outbox  # type: ignore[attr-defined]
            failing = True

            async def broken_append() -> None:
                if failing:
                    raise RuntimeError("injected: the publisher failed")
                await append()

            bus_a._append_outbox = broken_append  # type: ignore[attr-defined]
            on_a.get("code", type=Text).insert(8, "while the publisher fails")
            await _until_unready(a, "task_down:stream-publisher")
            failing = False
            want = "before. while the publisher fails"
            await wait_until(lambda: _text(on_b) == want, what="the queued frame after the restart")
            await _until_ready(a)
            assert a.services.supervisor.restarts["stream-publisher"] >= 1
