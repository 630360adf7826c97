"""Version history over the API, on SQLite and PostgreSQL: checkpoints, names, restore, pages."""

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text
from tests.conftest import backend_settings
from tests.support import User, new_user

from pairpilot.testing import LiveServer, live_server, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _files_update(files: dict[str, str], base: Doc | None = None) -> str:
    doc: Doc = base if base is not None else Doc()
    target = doc.get("files", type=Map)
    for name, text in files.items():
        target[name] = Text(text)
    return base64.b64encode(doc.get_update()).decode()


async def _put_files(user: User, room: str, files: dict[str, str]) -> None:
    response = await user.call(
        "POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": _files_update(files)}
    )
    assert response.status_code == 200, response.text


async def _versions(user: User, room: str, **params: object) -> dict:
    response = await user.call("GET", f"/api/rooms/{room}/versions", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _detail(user: User, room: str, version_id: int) -> dict:
    response = await user.call("GET", f"/api/rooms/{room}/versions/{version_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def _current_files(user: User, room: str) -> dict[str, str]:
    response = await user.call("GET", f"/api/rooms/{room}/snapshot")
    doc: Doc = Doc()
    if response.json()["snapshot_b64"]:
        doc.apply_update(base64.b64decode(response.json()["snapshot_b64"]))
    return {name: str(text) for name, text in doc.get("files", type=Map).items()}


async def _owner(server: LiveServer, room: str) -> User:
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    return ada


async def _name(user: User, room: str, name: str) -> dict:
    response = await user.call("POST", f"/api/rooms/{room}/versions", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_unloaded_room_leaves_an_automatic_version_of_its_files(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"main.py": "print('hi')\n"})
    await wait_until(lambda: room not in api_server.services.registry.rooms, what="unload")
    page = await _versions(ada, room)
    assert [v["kind"] for v in page["versions"]] == ["auto"]
    assert page["next_before"] is None
    detail = await _detail(ada, room, page["versions"][0]["id"])
    assert detail["files"] == {"main.py": "print('hi')\n"}
    assert detail["author_id"] is None
    assert detail["size_bytes"] == len(base64.b64decode(detail["snapshot_b64"]))


async def test_a_room_that_keeps_changing_is_checkpointed_at_compaction_while_live(
    backend: pytest.FixtureRequest, tmp_path: Path, room: str
):
    settings = backend_settings(
        backend, tmp_path, version_min_s=1, idle_unload_ms=60_000, compact_min_bytes=1
    )
    async with live_server(settings) as server:
        ada = await _owner(server, room)
        async with synced_client(server.ws_url(room, ada.token)) as doc:
            files = doc.get("files", type=Map)
            files["a.py"] = Text("first\n")
            await wait_until(lambda: not server.services.registry.rooms[room].pending)
            await wait_until(
                lambda: (
                    server.services.registry.rooms[room].versioned_at + 1.05
                    < datetime.now(UTC).timestamp()
                ),
                what="the version interval",
            )
            files["a.py"].insert(len(files["a.py"]), "second\n")
            for _ in range(200):
                page = await _versions(ada, room)
                if page["versions"]:
                    break
                await asyncio.sleep(0.05)
            assert room in server.services.registry.rooms  # still live: no unload did this
            detail = await _detail(ada, room, page["versions"][0]["id"])
            assert detail["kind"] == "auto"
            assert detail["files"] == {"a.py": "first\nsecond\n"}


async def test_an_editor_names_the_current_state_and_reads_it_back(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"a.py": "alpha\n", "b.py": "beta\n"})
    named = await _name(ada, room, "  before refactor ")
    assert named["kind"] == "named"
    assert named["name"] == "before refactor"
    assert named["author_id"] == ada.id
    assert named["author_name"] == "Ada"
    detail = await _detail(ada, room, named["id"])
    assert detail["files"] == {"a.py": "alpha\n", "b.py": "beta\n"}


async def test_restore_brings_back_deleted_files_and_removes_added_ones(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"keep.py": "v1\n", "gone.py": "bring me back\n"})
    v1 = await _name(ada, room, "v1")
    async with synced_client(api_server.ws_url(room, ada.token)) as doc:
        files = doc.get("files", type=Map)
        with doc.transaction():
            del files["gone.py"]
            files["keep.py"].insert(0, "edited ")
            files["new.py"] = Text("added later\n")
        await wait_until(lambda: not api_server.services.registry.rooms[room].pending)
        response = await ada.call("POST", f"/api/rooms/{room}/versions/{v1['id']}/restore")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["restored"]["id"] == v1["id"]
        assert body["backup"]["kind"] == "restore"
        assert body["backup"]["name"] == "Before restoring “v1”"
        want = {"keep.py": "v1\n", "gone.py": "bring me back\n"}
        await wait_until(
            lambda: {n: str(t) for n, t in files.items()} == want, what="the live client"
        )
        note = doc.get("history", type=Map)["lastRestore"]
        assert note["version_id"] == v1["id"]
        assert note["by_id"] == ada.id
        assert note["by_name"] == "Ada"
        assert note["backup_version_id"] == body["backup"]["id"]
    assert await _current_files(ada, room) == want
    backup = await _detail(ada, room, body["backup"]["id"])
    assert backup["files"] == {"keep.py": "edited v1\n", "new.py": "added later\n"}


async def test_restoring_the_restore_point_undoes_a_restore(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"a.py": "old\n"})
    old = await _name(ada, room, "old")
    await _put_files(ada, room, {"b.py": "new file\n"})  # a merge: a.py stays, b.py comes
    before = await _current_files(ada, room)
    assert before == {"a.py": "old\n", "b.py": "new file\n"}
    restored = (await ada.call("POST", f"/api/rooms/{room}/versions/{old['id']}/restore")).json()
    assert await _current_files(ada, room) == {"a.py": "old\n"}
    undo = await ada.call("POST", f"/api/rooms/{room}/versions/{restored['backup']['id']}/restore")
    assert undo.status_code == 200, undo.text
    assert await _current_files(ada, room) == before


async def test_versions_are_listed_newest_first_in_pages(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"a.py": "x"})
    made = [(await _name(ada, room, f"v{i}"))["id"] for i in range(5)]
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"before": before} if before else {})
        page = await _versions(ada, room, **params)
        pages += 1
        seen += [v["id"] for v in page["versions"] if v["kind"] == "named"]
        before = page["next_before"]
        if before is None:
            break
    assert seen == sorted(made, reverse=True)
    assert pages >= 3
    bad = await ada.call("GET", f"/api/rooms/{room}/versions", params={"limit": 0})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_request"


async def test_automatic_versions_are_thinned_by_age_and_named_ones_kept(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    store = api_server.services.store
    now = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    ages = {
        "100 days": timedelta(days=100),
        "30 days a": timedelta(days=30, hours=2),
        "30 days b": timedelta(days=30, hours=1),
        "3 days a": timedelta(days=3, minutes=20),
        "3 days b": timedelta(days=3, minutes=10),
        "2 hours a": timedelta(hours=2, minutes=10),
        "2 hours b": timedelta(hours=2),
    }
    api_server.services.directory.clock = lambda: now - timedelta(days=200)
    named = await _name(ada, room, "kept forever")
    content: Doc = Doc()
    for label, age in ages.items():
        content.get("files", type=Map)["f.py"] = Text(label)
        store.clock = lambda age=age: now - age
        await store.append([(room, content.get_update())])
        await store.compact(room, checkpoint=True)
    store.clock = lambda: now
    await store.append([(room, content.get_update())])
    await store.compact(room, checkpoint=True)
    versions = (await _versions(ada, room, limit=100))["versions"]
    autos = [v for v in versions if v["kind"] == "auto"]
    kept_ages = sorted(now - datetime.fromisoformat(v["created_at"]) for v in autos)
    # Within a day: all; within a week: one an hour; within 90 days: one a day; then none.
    assert kept_ages == [
        timedelta(0),
        timedelta(hours=2),
        timedelta(hours=2, minutes=10),
        timedelta(days=3, minutes=10),
        timedelta(days=30, hours=1),
    ]
    assert [v["id"] for v in versions if v["kind"] == "named"] == [named["id"]]


async def test_viewers_read_history_but_cannot_name_restore_or_upload(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"a.py": "x"})
    version = await _name(ada, room, "v")
    assert (
        await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "viewer"})
    ).status_code == 200
    viewer = await new_user(api_server.http_url, "Vic")
    await viewer.join(room)
    assert (await viewer.call("GET", f"/api/rooms/{room}/versions")).status_code == 200
    assert (
        await viewer.call("GET", f"/api/rooms/{room}/versions/{version['id']}")
    ).status_code == (200)
    assert (await viewer.call("GET", f"/api/rooms/{room}/export.zip")).status_code == 200
    writes = [
        ("POST", f"/api/rooms/{room}/versions", {"json": {"name": "mine"}}),
        ("POST", f"/api/rooms/{room}/versions/{version['id']}/restore", {}),
        ("POST", f"/api/rooms/{room}/files", {"json": {"files": [{"name": "a", "text": "b"}]}}),
        ("POST", f"/api/rooms/{room}/import.zip", {"content": b"PK"}),
    ]
    for method, path, extra in writes:
        response = await viewer.call(method, path, **extra)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "forbidden"
    assert await _current_files(ada, room) == {"a.py": "x"}


async def test_strangers_get_404_for_every_history_and_file_call(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    await _put_files(ada, room, {"a.py": "x"})
    version = await _name(ada, room, "v")
    eve = await new_user(api_server.http_url, "Eve")
    calls = [
        ("GET", f"/api/rooms/{room}/versions", {}),
        ("GET", f"/api/rooms/{room}/versions/{version['id']}", {}),
        ("POST", f"/api/rooms/{room}/versions", {"json": {"name": "mine"}}),
        ("POST", f"/api/rooms/{room}/versions/{version['id']}/restore", {}),
        ("GET", f"/api/rooms/{room}/export.zip", {}),
        ("POST", f"/api/rooms/{room}/files", {"json": {"files": [{"name": "a", "text": "b"}]}}),
        ("POST", f"/api/rooms/{room}/import.zip", {"content": b"PK"}),
    ]
    for method, path, extra in calls:
        response = await eve.call(method, path, **extra)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"] == "not_found"


async def test_a_version_of_another_room_is_not_found(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    other = f"{room}-other"
    await ada.join(other)
    await _put_files(ada, other, {"a.py": "x"})
    version = await _name(ada, other, "theirs")
    for method in ("GET", "POST"):
        suffix = "" if method == "GET" else "/restore"
        response = await ada.call(method, f"/api/rooms/{room}/versions/{version['id']}{suffix}")
        assert response.status_code == 404, response.text
