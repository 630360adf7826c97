"""Export a room as a zip, upload text files or a zip: paths, duplicates, limits, bad input."""

import base64
import io
import random
import string
import zipfile
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text
from tests.support import User, kill_the_process, new_user, zip_of

from pairpilot.sync.files import doc_of, read_files, read_tree
from pairpilot.sync.transfer import files_updates
from pairpilot.sync.tree import Tree
from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until
from pairpilot.web import transfer
from pairpilot.web.transfer import clean_path

pytestmark = pytest.mark.anyio


async def _owner(server: LiveServer, room: str) -> User:
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    return ada


async def _doc(user: User, room: str) -> Doc:
    body = (await user.call("GET", f"/api/rooms/{room}/snapshot")).json()
    return doc_of(base64.b64decode(body["snapshot_b64"]) if body["snapshot_b64"] else None)


async def _files(user: User, room: str) -> dict[str, str]:
    """Every file's text by the path the room shows it under."""
    return read_files(await _doc(user, room))


async def _tree(user: User, room: str) -> tuple[Tree, dict[str, str]]:
    doc = await _doc(user, room)
    return read_tree(doc), read_files(doc)


async def _upload_zip(user: User, room: str, data: bytes):
    return await user.call(
        "POST",
        f"/api/rooms/{room}/import.zip",
        content=data,
        headers={"Content-Type": "application/zip"},
    )


async def test_the_export_holds_every_file_byte_for_byte(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    doc: Doc = Doc()
    files = {"main.py": "print('héllo 🙂')\n", "notes.md": "# notes\r\nline\n", "empty.txt": ""}
    for name, text in files.items():
        doc.get("files", type=Map)[name] = Text(text)
    update = base64.b64encode(doc.get_update()).decode()
    await ada.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": update})
    response = await ada.call("GET", f"/api/rooms/{room}/export.zip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{room}.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == sorted(files)
        for name, text in files.items():
            assert archive.read(name) == text.encode("utf-8")


async def test_an_empty_room_exports_an_empty_zip(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    response = await ada.call("GET", f"/api/rooms/{room}/export.zip")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == []


async def test_uploaded_files_keep_their_paths_and_taken_ones_get_a_number(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    first = await ada.call(
        "POST", f"/api/rooms/{room}/files", json={"files": [{"name": "a.py", "text": "one\n"}]}
    )
    assert first.status_code == 200, first.text
    response = await ada.call(
        "POST",
        f"/api/rooms/{room}/files",
        json={
            "files": [
                {"name": "a.py", "text": "two\n"},
                {"name": "./src/utils/strings.py", "text": "def slug(): ...\n"},
                {"name": "dir\\sub\\b.js", "text": "b\n"},
                {"name": "a.py", "text": "three\n"},
                {"name": "src/utils/strings.py", "text": "again\n"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["files"] == [
        {"name": "a (2).py", "source": "a.py"},
        {"name": "src/utils/strings.py", "source": "./src/utils/strings.py"},
        {"name": "dir/sub/b.js", "source": "dir\\sub\\b.js"},
        {"name": "a (3).py", "source": "a.py"},
        {"name": "src/utils/strings (2).py", "source": "src/utils/strings.py"},
    ]
    assert await _files(ada, room) == {
        "a.py": "one\n",
        "a (2).py": "two\n",
        "src/utils/strings.py": "def slug(): ...\n",
        "dir/sub/b.js": "b\n",
        "a (3).py": "three\n",
        "src/utils/strings (2).py": "again\n",
    }


async def test_a_zip_upload_keeps_its_folders_and_skips_junk(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    data = zip_of(
        {
            "project/": b"",
            "project/main.py": "print('zip 🙂')\n".encode(),
            "project/lib/util.py": b"def f():\n    return 1\n",
            "project/lib/__init__.py": b"",
            "project/__init__.py": b"",
            "project/data/empty/": b"",
            "__MACOSX/project/._main.py": b"\x00\x05\x16\x07",
            "project/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    response = await _upload_zip(ada, room, data)
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["files"]] == [
        "project/main.py",
        "project/lib/util.py",
        "project/lib/__init__.py",
        "project/__init__.py",
    ]
    tree, files = await _tree(ada, room)
    assert files == {
        "project/__init__.py": "",
        "project/lib/__init__.py": "",
        "project/lib/util.py": "def f():\n    return 1\n",
        "project/main.py": "print('zip 🙂')\n",
    }
    assert tree.folders == ["project", "project/data", "project/data/empty", "project/lib"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not a zip", "not a zip archive"),
        (zip_of({"ok.py": b"x", "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"}), "image.png"),
        (zip_of({"..": b"x"}), "'..' would leave the room"),
        (zip_of({"ok.py": b"x", "../evil.py": b"x"}), "'../evil.py': '..' would leave the room"),
        (zip_of({"/etc/cron.d/x": b"x"}), "'/etc/cron.d/x': an absolute path"),
        (zip_of({"a/" * 512 + "b": b"x"}), "a path 1024"),
        (zip_of({}), "no files"),
    ],
)
async def test_a_bad_zip_is_refused_whole_with_a_reason(
    api_server: LiveServer, room: str, body: bytes, message: str
):
    ada = await _owner(api_server, room)
    response = await _upload_zip(ada, room, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert message in response.json()["message"]
    assert await _files(ada, room) == {}


async def test_binary_or_unnamed_json_files_are_refused(api_server: LiveServer, room: str):
    ada = await _owner(api_server, room)
    for file in ({"name": "x.bin", "text": "a\u0000b"}, {"name": " / ", "text": "x"}):
        response = await ada.call("POST", f"/api/rooms/{room}/files", json={"files": [file]})
        assert response.status_code == 400, response.text
    assert await _files(ada, room) == {}


async def test_uploads_over_their_limits_get_413_and_add_nothing(tmp_path: Path, room: str):
    settings = quick_settings(
        tmp_path, upload_max_files=3, upload_max_file_bytes=1000, upload_max_bytes=2500
    )
    async with live_server(settings) as server:
        ada = await _owner(server, room)
        too_many = {f"f{i}.py": b"x" for i in range(4)}
        too_big_file = {"big.py": b"y" * 1001}
        # A zip bomb in miniature: three entries that deflate to little and inflate past 2,500.
        too_big_total = {f"z{i}.py": b"z" * 999 for i in range(3)}
        reasons = ["too many files", "big.py is over 1000 bytes", "over its size limit"]
        for entries, reason in zip((too_many, too_big_file, too_big_total), reasons, strict=True):
            response = await _upload_zip(ada, room, zip_of(entries))
            assert response.status_code == 413, (list(entries), response.text)
            assert response.json()["error"] == "payload_too_large"
            assert reason in response.json()["message"]
        raw = await _upload_zip(ada, room, b"P" * 2501)
        assert raw.status_code == 413
        as_json = await ada.call(
            "POST", f"/api/rooms/{room}/files", json={"files": [{"name": "a", "text": "y" * 1001}]}
        )
        assert as_json.status_code == 413
        assert await _files(ada, room) == {}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../../etc/passwd", "'..' would leave the room"),
        ("src/../../x.py", "'..' would leave the room"),
        ("/etc/passwd", "an absolute path"),
        ("C:\\Users\\me\\x.py", "an absolute path"),
        ("a/b\x01c.py", "control characters"),
        ("bad\x00name.py", "control characters"),
        (" / ", "not a usable file name"),
        ("src/ spaced.py", "not a usable file name"),
        ("n" * 129, "at most 128 characters"),
    ],
)
async def test_each_bad_path_is_a_400_naming_it_and_adds_nothing(
    api_server: LiveServer, room: str, path: str, reason: str
):
    ada = await _owner(api_server, room)
    files = [{"name": "fine.py", "text": "x"}, {"name": path, "text": "x"}]
    response = await ada.call("POST", f"/api/rooms/{room}/files", json={"files": files})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert repr(path) in response.json()["message"]
    assert reason in response.json()["message"]
    assert await _files(ada, room) == {}


async def test_an_exported_zip_imported_into_an_empty_room_gives_the_same_tree_and_bytes(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    doc: Doc = Doc()
    files = doc.get("files", type=Map)
    files["README.md"] = Text("# old-style file\n")  # a room made before folders
    files["main.py"] = Text("from utils.strings import slug\n")
    files["id-1"] = Text("def slug(s):\n    return s.lower()\n")
    files["id-2"] = Text("")
    files["id-3"] = Text("héllo 🙂\r\n")
    paths = doc.get("paths", type=Map)
    paths["main.py"] = "src/app.py"  # an old file renamed into a folder
    paths["id-1"] = "src/utils/strings.py"
    paths["id-2"] = "src/utils/__init__.py"
    paths["id-3"] = "data/ünïcode.txt"
    doc.get("folders", type=Map)["tests/fixtures"] = True  # empty
    update = base64.b64encode(doc.get_update()).decode()
    assert (
        await ada.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": update})
    ).status_code == 200
    exported = (await ada.call("GET", f"/api/rooms/{room}/export.zip")).content
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        assert archive.namelist() == [
            "README.md",
            "data/ünïcode.txt",
            "src/app.py",
            "src/utils/__init__.py",
            "src/utils/strings.py",
            "tests/fixtures/",
        ]
    copy = f"{room}-copy"
    assert (await ada.join(copy)).status_code == 200
    imported = await _upload_zip(ada, copy, exported)
    assert imported.status_code == 200, imported.text
    assert (await _tree(ada, copy))[1] == (await _tree(ada, room))[1]
    assert (await _tree(ada, copy))[0].folders == (await _tree(ada, room))[0].folders
    assert (await ada.call("GET", f"/api/rooms/{copy}/export.zip")).content == exported


def test_clean_paths_drop_dot_segments_and_read_backslashes_as_slashes():
    assert clean_path("./src//utils/./strings.py") == "src/utils/strings.py"
    assert clean_path("dir\\sub\\b.js") == "dir/sub/b.js"
    assert clean_path("project/") == "project"
    assert clean_path("héllo wörld/ünï.py") == "héllo wörld/ünï.py"


def _answer(response) -> tuple[int, object]:
    return response.status_code, response.json()


async def _the_uploads(ada: User, room: str) -> list[tuple[int, object]]:
    """Good and bad uploads of every kind into ``room``, in turn."""
    answers = [
        _answer(await ada.call("POST", f"/api/rooms/{room}/files", json={"files": files}))
        for files in (
            [{"name": "a.py", "text": "one\n"}],
            [{"name": "a.py", "text": "two\n"}, {"name": "src\\b.py", "text": "héllo 🙂\n"}],
            [{"name": "../x.py", "text": "x"}],
            [{"name": "x.bin", "text": "a\u0000b"}],
        )
    ]
    zips = [
        zip_of({"project/": b"", "project/a.py": b"zip\n", "a.py": b"top\n", "e/f/": b""}),
        zip_of({"ok.py": b"x", "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"}),
        zip_of({"/etc/cron.d/x": b"x"}),
        zip_of({"__MACOSX/._a": b"\x00"}),
        b"this is not a zip",
    ]
    answers += [_answer(await _upload_zip(ada, room, data)) for data in zips]
    return answers


async def test_uploads_built_in_the_worker_answer_and_add_what_the_event_loop_would(
    api_server: LiveServer, room: str
):
    """The merge worker reads, checks and builds big uploads: the same names, the same
    refusals and the same tree and texts as an upload built in the server itself."""
    merger = api_server.services.store.merger
    ada = await _owner(api_server, room)
    seen = []
    for where, offload_min_bytes in (("here", 1 << 40), ("worker", 0)):
        merger.offload_min_bytes = offload_min_bytes
        target = f"{room}-{where}"
        assert (await ada.join(target)).status_code == 200
        offloaded = merger.offloaded
        answers = await _the_uploads(ada, target)
        export = await ada.call("GET", f"/api/rooms/{target}/export.zip")
        tree, files = await _tree(ada, target)  # file ids are random: paths and texts compared
        seen.append((answers, files, tree.folders, export.content))
        assert (merger.offloaded > offloaded) == (where == "worker")
    assert seen[0] == seen[1]
    answers, files, folders, _ = seen[0]
    assert [status for status, _ in answers] == [200, 200, 400, 400, 200, 400, 400, 400, 400]
    assert files["a (3).py"] == "top\n"
    assert folders == ["e", "e/f", "project", "src"]


async def test_a_big_zip_reaches_a_live_client_in_pieces_of_whole_files(
    api_server: LiveServer, room: str
):
    """Three 700 kB files: three pieces, each applied and relayed on its own (the event loop
    runs between them); the client sees whole files only, and all three in the end."""
    ada = await _owner(api_server, room)
    texts = {f"f{n}.txt": str(n) * 700_000 for n in range(3)}
    async with synced_client(api_server.ws_url(room, ada.token)) as live:
        updates: list[bytes] = []
        live.observe(lambda event: updates.append(event.update))
        answer = await _upload_zip(ada, room, zip_of({n: t.encode() for n, t in texts.items()}))
        assert answer.status_code == 200
        await wait_until(lambda: read_files(live) == texts, what="every file at the client")
    replay: Doc = Doc()
    seen = []
    for update in updates:  # what the client showed after each update it received
        replay.apply_update(update)
        seen.append(read_files(replay))
    assert seen == [{"f0.txt": texts["f0.txt"]}, dict(list(texts.items())[:2]), texts]


def _exists(path: str) -> bool:
    return Path(path).exists()


async def test_a_big_zip_reaches_the_worker_as_a_file_removed_after_a_small_one_as_bytes(
    api_server: LiveServer, room: str, monkeypatch: pytest.MonkeyPatch
):
    """A big body is written to a file as it arrives (the kernel copies it, the GIL released)
    and the worker reads it there: no copy of it is joined, pickled and piped."""
    merger = api_server.services.store.merger
    ada = await _owner(api_server, room)
    handed: list[object] = []
    built = merger.run_sized

    async def recorded(size, job, tree):
        handed.append(job.args[0])  # partial(zip_upload, archive, limits)
        return await built(size, job, tree)

    monkeypatch.setattr(merger, "run_sized", recorded)
    rng = random.Random(22)
    big = "".join(rng.choices(string.ascii_letters, k=400_000))  # a ~300 kB zip
    data = zip_of({"big.txt": big.encode()})
    assert len(data) >= merger.offload_min_bytes
    assert (await _upload_zip(ada, room, data)).status_code == 200
    assert (await _upload_zip(ada, room, zip_of({"small.txt": b"s"}))).status_code == 200
    path, small = handed
    assert isinstance(path, str)
    assert not _exists(path)  # removed once the request ended
    assert small == zip_of({"small.txt": b"s"})
    files = await _files(ada, room)
    assert (files["big.txt"], files["small.txt"]) == (big, "s")


async def test_a_big_live_rooms_export_is_made_by_the_worker_from_storage_flushed_first(
    api_server: LiveServer, room: str, monkeypatch: pytest.MonkeyPatch
):
    """Encoding a big live document for an export held the event loop (~60 ms at 32 MiB): the
    room is flushed and the worker reads and zips what is stored, the last upload included."""
    ada = await _owner(api_server, room)
    big = "".join(random.Random(7).choices(string.ascii_letters, k=300_000))
    async with synced_client(api_server.ws_url(room, ada.token)):  # the room stays live
        for name, text in (("big.txt", big), ("last.txt", "just added")):
            files = {"files": [{"name": name, "text": text}]}
            answer = await ada.call("POST", f"/api/rooms/{room}/files", json=files)
            assert answer.status_code == 200
        assert room in api_server.services.registry.rooms

        async def not_on_the_loop(*_args: object) -> bytes:
            raise AssertionError("the live document was encoded for the export")

        monkeypatch.setattr(transfer, "current_state", not_on_the_loop)
        offloaded = api_server.services.store.merger.offloaded
        export = await ada.call("GET", f"/api/rooms/{room}/export.zip")
        assert export.status_code == 200
        assert api_server.services.store.merger.offloaded > offloaded
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        assert archive.read("big.txt").decode() == big
        assert archive.read("last.txt") == b"just added"


async def test_a_merge_worker_killed_during_an_upload_is_a_503_that_adds_nothing(
    api_server: LiveServer, room: str, monkeypatch: pytest.MonkeyPatch
):
    api_server.services.store.merger.offload_min_bytes = 0
    ada = await _owner(api_server, room)
    data = zip_of({"main.py": b"print(1)\n"})
    monkeypatch.setattr(transfer, "zip_upload", kill_the_process)
    answer = await _upload_zip(ada, room, data)
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"error": "storage_unavailable", "message": "the merge worker died"}
    assert await _files(ada, room) == {}
    monkeypatch.undo()  # the next upload starts a new worker
    answer = await _upload_zip(ada, room, data)
    assert answer.status_code == 200, answer.text
    assert await _files(ada, room) == {"main.py": "print(1)\n"}


async def test_an_upload_built_while_the_room_gained_its_path_is_built_again(
    api_server: LiveServer, room: str, monkeypatch: pytest.MonkeyPatch
):
    """The worker picks paths against the room as it was; a file that took one of them
    meanwhile makes the server build the upload again, so nothing is shown over it."""
    ada = await _owner(api_server, room)
    merger = api_server.services.store.merger
    built = merger.run_sized

    async def someone_adds_a_py_meanwhile(size, job, tree):
        upload = await built(size, job, tree)
        if not tree.taken:  # the first build only
            live = api_server.services.registry.rooms[room]
            live.apply_update(*files_updates([("a.py", "theirs\n")]))
        return upload

    monkeypatch.setattr(merger, "run_sized", someone_adds_a_py_meanwhile)
    answer = await ada.call(
        "POST", f"/api/rooms/{room}/files", json={"files": [{"name": "a.py", "text": "mine\n"}]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["files"] == [{"name": "a (2).py", "source": "a.py"}]
    assert await _files(ada, room) == {"a.py": "theirs\n", "a (2).py": "mine\n"}
