"""GET and POST snapshot: live state, stored state, CRDT merge, bad and oversized input."""

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pycrdt import Doc, Text
from tests.support import User, new_user

from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until
from pairpilot.web.errors import install_error_handlers
from pairpilot.web.schemas import SnapshotIn

pytestmark = pytest.mark.anyio


def _b64(update: bytes) -> str:
    return base64.b64encode(update).decode()


def _doc_from(snapshot_b64: str | None) -> Doc:
    doc: Doc = Doc()
    if snapshot_b64:
        doc.apply_update(base64.b64decode(snapshot_b64))
    return doc


def _text(doc: Doc, name: str = "code") -> str:
    return str(doc.get(name, type=Text))


async def _snapshot(user: User, room: str) -> dict[str, object]:
    response = await user.call("GET", f"/api/rooms/{room}/snapshot")
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_new_room_has_a_null_snapshot(api_server: LiveServer, room: str):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    body = await _snapshot(ada, room)
    assert body == {"room_id": room, "snapshot_b64": None, "updated_at": None}


async def test_two_divergent_offline_copies_posted_one_after_the_other_both_survive(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    base: Doc = Doc()
    base["code"] = Text("shared start\n")
    assert (
        await ada.call(
            "POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": _b64(base.get_update())}
        )
    ).status_code == 200
    # Two people take the same state offline and edit it differently.
    laptop, desktop = _doc_from(_b64(base.get_update())), _doc_from(_b64(base.get_update()))
    laptop.get("code", type=Text).insert(0, "from the laptop\n")
    desktop.get("code", type=Text).insert(len(_text(desktop)), "from the desktop\n")
    for copy in (laptop, desktop):
        response = await ada.call(
            "POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": _b64(copy.get_update())}
        )
        assert response.status_code == 200
    merged = _text(_doc_from((await _snapshot(ada, room))["snapshot_b64"]))  # type: ignore[arg-type]
    assert "from the laptop\n" in merged
    assert "from the desktop\n" in merged
    assert "shared start\n" in merged


async def test_a_post_reaches_connected_clients_at_once(api_server: LiveServer, room: str):
    async with synced_client(await api_server.member_url(room)) as live:
        editor = await new_user(api_server.http_url)
        await editor.join(room)
        patch: Doc = Doc()
        patch["code"] = Text("pushed over REST")
        response = await editor.call(
            "POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": _b64(patch.get_update())}
        )
        assert response.json()["live"] is True
        await wait_until(lambda: _text(live) == "pushed over REST")


async def test_get_returns_the_live_state_when_open_and_the_stored_one_after_unload(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    async with synced_client(api_server.ws_url(room, ada.token)) as doc:
        doc.get("code", type=Text).insert(0, "typed live")
        await wait_until(lambda: room in api_server.services.registry.rooms)
        room_doc = api_server.services.registry.rooms[room].doc
        await wait_until(lambda: _text(room_doc) == "typed live")
        live = await _snapshot(ada, room)
        assert _text(_doc_from(live["snapshot_b64"])) == "typed live"  # type: ignore[arg-type]
        assert live["updated_at"]
    await wait_until(lambda: room not in api_server.services.registry.rooms, what="unload")
    stored = await _snapshot(ada, room)
    assert _text(_doc_from(stored["snapshot_b64"])) == "typed live"  # type: ignore[arg-type]
    assert stored["updated_at"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"snapshot_b64": "%%% not base64 %%%"}, "bad_request"),
        ({"snapshot_b64": _b64(b"\x01\x02\x03 not a yjs update")}, "bad_request"),
        ({"snapshot_b64": ""}, "bad_request"),
        ({"snapshot": "AAA="}, "bad_request"),
    ],
)
async def test_bad_snapshots_are_400_and_change_nothing(api_server, room, body, error):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    response = await ada.call("POST", f"/api/rooms/{room}/snapshot", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert (await _snapshot(ada, room))["snapshot_b64"] is None


async def test_a_viewer_cannot_post_a_snapshot(api_server: LiveServer, room: str):
    ada, vic = await new_user(api_server.http_url), await new_user(api_server.http_url)
    await ada.join(room)
    await vic.join(room)
    await ada.call("PUT", f"/api/rooms/{room}/members/{vic.id}", json={"role": "viewer"})
    doc: Doc = Doc()
    doc["code"] = Text("viewer's")
    response = await vic.call(
        "POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": _b64(doc.get_update())}
    )
    assert response.status_code == 403
    assert (await _snapshot(vic, room))["snapshot_b64"] is None


async def test_oversized_snapshots_are_413(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, max_message_bytes=4096)) as server:
        ada = await new_user(server.http_url)
        await ada.join("big")
        doc: Doc = Doc()
        doc["code"] = Text("z" * 5000)
        encoded = {"snapshot_b64": _b64(doc.get_update())}
        response = await ada.call("POST", "/api/rooms/big/snapshot", json=encoded)
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        huge = {"snapshot_b64": "A" * 100_000}
        response = await ada.call("POST", "/api/rooms/big/snapshot", json=huge)
        assert response.status_code == 413


async def test_a_duplicated_post_is_idempotent(api_server: LiveServer, room: str):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    doc: Doc = Doc()
    doc["code"] = Text("once")
    body = {"snapshot_b64": _b64(doc.get_update())}
    await asyncio.gather(
        *(ada.call("POST", f"/api/rooms/{room}/snapshot", json=body) for _ in range(3))
    )
    assert _text(_doc_from((await _snapshot(ada, room))["snapshot_b64"])) == "once"  # type: ignore[arg-type]


async def test_a_big_snapshot_is_cut_to_what_the_room_lacks_before_it_is_applied(
    api_server: LiveServer, room: str
):
    """pycrdt holds the GIL while it applies an update: a big snapshot is diffed against the
    live room in the merge worker, so posting the same 15 MiB again costs the event loop (and
    every other room) nothing, and the quota counts only what is new."""
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    merger = api_server.services.store.merger
    doc: Doc = Doc()
    doc["code"] = Text("b" * (merger.offload_min_bytes + 1000))
    body = {"snapshot_b64": _b64(doc.get_update())}
    offloaded = merger.offloaded
    # A connected peer keeps the room live between the posts (and sees what was applied).
    async with synced_client(await api_server.member_url(room, "Watcher")) as watcher:
        answer = await ada.call("POST", f"/api/rooms/{room}/snapshot", json=body)
        assert answer.status_code == 200
        await wait_until(lambda: _text(watcher) == str(doc["code"]), what="the snapshot relayed")
        live = api_server.services.registry.rooms[room]
        size = live.quota.size
        answer = await ada.call("POST", f"/api/rooms/{room}/snapshot", json=body)
        assert (answer.status_code, answer.json()["live"]) == (200, True)
        assert api_server.services.registry.rooms[room] is live
        assert live.quota.size == size  # nothing new was applied
        assert merger.offloaded >= offloaded + 2  # both diffs ran in the worker
        garbage = {"snapshot_b64": _b64(b"\x05" * (merger.offload_min_bytes + 1000))}
        answer = await ada.call("POST", f"/api/rooms/{room}/snapshot", json=garbage)
        assert (answer.status_code, answer.json()["error"]) == (400, "bad_request")
        assert _text(watcher) == str(doc["code"])


def _fastapi_reads_snapshot_in() -> FastAPI:
    """``SnapshotIn`` read by FastAPI itself, as the route read its body before the merge
    worker did: the wording every refusal must keep."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/snapshot")
    async def snapshot(body: SnapshotIn) -> dict[str, str]:
        return {"snapshot_b64": body.snapshot_b64}

    return app


BODIES = [
    (b"", "application/json"),
    (b'{"snapshot_b64": "AAA="}', None),
    (b'{"snapshot_b64": "AAA="}', "text/plain"),
    (b"{not json", "application/json"),
    (b"\xff\xfe\xfd", "application/json"),
    (b"[" * 100_000, "application/json"),
    (b"null", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"text"', "application/json"),
    (b"{}", "application/json"),
    (b'{"snapshot_b64": 5}', "application/json"),
    (b'{"snapshot_b64": null}', "application/json"),
    (b'{"snapshot_b64": ""}', "application/json"),
    (b'{"snapshot_b64": "AAA=", "more": 1}', "application/vnd.api+json; charset=utf-8"),
]


async def test_a_snapshot_body_is_read_as_fastapi_reads_it_here_and_in_the_merge_worker(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    merger = api_server.services.store.merger
    reference = httpx.AsyncClient(
        transport=httpx.ASGITransport(_fastapi_reads_snapshot_in()), base_url="http://reference"
    )
    async with reference:
        for body, content_type in BODIES:
            headers = {"Content-Type": content_type} if content_type else {}
            expected = await reference.post("/snapshot", content=body, headers=headers)
            for offload_min_bytes in (1 << 40, 0):  # here, then in the worker
                merger.offload_min_bytes = offload_min_bytes
                path = f"/api/rooms/{room}/snapshot"
                offloaded = merger.offloaded
                answer = await ada.call("POST", path, content=body, headers=headers)
                where = (body[:40], content_type, offload_min_bytes)
                assert merger.offloaded == offloaded + (offload_min_bytes == 0), where
                assert answer.status_code == expected.status_code, (where, answer.text)
                if expected.status_code != 200:
                    assert answer.json() == expected.json(), where
    assert (await _snapshot(ada, room))["snapshot_b64"] is None


async def test_a_big_live_rooms_snapshot_is_made_by_the_worker_and_answers_the_same(
    api_server: LiveServer, room: str
):
    """Encoding a big live document, its base64 and JSON held the event loop: the room is
    flushed and the worker reads and encodes what is stored, the answer's fields the same."""
    ada = await new_user(api_server.http_url)
    await ada.join(room)
    merger = api_server.services.store.merger
    async with synced_client(api_server.ws_url(room, ada.token)) as doc:
        doc.get("code", type=Text).insert(0, "x" * 300_000)  # past the worker's threshold
        await wait_until(lambda: room in api_server.services.registry.rooms)
        live = api_server.services.registry.rooms[room]
        await wait_until(lambda: len(_text(live.doc)) == 300_000, what="the text on the server")
        answers = []
        for offload_min_bytes in (1 << 40, merger.offload_min_bytes):  # the loop, the worker
            merger.offload_min_bytes = offload_min_bytes
            offloaded = merger.offloaded
            answers.append((await _snapshot(ada, room), merger.offloaded > offloaded))
    (here, in_worker_here), (there, in_worker) = answers
    assert (in_worker_here, in_worker) == (False, True)
    assert here.keys() == there.keys()
    assert (here["room_id"], here["updated_at"]) == (there["room_id"], there["updated_at"])
    assert _text(_doc_from(there["snapshot_b64"])) == "x" * 300_000  # type: ignore[arg-type]
