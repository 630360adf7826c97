"""Who may open a room's WebSocket, and what a viewer's socket may do."""

import asyncio

import httpx
import pytest
from pycrdt import Awareness, Doc, Text, create_awareness_message
from websockets.asyncio.client import ClientConnection, connect

from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, join, sign_in, synced_client, wait_until

pytestmark = pytest.mark.anyio


async def _closed_with(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(5):
        await ws.wait_closed()
    return ws.close_code


async def _recv_until(ws: ClientConnection, prefix: bytes) -> bytes:
    async with asyncio.timeout(5):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame.startswith(prefix):
                return frame


async def _set_role(api_server: LiveServer, room: str, owner: str, user: str, role: str) -> None:
    async with httpx.AsyncClient(base_url=api_server.http_url) as client:
        response = await client.put(
            f"/api/rooms/{room}/members/{user}",
            json={"role": role},
            headers={"Authorization": f"Bearer {owner}"},
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", "a.b.c"])
async def test_a_missing_or_bad_token_closes_4401(api_server: LiveServer, token: str | None):
    async with connect(api_server.ws_url("locked", token), compression=None) as ws:
        assert await _closed_with(ws) == 4401


async def test_a_valid_token_of_a_non_member_closes_4403(api_server: LiveServer):
    owner = await sign_in(api_server.http_url)
    await join(api_server.http_url, "private", owner)
    stranger = await sign_in(api_server.http_url)
    async with connect(api_server.ws_url("private", stranger), compression=None) as ws:
        assert await _closed_with(ws) == 4403


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


def _live_text(api_server: LiveServer, room: str) -> str | None:
    live = api_server.services.registry.rooms.get(room)
    return None if live is None else _text(live.doc)


async def _send_text(ws: ClientConnection, doc: Doc, text: str) -> None:
    """Append ``text`` to ``doc`` and send the update on a raw socket."""
    before = doc.get_state()
    code = doc.get("code", type=Text)
    code.insert(len(code), text)
    await ws.send(protocol.sync_update(doc.get_update(before)))


async def _relayed_after(api_server: LiveServer, room: str, token: str, watcher: Doc) -> None:
    """Send a marker from another socket and wait for ``watcher`` to see it.

    Frames reach a socket in the order the room relays them: whatever was relayed before the
    marker has arrived too.
    """
    async with synced_client(api_server.ws_url(room, token)) as marker:
        code = marker.get("code", type=Text)
        code.insert(len(code), "|marker")
        await wait_until(lambda: _text(watcher).endswith("|marker"), what="the marker relayed")


async def test_a_viewer_reads_but_its_updates_are_dropped_with_an_auth_message(api_server):
    owner = await sign_in(api_server.http_url, "Owner")
    await join(api_server.http_url, "ro", owner)
    viewer = await sign_in(api_server.http_url, "Viewer")
    viewer_id = (await join(api_server.http_url, "ro", viewer))["member"]["user_id"]
    await _set_role(api_server, "ro", owner, viewer_id, "viewer")
    async with synced_client(api_server.ws_url("ro", owner)) as owner_doc:
        owner_doc.get("code", type=Text).insert(0, "owner's text")
        await wait_until(lambda: _live_text(api_server, "ro") == "owner's text")
        async with connect(api_server.ws_url("ro", viewer), compression=None) as ws:
            step1 = await _recv_until(ws, b"\x00\x00")
            assert step1
            doc: Doc = Doc()
            await _send_text(ws, doc, "viewer's attempt")
            # Answered, so the server has handled the update: it is not in the room.
            denied = await _recv_until(ws, b"\x02\x00")
            assert b"read-only" in denied
            assert _live_text(api_server, "ro") == "owner's text"
            presence = Awareness(Doc())
            presence.set_local_state({"user": {"name": "Viewer"}})
            frame = create_awareness_message(presence.encode_awareness_update([presence.client_id]))
            await ws.send(frame)
            assert await _recv_until(ws, b"\x01") == frame
        # Nor was it relayed: the owner's socket has the marker sent after it, and not it.
        await _relayed_after(api_server, "ro", owner, owner_doc)
        assert _text(owner_doc) == "owner's text|marker"
        assert _live_text(api_server, "ro") == "owner's text|marker"


async def test_a_role_change_applies_to_open_sockets(api_server: LiveServer):
    owner = await sign_in(api_server.http_url, "Owner")
    await join(api_server.http_url, "promote", owner)
    other = await sign_in(api_server.http_url, "Other")
    other_id = (await join(api_server.http_url, "promote", other))["member"]["user_id"]
    await _set_role(api_server, "promote", owner, other_id, "viewer")
    async with (
        synced_client(api_server.ws_url("promote", owner)) as watcher,
        connect(api_server.ws_url("promote", other), compression=None) as ws,
    ):
        await _recv_until(ws, b"\x00\x00")  # joined: the server's sync step 1
        doc: Doc = Doc()
        room = api_server.services.registry.rooms["promote"]
        assert not any(
            session.can_write for session in room.sessions.values() if session.user_id == other_id
        )
        await _set_role(api_server, "promote", owner, other_id, "editor")
        await _send_text(ws, doc, "accepted")
        await wait_until(lambda: _text(watcher) == "accepted", what="the editor's edit relayed")
        await _set_role(api_server, "promote", owner, other_id, "viewer")
        await _send_text(ws, doc, " late")
        # Answered, so the server has handled the update: it is not in the room, nor relayed.
        assert b"read-only" in await _recv_until(ws, b"\x02\x00")
        assert _live_text(api_server, "promote") == "accepted"
        await _relayed_after(api_server, "promote", owner, watcher)
        assert _text(watcher) == "accepted|marker"
