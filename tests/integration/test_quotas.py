"""The document quota, the connection limits and the files limit, seen from the client's side.

A room's size is the length of its encoded state; an update that inserts is admitted when that
size plus the update's length is at most PAIRPILOT_ROOM_MAX_BYTES, and refused (close 4413,
or 413 room_full over REST) before it is applied, stored or relayed otherwise.
"""

import asyncio
import base64
import itertools
from pathlib import Path

import httpx
import pytest
from pycrdt import Doc, Text
from tests.support import User, new_user
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pairpilot.errors import StorageError
from pairpilot.sync import protocol, transfer
from pairpilot.sync.files import read_tree, texts_of
from pairpilot.testing import LiveServer, live_server, quick_settings, wait_until

pytestmark = pytest.mark.anyio

QUOTA = 4096
EMPTY_SIZE = 2  # len(Y.encodeStateAsUpdate(new Y.Doc()))


_client_ids = itertools.count(1000)  # two-byte varints: an update's length is its content's


def insert_of_length(length: int, key: str = "t") -> bytes:
    """A Yjs update (one text insert by a new client) exactly ``length`` bytes long."""
    client_id = next(_client_ids)
    for chars in range(length, 0, -1):
        doc: Doc = Doc(client_id=client_id)
        doc.get(key, type=Text).insert(0, "x" * chars)
        update = doc.get_update()
        if len(update) == length:
            return update
    raise AssertionError(f"no single insert is {length} bytes long")


async def _synced(ws: ClientConnection) -> None:
    """Read until the server's sync step 1, then answer it (empty step 2): joined."""
    async with asyncio.timeout(10):
        while not (await ws.recv()).startswith(b"\x00\x00"):
            pass
    await ws.send(protocol.sync_step2(b"\x00\x00"))


async def _still_open(ws: ClientConnection) -> None:
    """The server still answers this socket: a sync step 1 gets its step 2."""
    await ws.send(protocol.sync_step1(b"\x00"))
    async with asyncio.timeout(10):
        while not (await ws.recv()).startswith(b"\x00\x01"):
            pass


async def _close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    async with asyncio.timeout(10):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


@pytest.fixture
async def quota_server(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, room_max_bytes=QUOTA)) as running:
        yield running


async def _member(server: LiveServer, room: str, name: str = "Ada") -> tuple[User, str]:
    user = await new_user(server.http_url, name)
    assert (await user.join(room)).status_code == 200
    return user, server.ws_url(room, user.token)


def _text(server: LiveServer, room: str) -> str:
    return str(server.services.registry.rooms[room].doc.get("t", type=Text))


async def test_an_update_that_fills_the_room_exactly_is_admitted(quota_server: LiveServer, room):
    _, url = await _member(quota_server, room)
    update = insert_of_length(QUOTA - EMPTY_SIZE)
    async with connect(url, compression=None) as ws:
        await _synced(ws)
        await ws.send(protocol.sync_update(update))
        await wait_until(
            lambda: room in quota_server.services.registry.rooms and _text(quota_server, room) != ""
        )
        await _still_open(ws)
    live = quota_server.services.registry.rooms[room]
    assert len(live.doc.get_update()) <= QUOTA


async def test_one_byte_over_the_quota_closes_4413_and_changes_nothing(
    quota_server: LiveServer, room
):
    _, url = await _member(quota_server, room)
    metrics = quota_server.services.metrics.refusals.labels("room_full")
    before = metrics._value.get()
    async with connect(url, compression=None) as ws:
        await _synced(ws)
        await ws.send(protocol.sync_update(insert_of_length(QUOTA - EMPTY_SIZE + 1)))
        code, reason = await _close_of(ws)
    assert code == 4413
    assert reason == "This room is full (2 bytes of 4 KB)"
    assert _text(quota_server, room) == ""
    assert metrics._value.get() == before + 1
    # Nothing was stored either: the room unloads empty, and loads empty.
    await wait_until(lambda: room not in quota_server.services.registry.rooms)
    stored = await quota_server.services.store.load(room)
    assert stored.merged() is None


async def test_other_sockets_of_a_full_room_carry_on(quota_server: LiveServer, room):
    _, url_a = await _member(quota_server, room, "Ada")
    _, url_b = await _member(quota_server, room, "Bob")
    async with connect(url_a, compression=None) as a, connect(url_b, compression=None) as b:
        await _synced(a)
        await _synced(b)
        await a.send(protocol.sync_update(insert_of_length(QUOTA)))
        assert (await _close_of(a))[0] == 4413
        small = insert_of_length(40, key="other")
        await b.send(protocol.sync_update(small))
        await wait_until(
            lambda: (
                str(quota_server.services.registry.rooms[room].doc.get("other", type=Text)) != ""
            )
        )
        await _still_open(b)


async def test_a_room_over_its_quota_loads_and_can_be_shrunk(tmp_path: Path, room):
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    text += "y" * 8000
    async with live_server(quick_settings(tmp_path)) as roomy:
        owner, url = await _member(roomy, room)
        async with connect(url, compression=None) as ws:
            await _synced(ws)
            await ws.send(protocol.sync_update(doc.get_update()))
            await wait_until(lambda: roomy.services.registry.rooms[room].pending == [])
        await wait_until(lambda: room not in roomy.services.registry.rooms)
    # The same data under a quota the room is already over.
    async with live_server(quick_settings(tmp_path, room_max_bytes=QUOTA)) as strict:
        url = strict.ws_url(room, owner.token)
        async with connect(url, compression=None) as ws:
            await _synced(ws)
            await wait_until(lambda: room in strict.services.registry.rooms)
            assert _text(strict, room) == "y" * 8000
            before = doc.get_state()
            text += "z"  # an insertion: refused
            await ws.send(protocol.sync_update(doc.get_update(before)))
            assert (await _close_of(ws))[0] == 4413
        async with connect(url, compression=None) as ws:
            await _synced(ws)
            local: Doc = Doc()
            local.apply_update(strict.services.registry.rooms[room].doc.get_update())
            before = local.get_state()
            del local.get("t", type=Text)[0:7000]  # deletions only: admitted
            await ws.send(protocol.sync_update(local.get_update(before)))
            await wait_until(lambda: _text(strict, room) == "y" * 1000)
        assert strict.services.registry.rooms[room].quota.measured() < QUOTA


async def test_rest_writes_past_the_quota_are_413_room_full(quota_server: LiveServer, room):
    owner, _ = await _member(quota_server, room)
    big = base64.b64encode(insert_of_length(QUOTA)).decode()
    answer = await owner.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": big})
    assert answer.status_code == 413
    assert answer.json()["error"] == "room_full"
    files = {"files": [{"name": "big.txt", "text": "b" * QUOTA}]}
    answer = await owner.call("POST", f"/api/rooms/{room}/files", json=files)
    assert (answer.status_code, answer.json()["error"]) == (413, "room_full")
    snapshot = await owner.call("GET", f"/api/rooms/{room}/snapshot")
    assert snapshot.json()["snapshot_b64"] is None


async def test_an_upload_into_a_full_room_is_refused_before_its_update_is_built(
    quota_server: LiveServer, room, monkeypatch: pytest.MonkeyPatch
):
    """Building an upload's update holds the GIL for as long as its texts take to insert: a
    loop of uploads into a full room would pay that each time only to be refused. Its texts'
    bytes are a lower bound of the update's length, checked first."""
    owner, _ = await _member(quota_server, room)
    half = {"files": [{"name": "half.txt", "text": "h" * (QUOTA // 2)}]}
    assert (await owner.call("POST", f"/api/rooms/{room}/files", json=half)).status_code == 200
    built: list[int] = []
    real = transfer.files_updates

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer, "files_updates", counted)
    files = {"files": [{"name": "more.txt", "text": "m" * (QUOTA // 2)}]}
    answer = await owner.call("POST", f"/api/rooms/{room}/files", json=files)
    assert (answer.status_code, answer.json()["error"]) == (413, "room_full")
    assert built == []  # refused on the texts' size, before the copy
    small = {"files": [{"name": "small.txt", "text": "s"}]}
    assert (await owner.call("POST", f"/api/rooms/{room}/files", json=small)).status_code == 200
    assert built == [1]


async def test_a_restore_past_the_quota_is_413_and_leaves_no_restore_point(tmp_path: Path, room):
    # The room stays live between the calls (the test edits the live document).
    settings = quick_settings(tmp_path, room_max_bytes=QUOTA, idle_unload_ms=60_000)
    async with live_server(settings) as server:
        owner, _ = await _member(server, room)
        files = {"files": [{"name": "a.txt", "text": "a" * 2500}]}
        assert (await owner.call("POST", f"/api/rooms/{room}/files", json=files)).status_code == 200
        named = await owner.call("POST", f"/api/rooms/{room}/versions", json={"name": "a"})
        version = named.json()["id"]
        # a.txt emptied and b.txt added: restoring "a" needs room for a.txt's text again.
        live = server.services.registry.rooms[room]
        before = live.doc.get_state()
        a_txt = read_tree(live.doc).ids_by_path()["a.txt"]  # uploads key files by id
        del texts_of(live.doc)[a_txt][0:2500]
        live.apply_update(live.doc.get_update(before))
        files = {"files": [{"name": "b.txt", "text": "b" * 2500}]}
        assert (await owner.call("POST", f"/api/rooms/{room}/files", json=files)).status_code == 200
        answer = await owner.call("POST", f"/api/rooms/{room}/versions/{version}/restore")
        assert (answer.status_code, answer.json()["error"]) == (413, "room_full")
        kinds = [
            v["kind"]
            for v in (await owner.call("GET", f"/api/rooms/{room}/versions")).json()["versions"]
        ]
        assert "restore" not in kinds


async def test_files_per_room_are_bounded(tmp_path: Path, room):
    async with live_server(quick_settings(tmp_path, room_max_files=3)) as server:
        owner, _ = await _member(server, room)
        two = {"files": [{"name": f"{n}.py", "text": "x"} for n in "ab"]}
        assert (await owner.call("POST", f"/api/rooms/{room}/files", json=two)).status_code == 200
        answer = await owner.call("POST", f"/api/rooms/{room}/files", json=two)
        assert answer.status_code == 413
        assert answer.json() == {
            "error": "room_full",
            "message": "A room holds at most 3 files: this one has 2, and 2 more would pass that",
        }


async def test_connections_past_the_room_limit_close_4503(tmp_path: Path, room):
    async with live_server(quick_settings(tmp_path, room_max_connections=2)) as server:
        urls = [(await _member(server, room, name))[1] for name in ("A", "B", "C")]
        async with connect(urls[0], compression=None) as a, connect(urls[1], compression=None) as b:
            await _synced(a)
            await _synced(b)
            async with connect(urls[2], compression=None) as c:
                code, reason = await _close_of(c)
            assert (code, reason) == (4503, "Room is full: 2 people are connected (the limit)")
        # Slots are given back: once they left, C gets in.
        await wait_until(
            lambda: (
                not server.services.registry.rooms.get(room, None)
                or not server.services.registry.rooms[room].sessions
            )
        )
        async with connect(urls[2], compression=None) as c:
            await _synced(c)


async def test_connections_past_the_user_limit_close_4503(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, user_max_connections=2)) as server:
        user = await new_user(server.http_url, "Ada")
        for room in ("r1", "r2", "r3"):
            assert (await user.join(room)).status_code == 200
        async with (
            connect(server.ws_url("r1", user.token), compression=None) as a,
            connect(server.ws_url("r2", user.token), compression=None) as b,
        ):
            await _synced(a)
            await _synced(b)
            async with connect(server.ws_url("r3", user.token), compression=None) as c:
                code, reason = await _close_of(c)
        assert (code, reason) == (4503, "Too many connections: you have 2 open (the limit)")
        other = await new_user(server.http_url, "Bob")
        assert (await other.join("r3")).status_code == 200
        async with connect(server.ws_url("r3", other.token), compression=None) as d:
            await _synced(d)


async def _type_until_closed(ws: ClientConnection) -> int:
    """Send 1,000-character edits until the server closes the socket; how many were sent."""
    client: Doc = Doc()
    text = client.get("t", type=Text)
    sent = 0
    async with asyncio.timeout(30):
        try:
            while True:
                before = client.get_state()
                text.insert(len(text), f"{sent:04d}" + "x" * 996)
                await ws.send(protocol.sync_update(client.get_update(before)))
                sent += 1
                await asyncio.sleep(0)  # lets the socket's reader see the close
        except ConnectionClosed:
            return sent


async def test_a_room_whose_storage_is_down_refuses_past_its_byte_bound_and_loses_nothing(
    tmp_path: Path,
):
    """Updates waiting for storage are bounded in bytes: past the bound a socket that keeps
    typing reads close 1013 (try again later), REST writes get 503 try_again_later and /readyz
    says storage_backlog; once storage is back every admitted edit is stored."""
    settings = quick_settings(tmp_path, room_max_pending_bytes=8192, idle_unload_ms=60_000)
    async with live_server(settings) as server:
        store = server.services.store
        append = store.append
        storage_down = True

        async def failing_append(*args, **kwargs):  # type: ignore[no-untyped-def]
            if storage_down:
                raise StorageError("injected: storage down")
            return await append(*args, **kwargs)

        store.append = failing_append  # type: ignore[method-assign]
        owner, url = await _member(server, "backlog")
        async with connect(url, compression=None) as ws:
            await _synced(ws)
            sent = await _type_until_closed(ws)
            code, reason = await _close_of(ws)
        assert (code, bool(reason)) == (1013, True)
        room = server.services.registry.rooms["backlog"]
        admitted = str(room.doc.get("t", type=Text))
        assert 8 <= len(admitted) // 1000 < sent  # some admitted, the rest refused
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert "storage_backlog" in ready.json()["reasons"]
        files = {"files": [{"name": "late.txt", "text": "late"}]}
        answer = await owner.call("POST", "/api/rooms/backlog/files", json=files)
        assert (answer.status_code, answer.json()["error"]) == (503, "try_again_later")

        storage_down = False
        await wait_until(lambda: not room.pending and not room.writing, what="the backlog stored")
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
        stored: Doc = Doc()
        stored.apply_update((await store.load("backlog")).merged() or b"\x00\x00")
        assert str(stored.get("t", type=Text)) == admitted


async def test_an_upload_that_needs_a_measure_is_measured_off_the_event_loop(tmp_path: Path, room):
    """The room's bound (its last measure plus every update since) overstates a room whose
    text was deleted. An upload that fits only the room's true size needs a measure: it is of
    the stored document (after a flush, in the merge worker when big), never an encoding of the
    live document on the event loop, which held every room 60-290 ms for a 32 MiB one."""
    settings = quick_settings(tmp_path, room_max_bytes=QUOTA, idle_unload_ms=60_000)
    async with live_server(settings) as server:
        owner, _ = await _member(server, room)
        files = {"files": [{"name": "a.txt", "text": "a" * 2500}]}
        assert (await owner.call("POST", f"/api/rooms/{room}/files", json=files)).status_code == 200
        live = server.services.registry.rooms[room]
        before = live.doc.get_state()
        del texts_of(live.doc)[read_tree(live.doc).ids_by_path()["a.txt"]][0:2500]
        live.apply_update(live.doc.get_update(before))  # relayed, stored, and counted
        assert live.quota.size + 2500 > QUOTA  # the bound alone would refuse b.txt
        measures = server.services.metrics.quota_measures
        files = {"files": [{"name": "b.txt", "text": "b" * 2500}]}
        answer = await owner.call("POST", f"/api/rooms/{room}/files", json=files)
        assert answer.status_code == 200, answer.text
        assert measures.labels("stored")._value.get() == 1
        assert measures.labels("live")._value.get() == 0
        # The bound came down to the measure plus the upload: still an upper bound.
        assert len(live.doc.get_update()) <= live.quota.size <= QUOTA
