"""Versions and restore with folders: a restore matches files by identity, not by path."""

import asyncio
import base64
import time

import pytest
from pycrdt import Doc, Map, Text
from tests.support import User, new_user

from pairpilot.sync.files import doc_of, read_tree, texts_of
from pairpilot.testing import LiveServer, synced_client, wait_until

pytestmark = pytest.mark.anyio


async def _server_tree(user: User, room: str) -> dict[str, str]:
    body = (await user.call("GET", f"/api/rooms/{room}/snapshot")).json()
    return read_tree(doc_of(base64.b64decode(body["snapshot_b64"]))).files


async def test_a_restore_brings_a_renamed_file_back_under_its_old_path_as_the_same_file(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    seed: Doc = Doc()
    seed.get("files", type=Map)["id-1"] = Text("def slug(s):\n    return s\n")
    seed.get("files", type=Map)["legacy.py"] = Text("old\n")
    seed.get("paths", type=Map)["id-1"] = "src/utils/strings.py"
    seed.get("folders", type=Map)["docs"] = True
    update = base64.b64encode(seed.get_update()).decode()
    posted = await ada.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": update})
    assert posted.status_code == 200, posted.text
    named = await ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "with folders"})
    assert named.status_code == 201, named.text
    detail = await ada.call("GET", f"/api/rooms/{room}/versions/{named.json()['id']}")
    assert detail.json()["files"] == {
        "legacy.py": "old\n",
        "src/utils/strings.py": "def slug(s):\n    return s\n",
    }

    async with synced_client(api_server.ws_url(room, ada.token)) as live:
        text = texts_of(live)["id-1"]
        with live.transaction():
            live.get("paths", type=Map)["id-1"] = "lib/slug.py"  # renamed and moved
            live.get("paths", type=Map)["legacy.py"] = "old/legacy.py"
            del live.get("folders", type=Map)["docs"]
            text += "# edited\n"
        live.get("files", type=Map)["id-2"] = Text("added since\n")
        deadline = time.monotonic() + 30  # the server holds the edits before the restore
        while "id-2" not in await _server_tree(ada, room):
            assert time.monotonic() < deadline, "the server never got the edits"
            await asyncio.sleep(0.02)
        restored = await ada.call(
            "POST", f"/api/rooms/{room}/versions/{named.json()['id']}/restore"
        )
        assert restored.status_code == 200, restored.text
        await wait_until(
            lambda: read_tree(live).files.get("id-1") == "src/utils/strings.py", 30, "restore"
        )
        # The Y.Text everyone was editing, edited back in place (not replaced), under its old path.
        assert str(text) == "def slug(s):\n    return s\n"
        assert read_tree(live).files == {
            "legacy.py": "legacy.py",
            "id-1": "src/utils/strings.py",
        }
        assert read_tree(live).folders == ["docs", "src", "src/utils"]
    assert await _server_tree(ada, room) == {
        "legacy.py": "legacy.py",
        "id-1": "src/utils/strings.py",
    }
