"""Tokens from a Supabase project's JWT signing keys (ES256, RS256), on both backends.

The issuer is the tests' own (tests/issuer.py): a JWKS over real HTTP that rotates keys the way
Supabase does, and tokens the test signs with Supabase's claims.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pycrdt import Doc, Text
from tests.conftest import backend_settings
from tests.issuer import Issuer, new_key, supabase_issuer
from tests.support import User, new_user
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, live_server, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    async with supabase_issuer("ES256") as running:
        running.add("RS256", "previous")  # a key used before: still listed, still valid
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, issuer: Issuer
) -> AsyncIterator[LiveServer]:
    # A short refetch interval: the tests wait for it to open rather than for whole seconds.
    settings = backend_settings(request, tmp_path, supabase_url=issuer.url, jwks_refetch_s=0.2)
    async with live_server(settings) as running:
        yield running


def _as(server: LiveServer, token: str) -> User:
    return User(server.http_url, token, "", "")


def _hs256_with(secret: bytes, claims: dict, kid: str) -> str:
    """An HS256 token whose HMAC key is ``secret`` (PyJWT refuses public keys as one)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(signature)}"


async def _refetch_window_open(server: LiveServer, token: str) -> None:
    """Wait until a token naming an unknown kid would make the server fetch the set again."""
    await wait_until(lambda: server.services.identities.needs_keys(token), what="refetch window")


async def test_es256_and_rs256_tokens_are_the_same_user_to_the_api_and_to_rls(
    server: LiveServer, issuer: Issuer, room: str
):
    es256, rs256 = issuer.keys
    user_id = str(uuid.uuid4())
    ada = _as(server, issuer.sign(issuer.claims(user_id), es256))
    joined = await ada.join(room)
    assert joined.status_code == 200, joined.text
    assert joined.json()["member"] == {"user_id": user_id, "role": "owner", "name": "Ada Lovelace"}
    same = _as(server, issuer.sign(issuer.claims(user_id), rs256))
    members = await same.call("GET", f"/api/rooms/{room}/members")
    assert members.status_code == 200, members.text
    assert [m["user_id"] for m in members.json()] == [user_id]
    identity = server.services.identities.verify(same.token)
    if server.services.store.engine.dialect.name == "postgresql":
        async with server.services.directory.as_user(identity) as conn:
            seen = await conn.scalar(sa.text("SELECT auth.uid()::text"))
            rooms = await conn.scalar(
                sa.text("SELECT count(*) FROM rooms WHERE id = :r"), {"r": room}
            )
        assert seen == user_id
        assert rooms == 1
        stranger = server.services.identities.verify(issuer.sign(issuer.claims()))
        async with server.services.directory.as_user(stranger) as conn:
            hidden = await conn.scalar(
                sa.text("SELECT count(*) FROM rooms WHERE id = :r"), {"r": room}
            )
        assert hidden == 0  # RLS: a member of nothing sees nothing
    assert issuer.fetches == 1  # both keys came in one fetch


async def test_the_hs256_secret_keeps_working_beside_the_signing_keys(
    server: LiveServer, issuer: Issuer, room: str
):
    signed_in = await new_user(server.http_url, "Bob")  # PairPilot's own HS256 token
    assert (await signed_in.join(room)).status_code == 200
    assert issuer.fetches == 0  # an HS256 token never needs the key set
    ada = _as(server, issuer.sign(issuer.claims()))
    assert (await ada.join(room)).status_code == 200
    members = (await signed_in.call("GET", f"/api/rooms/{room}/members")).json()
    assert len(members) == 2


async def test_forged_confused_expired_and_foreign_tokens_are_401(
    server: LiveServer, issuer: Issuer, room: str
):
    es256, rs256 = issuer.keys
    owner = _as(server, issuer.sign(issuer.claims()))
    assert (await owner.join(room)).status_code == 200
    stranger_key = new_key("ES256", "active")  # never published
    public_pem = es256.private.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    claims = issuer.claims()
    now = int(time.time())
    cases = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "HS256 keyed with the public key (PEM)": _hs256_with(public_pem, claims, es256.kid),
        "HS256 keyed with the public JWK": _hs256_with(
            json.dumps(es256.public_jwk()).encode(), claims, es256.kid
        ),
        "a published kid, signed by another key": issuer.sign(claims, stranger_key, kid=es256.kid),
        "an ES256 key's kid on an RS256 token": jwt.encode(
            claims, rs256.private, algorithm="RS256", headers={"kid": es256.kid}
        ),
        "no kid": jwt.encode(claims, es256.private, algorithm="ES256"),
        "another issuer": issuer.sign({**claims, "iss": "https://evil.example/auth/v1"}),
        "no issuer": issuer.sign({k: v for k, v in claims.items() if k != "iss"}),
        "another audience": issuer.sign({**claims, "aud": "service"}),
        "expired": issuer.sign({**claims, "iat": now - 7200, "exp": now - 3600}),
        "the anon key's role": issuer.sign({**claims, "role": "anon"}),
        "a subject that is not a user id": issuer.sign({**claims, "sub": "admin"}),
        "HS512": jwt.encode(claims, "s" * 64, algorithm="HS512"),
        "RS384 by a published key": jwt.encode(
            claims, rs256.private, algorithm="RS384", headers={"kid": rs256.kid}
        ),
    }
    for case, token in cases.items():
        response = await _as(server, token).call("GET", f"/api/rooms/{room}/members")
        assert response.status_code == 401, (case, response.text)
        assert response.headers["www-authenticate"] == "Bearer", case
        assert response.json()["error"] == "unauthorized", case


async def test_an_unknown_kid_refetches_the_set_once_then_is_401(
    server: LiveServer, issuer: Issuer, room: str
):
    owner = _as(server, issuer.sign(issuer.claims()))
    assert (await owner.join(room)).status_code == 200
    assert issuer.fetches == 1
    forged = issuer.sign(issuer.claims(), new_key("ES256", "active"))
    await _refetch_window_open(server, forged)
    response = await _as(server, forged).call("GET", f"/api/rooms/{room}/members")
    assert response.status_code == 401
    assert "unknown or revoked key" in response.json()["message"]
    assert issuer.fetches == 2  # fetched again before refusing
    # A flood of forged kids inside the refetch interval fetches nothing more.
    server.services.identities.keys._refetch_min_s = 3600
    for _ in range(20):
        assert (await _as(server, forged).call("GET", "/api/rooms/x/members")).status_code == 401
    assert issuer.fetches == 2


async def test_a_rotation_is_followed_and_a_revoked_key_is_refused(
    server: LiveServer, issuer: Issuer, room: str
):
    user_id = str(uuid.uuid4())
    old = issuer.keys[0]
    ada = _as(server, issuer.sign(issuer.claims(user_id), old))
    assert (await ada.join(room)).status_code == 200
    standby = issuer.add("RS256", "standby")  # announced before it signs anything
    issuer.rotate()
    new_token = issuer.sign(issuer.claims(user_id), standby)
    await _refetch_window_open(server, new_token)
    again = await _as(server, new_token).call("GET", f"/api/rooms/{room}/members")
    assert again.status_code == 200  # the new active key was fetched on its unknown kid
    # The previous key still verifies until it is revoked.
    assert (await ada.call("GET", f"/api/rooms/{room}/members")).status_code == 200
    old.state = "revoked"
    issuer.add("ES256", "standby")
    nudge = issuer.sign(issuer.claims(user_id), issuer.keys[-1])  # a kid the server lacks
    await _refetch_window_open(server, nudge)
    assert (await _as(server, nudge).call("GET", f"/api/rooms/{room}/members")).status_code == 200
    refused = await ada.call("GET", f"/api/rooms/{room}/members")
    assert refused.status_code == 401
    assert "unknown or revoked key" in refused.json()["message"]


async def test_a_slow_key_set_blocks_no_other_request(
    server: LiveServer, issuer: Issuer, room: str
):
    bob = await new_user(server.http_url, "Bob")
    assert (await bob.join(room)).status_code == 200
    issuer.hold()
    waiting = asyncio.create_task(_as(server, issuer.sign(issuer.claims())).join(room))
    await wait_until(lambda: server.services.identities.keys._inflight is not None, what="fetch")
    for _ in range(5):  # answered while the fetch waits
        assert (await bob.call("GET", f"/api/rooms/{room}/members")).status_code == 200
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert not waiting.done()
    issuer.release()
    assert (await asyncio.wait_for(waiting, 10)).status_code == 200


class Socket:
    """A raw collaboration socket: its close code, once closed."""

    def __init__(self, websocket) -> None:
        self.websocket = websocket
        self.reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            async for _ in self.websocket:
                pass
        except ConnectionClosed:
            pass

    async def closed_with(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.reader, timeout)
        return self.websocket.close_code

    async def still_edits(self, server: LiveServer, room: str, text: str) -> None:
        await self.websocket.send(protocol.sync_update(_insert(text)))
        live = server.services.registry.rooms
        await wait_until(lambda: text in _live_text(live, room), what="the edit applied")


def _insert(text: str) -> bytes:
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, text)
    return doc.get_update()


def _live_text(rooms, room: str) -> str:
    live = rooms.get(room)
    return "" if live is None else str(live.doc.get("code", type=Text))


async def _open(server: LiveServer, room: str, token: str) -> Socket:
    websocket = await connect(server.ws_url(room, token), compression=None)
    with contextlib.suppress(ConnectionClosed):  # a refused token may close it first
        await websocket.send(protocol.sync_step1(b"\x00"))
    return Socket(websocket)


async def test_sockets_refuse_forged_tokens_and_close_4401_when_a_revoked_key_renews(
    server: LiveServer, issuer: Issuer, room: str
):
    user_id = str(uuid.uuid4())
    old = issuer.keys[0]
    assert (
        await _as(server, issuer.sign(issuer.claims(user_id), old)).join(room)
    ).status_code == 200
    claims = issuer.claims(user_id)
    for token in (
        jwt.encode(claims, None, algorithm="none"),
        _hs256_with(json.dumps(old.public_jwk()).encode(), claims, old.kid),
        issuer.sign(claims, new_key("ES256", "active")),
    ):
        assert await (await _open(server, room, token)).closed_with() == 4401
    socket = await _open(server, room, issuer.sign(issuer.claims(user_id), old))
    await socket.still_edits(server, room, "before the rotation;")
    # Rotation: a new key becomes active; renewing with one of its tokens keeps the socket.
    standby = issuer.add("ES256", "standby")
    issuer.rotate()
    renewal = issuer.sign(issuer.claims(user_id), standby)
    await _refetch_window_open(server, renewal)
    fetched = issuer.fetches
    await socket.websocket.send(protocol.token_renewal(renewal))
    await wait_until(lambda: issuer.fetches > fetched, what="the key set fetched again")
    await socket.still_edits(server, room, "after the renewal;")
    assert socket.websocket.close_code is None
    # The old key is revoked; the server learns it at its next fetch, and the socket that
    # renews with a token of that key is closed 4401 at that renewal.
    old.state = "revoked"
    issuer.add("RS256", "standby")
    nudge = issuer.sign(issuer.claims(user_id), issuer.keys[-1])
    await _refetch_window_open(server, nudge)
    assert (await _as(server, nudge).call("GET", f"/api/rooms/{room}/members")).status_code == 200
    await socket.websocket.send(protocol.token_renewal(issuer.sign(issuer.claims(user_id), old)))
    assert await socket.closed_with() == 4401
