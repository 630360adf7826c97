"""The stock JavaScript client (npm yjs + y-websocket) with the saved message and restores."""

import asyncio
import base64
import json
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text
from tests.support import User, new_user

from pairpilot.testing import LiveServer, synced_client, wait_until

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent


class Peer:
    """A running peer.mjs script, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, event: str, timeout: float = 30) -> dict:
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)  # type: ignore[union-attr]
            assert raw, f"the peer exited before {event!r}"
            found = json.loads(raw)
            assert found["event"] != "error", found
            if found["event"] == event:
                return found

    async def send(self, line: str) -> None:
        self.process.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
        await self.process.stdin.drain()  # type: ignore[union-attr]

    async def finish(self) -> None:
        assert await asyncio.wait_for(self.process.wait(), 30) == 0


async def _start(node: str, server: LiveServer, room: str, script: str, **env: str) -> Peer:
    member = await new_user(server.http_url, "Node")
    await member.join(room)
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "peer.mjs"),
        f"ws://127.0.0.1:{server.port}/collab",
        room,
        script,
        member.token,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return Peer(process)


async def _set_files(user: User, room: str, files: dict[str, str]) -> None:
    doc: Doc = Doc()
    for name, text in files.items():
        doc.get("files", type=Map)[name] = Text(text)
    update = base64.b64encode(doc.get_update()).decode()
    response = await user.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": update})
    assert response.status_code == 200, response.text


async def _named(user: User, room: str, name: str) -> int:
    response = await user.call("POST", f"/api/rooms/{room}/versions", json={"name": name})
    assert response.status_code == 201, response.text
    version_id: int = response.json()["id"]
    return version_id


def _files_of(doc: Doc) -> dict[str, str]:
    return {name: str(text) for name, text in sorted(doc.get("files", type=Map).items())}


async def test_a_stock_client_ignores_the_saved_message_and_keeps_syncing(
    node, server: LiveServer, room: str
):
    peer = await _start(node, server, room, "saved")
    saved = await peer.line("saved")
    assert saved["savedFrames"] >= 1
    assert saved["errors"] == []
    async with synced_client(await server.member_url(room)) as doc:
        code = doc.get("code", type=Text)
        await wait_until(lambda: "stock edit\n" in str(code), what="the stock client's edit")
        code.insert(len(code), "python after saved\n")
        final = await peer.line("final")
    assert final["errors"] == []
    assert final["text"] == "stock edit\npython after saved\n"
    await peer.finish()


async def test_a_connected_stock_client_converges_on_a_restore(node, server: LiveServer, room: str):
    ada = await new_user(server.http_url, "Ada")
    await ada.join(room)
    version = {"a.py": "v1\n", "gone.py": "bring me back\n"}
    await _set_files(ada, room, version)
    v1 = await _named(ada, room, "v1")
    async with synced_client(server.ws_url(room, ada.token)) as doc:
        files = doc.get("files", type=Map)
        with doc.transaction():
            del files["gone.py"]
            files["a.py"].insert(3, "edited\n")
            files["later.py"] = Text("added after v1\n")
        peer = await _start(node, server, room, "follow", EXPECT=json.dumps(version))
        synced = await peer.line("synced")
        assert synced["files"] == {"a.py": "v1\nedited\n", "later.py": "added after v1\n"}
        response = await ada.call("POST", f"/api/rooms/{room}/versions/{v1}/restore")
        assert response.status_code == 200, response.text
        final = await peer.line("final")
        assert final["files"] == version
        assert final["errors"] == []
        await wait_until(lambda: _files_of(doc) == version, what="the Python client")
    await peer.finish()


async def test_a_stock_client_offline_during_a_restore_keeps_its_edits_once(
    node, server: LiveServer, room: str
):
    ada = await new_user(server.http_url, "Ada")
    await ada.join(room)
    await _set_files(ada, room, {"a.py": "v1\n"})
    v1 = await _named(ada, room, "v1")
    async with synced_client(server.ws_url(room, ada.token)) as doc:
        files = doc.get("files", type=Map)
        with doc.transaction():
            files["a.py"].insert(3, "edited\n")
            files["later.py"] = Text("added after v1\n")
        # After the restore the offline edits come back on top of v1: a.py's appended line
        # survives the removal of "edited", c.py is new; later.py is gone.
        expected = {"a.py": "v1\noffline edit\n", "c.py": "offline file\n"}
        peer = await _start(
            node, server, room, "offline", START_A="v1\nedited\n", EXPECT=json.dumps(expected)
        )
        offline = await peer.line("offline")
        assert offline["files"]["a.py"] == "v1\nedited\noffline edit\n"
        response = await ada.call("POST", f"/api/rooms/{room}/versions/{v1}/restore")
        assert response.status_code == 200, response.text
        await wait_until(lambda: _files_of(doc) == {"a.py": "v1\n"}, what="the restore")
        await peer.send("go")
        final = await peer.line("final")
        assert final["files"] == expected
        assert final["errors"] == []
        await wait_until(lambda: _files_of(doc) == expected, what="the Python client")
    await peer.finish()
    async with synced_client(await server.member_url(room)) as fresh:
        await wait_until(lambda: _files_of(fresh) == expected, what="a fresh client")
