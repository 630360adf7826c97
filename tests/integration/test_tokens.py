"""Tokens that expire: refresh tokens rotated on use, sockets renewed in place or closed 4401,
and removed members' sockets closed at once (4403)."""

import asyncio
import base64
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pycrdt import Doc, Text
from tests.support import User, new_user
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, synced_client, wait_until

pytestmark = pytest.mark.anyio


async def _sign_in(base: str, name: str = "Ada") -> dict:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/api/auth/anonymous", json={"name": name})
        assert response.status_code == 200, response.text
        return response.json()


async def _refresh(base: str, refresh_token: str, grant: str = "refresh_token") -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as client:
        return await client.post(
            "/api/auth/token",
            params={"grant_type": grant},
            json={"refresh_token": refresh_token},
        )


async def test_a_refresh_gives_the_same_user_a_new_token_and_rotates_the_refresh_token(
    api_server: LiveServer,
):
    signed = await _sign_in(api_server.http_url)
    assert signed["refresh_token"]
    assert signed["expires_at"] >= int(time.time()) + signed["expires_in"] - 5
    response = await _refresh(api_server.http_url, signed["refresh_token"])
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["user"] == signed["user"]
    assert renewed["access_token"] != signed["access_token"]
    assert renewed["refresh_token"] != signed["refresh_token"]
    identity = api_server.services.identities.verify(renewed["access_token"])
    assert identity.user_id == signed["user"]["id"]
    assert identity.name == "Ada"


async def test_a_reused_refresh_token_revokes_its_whole_family(api_server: LiveServer):
    tokens = api_server.services.refresh_tokens
    start = datetime.now(UTC)
    tokens.clock = lambda: start
    signed = await _sign_in(api_server.http_url)
    first = (await _refresh(api_server.http_url, signed["refresh_token"])).json()
    # Within the grace a second use (two tabs at once) gets a sibling, not a revocation.
    assert (await _refresh(api_server.http_url, signed["refresh_token"])).status_code == 200
    tokens.clock = lambda: start + timedelta(seconds=30)
    reuse = await _refresh(api_server.http_url, signed["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.json()["error"] == "unauthorized"
    assert "reused" in reuse.json()["message"]
    # The thief's use revoked the family: the latest token is dead too.
    assert (await _refresh(api_server.http_url, first["refresh_token"])).status_code == 401


async def test_bad_expired_or_unknown_refresh_requests_are_refused(api_server: LiveServer):
    tokens = api_server.services.refresh_tokens
    signed = await _sign_in(api_server.http_url)
    assert (await _refresh(api_server.http_url, "not-a-token")).status_code == 401
    wrong_grant = await _refresh(api_server.http_url, signed["refresh_token"], grant="password")
    assert wrong_grant.status_code == 400
    tokens.clock = lambda: datetime.now(UTC) + timedelta(days=31)
    expired = await _refresh(api_server.http_url, signed["refresh_token"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]


def _expiring_at(server: LiveServer, signed: dict, exp: int) -> str:
    """The signed-in user's access token as the server makes it, but expiring at ``exp``.

    Signed with the server's secret: no test waits for a whole-second ``exp`` to come round.
    """
    claims = server.services.identities.verify(signed["access_token"]).claims
    return server.services.identities.sign({**claims, "exp": exp, "jti": uuid.uuid4().hex})


async def test_an_owner_keeps_their_room_across_the_access_tokens_expiry(
    server: LiveServer, room: str
):
    signed = await _sign_in(server.http_url)
    ada = User(server.http_url, signed["access_token"], signed["user"]["id"], "Ada")
    assert (await ada.join(room)).json()["member"]["role"] == "owner"
    expired = User(server.http_url, _expiring_at(server, signed, int(time.time()) - 1), ada.id, "")
    refused = await expired.call("GET", f"/api/rooms/{room}/members")
    assert refused.status_code == 401
    assert "expired" in refused.json()["message"]
    renewed = (await _refresh(server.http_url, signed["refresh_token"])).json()
    again = User(server.http_url, renewed["access_token"], renewed["user"]["id"], "Ada")
    members = await again.call("GET", f"/api/rooms/{room}/members")
    assert members.status_code == 200
    assert members.json()[0] == {"user_id": ada.id, "role": "owner", "name": "Ada"}


class Socket:
    """A raw collaboration socket that records what the server sends."""

    def __init__(self, websocket) -> None:
        self.websocket = websocket
        self.expiring = 0
        self.doc: Doc = Doc()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.websocket:
                if frame[:2] == bytes([protocol.MessageType.AUTH, protocol.AUTH_TOKEN_EXPIRING]):
                    self.expiring += 1
                elif frame[0] == protocol.MessageType.SYNC:
                    message = protocol.decode_message(frame)
                    if isinstance(message, protocol.SyncStep2 | protocol.SyncUpdate):
                        self.doc.apply_update(message.update)
        except ConnectionClosed:
            pass

    async def type(self, text: str) -> None:
        before = self.doc.get_state()
        code = self.doc.get("code", type=Text)
        code.insert(len(code), text)
        await self.websocket.send(protocol.sync_update(self.doc.get_update(before)))

    async def closed_with(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.reader, timeout)
        return self.websocket.close_code


def _live_text(server: LiveServer, room: str) -> str | None:
    live = server.services.registry.rooms.get(room)
    return None if live is None else str(live.doc.get("code", type=Text))


async def _open(server: LiveServer, room: str, token: str) -> Socket:
    websocket = await connect(server.ws_url(room, token), compression=None)
    socket = Socket(websocket)
    await websocket.send(protocol.sync_step1(socket.doc.get_state()))
    return socket


async def test_a_socket_is_asked_for_a_new_token_and_stays_open_with_it(
    server: LiveServer, room: str
):
    signed = await _sign_in(server.http_url)
    await User(server.http_url, signed["access_token"], "", "Ada").join(room)
    # A 6 s token: asked for a new one at half its life, renewed 3 s before it expires.
    first_expiry = int(time.time()) + 6
    socket = await _open(server, room, _expiring_at(server, signed, first_expiry))
    await wait_until(lambda: socket.expiring >= 1, what="the expiry warning")
    renewed = (await _refresh(server.http_url, signed["refresh_token"])).json()
    assert renewed["expires_at"] > first_expiry + 60  # a later expiry, whatever the second
    await socket.websocket.send(protocol.token_renewal(renewed["access_token"]))
    # The server's expiry timer runs on this event loop, due before this sleep ends: by then
    # the socket was closed unless the renewal replaced it.
    await asyncio.sleep(max(0.0, first_expiry + 0.3 - time.time()))
    async with synced_client(await server.member_url(room)) as observer:
        await socket.type("typed after the old token expired")
        await wait_until(
            lambda: str(observer.get("code", type=Text)) == "typed after the old token expired",
            what="the edit relayed",
        )
    assert socket.websocket.close_code is None
    await socket.websocket.close()


async def test_a_socket_that_keeps_an_expired_token_is_closed_4401_and_its_edits_kept(
    server: LiveServer, room: str
):
    signed = await _sign_in(server.http_url)
    ada = User(server.http_url, signed["access_token"], signed["user"]["id"], "Ada")
    await ada.join(room)
    expiry = int(time.time()) + 4
    socket = await _open(server, room, _expiring_at(server, signed, expiry))
    await socket.type("kept")
    await wait_until(
        lambda: _live_text(server, room) == "kept", what="the edit applied before the expiry"
    )
    assert await socket.closed_with(timeout=30) == 4401
    assert time.time() >= expiry  # closed at its expiry, not before
    body = (await ada.call("GET", f"/api/rooms/{room}/snapshot")).json()
    restored: Doc = Doc()
    restored.apply_update(base64.b64decode(body["snapshot_b64"]))
    assert str(restored.get("code", type=Text)) == "kept"


async def test_a_renewal_with_another_users_token_closes_4401(server: LiveServer, room: str):
    ada = await new_user(server.http_url, "Ada")
    await ada.join(room)
    eve = await new_user(server.http_url, "Eve")
    socket = await _open(server, room, ada.token)
    await socket.websocket.send(protocol.token_renewal(eve.token))
    assert await socket.closed_with() == 4401


async def test_removing_a_member_closes_their_sockets_at_once_with_4403(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url, "Ada")
    await ada.join(room)
    bob = await new_user(api_server.http_url, "Bob")
    await bob.join(room)
    bobs = [await _open(api_server, room, bob.token) for _ in range(2)]
    adas = await _open(api_server, room, ada.token)
    response = await ada.call("DELETE", f"/api/rooms/{room}/members/{bob.id}")
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == bob.id
    for socket in bobs:
        assert await socket.closed_with(timeout=3) == 4403
    assert adas.websocket.close_code is None
    assert (await bob.call("GET", f"/api/rooms/{room}/members")).status_code == 404
    await adas.websocket.close()


async def test_only_owners_remove_others_members_may_leave_and_the_last_owner_stays(
    api_server: LiveServer, room: str
):
    ada = await new_user(api_server.http_url, "Ada")
    await ada.join(room)
    bob = await new_user(api_server.http_url, "Bob")
    await bob.join(room)
    cid = await new_user(api_server.http_url, "Cid")
    await cid.join(room)
    refused = await bob.call("DELETE", f"/api/rooms/{room}/members/{cid.id}")
    assert refused.status_code == 403
    last = await ada.call("DELETE", f"/api/rooms/{room}/members/{ada.id}")
    assert last.status_code == 409
    assert (await bob.call("DELETE", f"/api/rooms/{room}/members/{bob.id}")).status_code == 200
    eve = await new_user(api_server.http_url, "Eve")
    assert (await eve.call("DELETE", f"/api/rooms/{room}/members/{cid.id}")).status_code == 404
    members = (await ada.call("GET", f"/api/rooms/{room}/members")).json()
    assert {m["user_id"] for m in members} == {ada.id, cid.id}
