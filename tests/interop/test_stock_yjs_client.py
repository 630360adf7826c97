"""The stock JavaScript client (npm yjs + y-websocket) against the Python server."""

import asyncio
import json
from pathlib import Path

import pytest
from pycrdt import Text

from pairpilot.testing import LiveServer, join, sign_in, synced_client, wait_until

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent


async def _peer(node: str, server: LiveServer, room: str, script: str, *, member: bool = True):
    token = await sign_in(server.http_url, "Node")
    if member:
        await join(server.http_url, room, token)
    return await asyncio.create_subprocess_exec(
        node,
        str(HERE / "peer.mjs"),
        f"ws://127.0.0.1:{server.port}/collab",
        room,
        script,
        token,
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )


async def _result(process: asyncio.subprocess.Process, timeout: float) -> dict[str, object]:
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout)
    lines = stdout.decode().splitlines()
    assert process.returncode == 0, lines
    return json.loads(lines[-1])


async def test_node_and_python_clients_edit_one_room_and_converge(node, server: LiveServer):
    async with synced_client(await server.member_url("interop")) as doc:
        text = doc.get("code", type=Text)
        peer = await _peer(node, server, "interop", "converse")
        text.insert(0, "from python\n")
        await wait_until(lambda: "from node: héllo 🙂\n" in str(text), what="node's line")
        room = server.services.registry.rooms["interop"]
        names = [state.get("user", {}).get("name") for state in room.awareness.states.values()]
        assert "Node 🙂" in names
        text.insert(len(text), "python saw node\n")
        final = await _result(peer, 20)
        assert final["text"] == str(text)
        assert str(text) == "from python\nfrom node: héllo 🙂\npython saw node\n"


async def test_a_lone_stock_client_is_not_dropped_by_its_silence_timeout(node, server):
    peer = await _peer(node, server, "lonely", "linger")
    result = await _result(peer, 60)
    assert result["closes"] == []
    assert result["connected"] is True


async def test_a_stock_client_sees_4400_for_a_bad_room_id(node, server: LiveServer):
    peer = await _peer(node, server, "bad.room", "refused", member=False)
    result = await _result(peer, 20)
    assert result["closes"][0] == 4400


async def test_a_stock_client_of_a_non_member_sees_4403(node, server: LiveServer):
    owner = await sign_in(server.http_url)
    await join(server.http_url, "members-only", owner)
    peer = await _peer(node, server, "members-only", "refused", member=False)
    result = await _result(peer, 20)
    assert result["closes"][0] == 4403
