"""Links no one can guess: link access (edit / view / none) and invite links, on both backends."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import jwt
import pytest
from tests.support import User, new_user

from pairpilot.access.invites import AUDIENCE
from pairpilot.storage.directory import RoomDirectory
from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio


async def _owner_and_room(server: LiveServer, room: str, access: str | None = None) -> User:
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    if access is not None:
        changed = await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": access})
        assert changed.status_code == 200, changed.text
        assert changed.json()["link_access"] == access
    return ada


async def _invite(owner: User, room: str, role: str = "editor", **extra: object) -> dict:
    made = await owner.call("POST", f"/api/rooms/{room}/invites", json={"role": role, **extra})
    assert made.status_code == 200, made.text
    return made.json()


async def _join_with(user: User, room: str, token: str):
    return await user.call("POST", f"/api/rooms/{room}/join", json={"invite": token})


async def test_new_rooms_and_old_ones_are_open_to_editors_by_link(api_server, room):
    ada = await new_user(api_server.http_url)
    body = (await ada.join(room)).json()
    assert (body["room"]["link_access"], body["room"]["default_role"]) == ("edit", "editor")
    bob = await new_user(api_server.http_url)
    assert (await bob.join(room)).json()["member"]["role"] == "editor"


async def test_link_access_none_answers_a_join_by_id_404_as_for_no_room(api_server, room):
    await _owner_and_room(api_server, room, "none")
    bob = await new_user(api_server.http_url)
    refused = await bob.join(room)
    assert refused.status_code == 404
    assert refused.json() == {"error": "not_found", "message": f"room {room} not found"}
    nowhere = await bob.call("GET", f"/api/rooms/{room}/members")
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "not_found")


async def test_link_access_view_makes_viewers_and_edit_makes_editors(api_server, room):
    ada = await _owner_and_room(api_server, room, "view")
    bob = await new_user(api_server.http_url)
    assert (await bob.join(room)).json()["member"]["role"] == "viewer"
    await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": "edit"})
    carol = await new_user(api_server.http_url)
    joined = (await carol.join(room)).json()
    assert (joined["member"]["role"], joined["room"]["default_role"]) == ("editor", "editor")


async def test_members_keep_their_membership_when_the_link_is_closed(api_server, room):
    ada = await _owner_and_room(api_server, room)
    bob = await new_user(api_server.http_url)
    await bob.join(room)
    await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": "none"})
    again = await bob.join(room)
    assert (again.status_code, again.json()["member"]["role"]) == (200, "editor")


async def test_default_role_is_the_old_spelling_of_link_access(api_server, room):
    ada = await _owner_and_room(api_server, room)
    viewer = await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "viewer"})
    assert (viewer.json()["link_access"], viewer.json()["default_role"]) == ("view", "viewer")
    await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": "none"})
    kept = await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "editor"})
    assert (kept.json()["link_access"], kept.json()["default_role"]) == ("none", "editor")
    owner = await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "owner"})
    assert (owner.status_code, owner.json()["error"]) == (400, "bad_request")
    clash = {"link_access": "view", "default_role": "editor"}
    assert (await ada.call("PATCH", f"/api/rooms/{room}", json=clash)).status_code == 400
    bad = await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": "everyone"})
    assert bad.status_code == 400


async def test_only_owners_change_link_access(api_server, room):
    await _owner_and_room(api_server, room)
    bob = await new_user(api_server.http_url)
    await bob.join(room)
    refused = await bob.call("PATCH", f"/api/rooms/{room}", json={"link_access": "none"})
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


async def test_an_invite_joins_an_invite_only_room_with_its_role(api_server, room):
    ada = await _owner_and_room(api_server, room, "none")
    editor_invite = await _invite(ada, room, "editor")
    viewer_invite = await _invite(ada, room, "viewer", expires_in_s=3600)
    assert editor_invite["url"].endswith(f"/r/{room}?invite={editor_invite['token']}")
    bob, carol = await new_user(api_server.http_url), await new_user(api_server.http_url)
    joined = await _join_with(bob, room, editor_invite["token"])
    assert (joined.status_code, joined.json()["member"]["role"]) == (200, "editor")
    viewed = await _join_with(carol, room, viewer_invite["token"])
    assert viewed.json()["member"]["role"] == "viewer"
    assert (await bob.join(room)).status_code == 200  # a member now, by id too


async def test_owners_list_invites_without_tokens_and_revoke_them(api_server, room):
    ada = await _owner_and_room(api_server, room, "none")
    made = await _invite(ada, room, "editor")
    listed = (await ada.call("GET", f"/api/rooms/{room}/invites")).json()
    assert [(i["id"], i["role"], i["revoked"]) for i in listed] == [(made["id"], "editor", False)]
    assert "token" not in listed[0]
    bob = await new_user(api_server.http_url)
    await _join_with(bob, room, made["token"])
    revoked = await ada.call("DELETE", f"/api/rooms/{room}/invites/{made['id']}")
    assert (revoked.status_code, revoked.json()["revoked"]) == (200, True)
    assert (await ada.call("GET", f"/api/rooms/{room}/invites")).json() == []
    carol = await new_user(api_server.http_url)
    refused = await _join_with(carol, room, made["token"])
    assert (refused.status_code, refused.json()["error"]) == (403, "invite_revoked")
    assert (await bob.join(room)).json()["member"]["role"] == "editor"  # members it made stay
    unknown = await ada.call("DELETE", f"/api/rooms/{room}/invites/nope")
    assert unknown.status_code == 404


async def test_an_expired_invite_is_refused(api_server: LiveServer, room):
    ada = await _owner_and_room(api_server, room, "none")
    made = await _invite(ada, room)
    claims = jwt.decode(made["token"], options={"verify_signature": False})
    past = {**claims, "exp": int(time.time()) - 5}
    signed_past = api_server.services.identities.sign(past)
    bob = await new_user(api_server.http_url)
    refused = await _join_with(bob, room, signed_past)
    assert (refused.status_code, refused.json()["error"]) == (403, "invite_expired")
    # The row's own expiry counts too: the server's clock moved a day past it.
    directory = api_server.services.directory
    real_clock = directory.clock
    directory.clock = lambda: real_clock() + timedelta(days=8)
    try:
        late = await _join_with(bob, room, made["token"])
    finally:
        directory.clock = real_clock
    assert (late.status_code, late.json()["error"]) == (403, "invite_expired")


async def test_a_forged_invite_or_another_rooms_is_refused(api_server, room):
    ada = await _owner_and_room(api_server, room, "none")
    made = await _invite(ada, room)
    claims = jwt.decode(made["token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-servers-secret-" * 3, algorithm="HS256")
    bob = await new_user(api_server.http_url)
    for token in (forged, made["token"][:-3] + "abc", "garbage", bob.token):
        refused = await _join_with(bob, room, token)
        assert (refused.status_code, refused.json()["error"]) == (403, "invite_invalid"), token
    other = f"{room}-other"
    await _owner_and_room(api_server, other, "none")
    wrong_room = await _join_with(bob, other, made["token"])
    assert (wrong_room.status_code, wrong_room.json()["error"]) == (403, "invite_invalid")
    assert (await bob.join(other)).status_code == 404


async def test_an_invite_is_not_an_access_token(api_server, room):
    ada = await _owner_and_room(api_server, room)
    made = await _invite(ada, room)
    as_bearer = await User(ada.base, made["token"], "", "").call(
        "GET", f"/api/rooms/{room}/members"
    )
    assert as_bearer.status_code == 401
    assert jwt.decode(made["token"], options={"verify_signature": False})["aud"] == AUDIENCE


async def test_invites_grant_at_most_editor_and_only_owners_make_them(api_server, room):
    ada = await _owner_and_room(api_server, room)
    owner = await ada.call("POST", f"/api/rooms/{room}/invites", json={"role": "owner"})
    assert (owner.status_code, owner.json()["error"]) == (403, "forbidden")
    bob = await new_user(api_server.http_url)
    await bob.join(room)  # an editor
    await ada.call("PATCH", f"/api/rooms/{room}", json={"link_access": "view"})
    carol = await new_user(api_server.http_url)
    await carol.join(room)  # a viewer
    for user, role in ((bob, "editor"), (bob, "viewer"), (carol, "editor")):
        refused = await user.call("POST", f"/api/rooms/{room}/invites", json={"role": role})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden"), role
    assert (await bob.call("GET", f"/api/rooms/{room}/invites")).status_code == 403
    stranger = await new_user(api_server.http_url)
    hidden = await stranger.call("POST", f"/api/rooms/{room}/invites", json={"role": "viewer"})
    assert hidden.status_code == 404
    short = await ada.call(
        "POST", f"/api/rooms/{room}/invites", json={"role": "viewer", "expires_in_s": 5}
    )
    assert short.status_code == 400


async def test_an_invite_never_creates_a_room(api_server, room):
    ada = await _owner_and_room(api_server, room)
    made = await _invite(ada, room)
    await ada.call("DELETE", f"/api/rooms/{room}")
    bob = await new_user(api_server.http_url)
    gone = await _join_with(bob, room, made["token"])
    assert (gone.status_code, gone.json()["error"]) == (410, "room_deleted")


@pytest.fixture
async def postgres_server(tmp_path: Path, migrated_postgres: str) -> AsyncIterator[LiveServer]:
    """A server on PostgreSQL alone: Row Level Security is PostgreSQL's."""
    async with live_server(quick_settings(tmp_path, database_url=migrated_postgres)) as running:
        yield running


async def test_rls_refuses_a_join_by_link_to_an_invite_only_room_without_the_python_check(
    postgres_server: LiveServer, room, monkeypatch
):
    ada = await _owner_and_room(postgres_server, room, "none")

    async def always_open(*_: object) -> str:
        return "edit"

    monkeypatch.setattr(RoomDirectory, "_link_access", always_open)
    bob = await new_user(postgres_server.http_url)
    refused = await bob.join(room)
    assert refused.status_code == 503  # the INSERT policy refused the membership
    members = (await ada.call("GET", f"/api/rooms/{room}/members")).json()
    assert [m["user_id"] for m in members] == [ada.id]


async def _insert_membership(url: str, room: str, user: str, role: str, token: str | None) -> str:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            claims = json.dumps({"sub": user, "role": "authenticated"})
            await connection.execute(
                "SELECT set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', $1, true),"
                " set_config('pairpilot.invite_token', $2, true)",
                claims,
                token or "",
            )
            return str(
                await connection.execute(
                    "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, $3)",
                    room,
                    user,
                    role,
                )
            )
    finally:
        await connection.close()


async def test_rls_admits_a_self_join_to_an_invite_only_room_only_with_a_live_invite(
    postgres_server: LiveServer, room, migrated_postgres
):
    ada = await _owner_and_room(postgres_server, room, "none")
    made = await _invite(ada, room, "viewer")
    stranger = str(uuid.uuid4())
    for role, token in (("editor", None), ("owner", None), ("editor", made["token"])):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _insert_membership(migrated_postgres, room, stranger, role, token)
    joined = await _insert_membership(migrated_postgres, room, stranger, "viewer", made["token"])
    assert joined == "INSERT 0 1"
    await ada.call("DELETE", f"/api/rooms/{room}/invites/{made['id']}")
    late = str(uuid.uuid4())
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _insert_membership(migrated_postgres, room, late, "viewer", made["token"])
