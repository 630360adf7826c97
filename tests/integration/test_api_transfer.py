"""Export a room as a zip, upload text files or a zip: names, duplicates, limits, bad input."""

import base64
import io
import zipfile
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text
from tests.support import User, new_user

from pairpilot.testing import LiveServer, live_server, quick_settings
from pairpilot.web.transfer import sanitise_name

pytestmark = pytest.mark.anyio


async def _owner(server: LiveServer, room: str) -> User:
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    return ada


async def _files(user: User, room: str) -> dict[str, str]:
    body = (await user.call("GET", f"/api/rooms/{room}/snapshot")).json()
    doc: Doc = Doc()
    if body["snapshot_b64"]:
        doc.apply_update(base64.b64decode(body["snapshot_b64"]))
    return {name: str(text) for name, text in doc.get("files", type=Map).items()}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


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


async def test_uploaded_files_join_the_room_and_taken_names_get_a_number(
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
                {"name": "../../etc/passwd", "text": "not a system file\n"},
                {"name": "dir\\sub\\b.js", "text": "b\n"},
                {"name": "a.py", "text": "three\n"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["files"] == [
        {"name": "a (2).py", "source": "a.py"},
        {"name": "passwd", "source": "../../etc/passwd"},
        {"name": "b.js", "source": "dir\\sub\\b.js"},
        {"name": "a (3).py", "source": "a.py"},
    ]
    assert await _files(ada, room) == {
        "a.py": "one\n",
        "a (2).py": "two\n",
        "passwd": "not a system file\n",
        "b.js": "b\n",
        "a (3).py": "three\n",
    }


async def test_a_zip_upload_adds_its_text_files_and_skips_folders_and_junk(
    api_server: LiveServer, room: str
):
    ada = await _owner(api_server, room)
    data = _zip(
        {
            "project/": b"",
            "project/main.py": "print('zip 🙂')\n".encode(),
            "project/lib/util.py": b"def f():\n    return 1\n",
            "__MACOSX/project/._main.py": b"\x00\x05\x16\x07",
            "project/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    response = await _upload_zip(ada, room, data)
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["files"]] == ["main.py", "util.py"]
    assert await _files(ada, room) == {
        "main.py": "print('zip 🙂')\n",
        "util.py": "def f():\n    return 1\n",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not a zip", "not a zip archive"),
        (_zip({"ok.py": b"x", "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"}), "image.png"),
        (_zip({"..": b"x"}), "not a usable file name"),
        (_zip({}), "no files"),
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
            response = await _upload_zip(ada, room, _zip(entries))
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


def test_names_are_cut_to_their_last_segment_and_cleaned():
    assert sanitise_name("../../x.py") == "x.py"
    assert sanitise_name("C:\\Users\\me\\x.py") == "x.py"
    assert sanitise_name("a/b/") == "b"
    assert sanitise_name("bad\x00na\x1fme.py") == "badname.py"
    assert sanitise_name("  spaced.py  ") == "spaced.py"
    assert sanitise_name("n" * 300) == "n" * 128
    for hopeless in ("", "/", "..", ".", "a/..", " \x01 "):
        assert sanitise_name(hopeless) is None, hopeless
