"""Rooms and members, DESIGN.md §4, on SQLite and PostgreSQL alike."""

import asyncio

import pytest
from tests.support import new_user

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_the_first_joiner_creates_the_room_and_owns_it(api_server: LiveServer, room):
    ada = await new_user(api_server.http_url, "Ada")
    response = await ada.join(room)
    assert response.status_code == 200
    body = response.json()
    assert body["room"]["id"] == room
    assert body["room"]["owner_id"] == ada.id
    assert body["room"]["default_role"] == "editor"
    assert body["room"]["created_at"]
    assert body["member"] == {"user_id": ada.id, "role": "owner", "name": "Ada"}


async def test_later_joiners_get_the_default_role_and_join_is_idempotent(api_server, room):
    ada, bob = await new_user(api_server.http_url), await new_user(api_server.http_url)
    await ada.join(room)
    first = (await bob.join(room)).json()
    again = (await bob.join(room)).json()
    assert (first["member"]["user_id"], first["member"]["role"]) == (bob.id, "editor")
    assert again == first
    assert (await ada.join(room)).json()["member"]["role"] == "owner"


async def test_twenty_simultaneous_joins_make_one_room_and_one_owner(api_server, room):
    users = await asyncio.gather(*(new_user(api_server.http_url) for _ in range(20)))
    answers = await asyncio.gather(*(user.join(room) for user in users))
    assert all(answer.status_code == 200 for answer in answers)
    roles = [answer.json()["member"]["role"] for answer in answers]
    assert roles.count("owner") == 1
    assert roles.count("editor") == 19
    assert len({answer.json()["room"]["owner_id"] for answer in answers}) == 1
    members = (await users[0].call("GET", f"/api/rooms/{room}/members")).json()
    assert len(members) == 20


async def test_members_are_listed_for_members_only(api_server, room):
    ada, bob, eve = [await new_user(api_server.http_url, n) for n in ("Ada", "Bob", "Eve")]
    await ada.join(room)
    await bob.join(room)
    listed = (await bob.call("GET", f"/api/rooms/{room}/members")).json()
    assert {(m["user_id"], m["role"], m["name"]) for m in listed} == {
        (ada.id, "owner", "Ada"),
        (bob.id, "editor", "Bob"),
    }
    hidden = await eve.call("GET", f"/api/rooms/{room}/members")
    assert hidden.status_code == 404
    assert hidden.json()["error"] == "not_found"


async def test_non_members_get_404_for_everything_about_a_room(api_server, room):
    ada, eve = await new_user(api_server.http_url), await new_user(api_server.http_url)
    await ada.join(room)
    calls = [
        ("GET", f"/api/rooms/{room}/members", None),
        ("PUT", f"/api/rooms/{room}/members/{ada.id}", {"role": "viewer"}),
        ("PATCH", f"/api/rooms/{room}", {"default_role": "viewer"}),
        ("GET", f"/api/rooms/{room}/snapshot", None),
        ("POST", f"/api/rooms/{room}/snapshot", {"snapshot_b64": "AAA="}),
    ]
    for method, path, body in calls:
        response = await eve.call(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    # The same answer as for a room that does not exist at all.
    nowhere = await eve.call("GET", "/api/rooms/never-created-room/members")
    assert nowhere.status_code == 404
    assert nowhere.json()["error"] == "not_found"


async def test_owners_change_roles_and_others_cannot(api_server, room):
    ada, bob, cat = [await new_user(api_server.http_url) for _ in range(3)]
    for user in (ada, bob, cat):
        await user.join(room)
    promoted = await ada.call("PUT", f"/api/rooms/{room}/members/{bob.id}", json={"role": "viewer"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "viewer"
    self_promotion = await cat.call(
        "PUT", f"/api/rooms/{room}/members/{cat.id}", json={"role": "owner"}
    )
    assert self_promotion.status_code == 403
    by_viewer = await bob.call(
        "PUT", f"/api/rooms/{room}/members/{cat.id}", json={"role": "viewer"}
    )
    assert by_viewer.status_code == 403
    unknown = await ada.call(
        "PUT",
        f"/api/rooms/{room}/members/{'0' * 8}-0000-0000-0000-{'0' * 12}",
        json={"role": "editor"},
    )
    assert unknown.status_code == 404
    bad_role = await ada.call("PUT", f"/api/rooms/{room}/members/{bob.id}", json={"role": "god"})
    assert bad_role.status_code == 400
    roles = {
        m["user_id"]: m["role"]
        for m in (await ada.call("GET", f"/api/rooms/{room}/members")).json()
    }
    assert roles == {ada.id: "owner", bob.id: "viewer", cat.id: "editor"}


async def test_the_last_owner_cannot_demote_themself(api_server, room):
    ada, bob = await new_user(api_server.http_url), await new_user(api_server.http_url)
    await ada.join(room)
    await bob.join(room)
    refused = await ada.call("PUT", f"/api/rooms/{room}/members/{ada.id}", json={"role": "editor"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "conflict"
    await ada.call("PUT", f"/api/rooms/{room}/members/{bob.id}", json={"role": "owner"})
    allowed = await ada.call("PUT", f"/api/rooms/{room}/members/{ada.id}", json={"role": "editor"})
    assert allowed.status_code == 200


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(api_server, room):
    for attempt in range(8):
        room_id = f"{room}-{attempt}"
        ada, bob = await new_user(api_server.http_url), await new_user(api_server.http_url)
        await ada.join(room_id)
        await bob.join(room_id)
        await ada.call("PUT", f"/api/rooms/{room_id}/members/{bob.id}", json={"role": "owner"})
        answers = await asyncio.gather(
            ada.call("PUT", f"/api/rooms/{room_id}/members/{bob.id}", json={"role": "editor"}),
            bob.call("PUT", f"/api/rooms/{room_id}/members/{ada.id}", json={"role": "editor"}),
        )
        # The second change is judged after the first: its caller is no longer an owner.
        assert sorted(answer.status_code for answer in answers) == [200, 403]
        members = (await ada.call("GET", f"/api/rooms/{room_id}/members")).json()
        assert [m["role"] for m in members].count("owner") == 1


async def test_owners_set_the_default_role_for_new_members(api_server, room):
    ada, bob, cat = [await new_user(api_server.http_url) for _ in range(3)]
    await ada.join(room)
    await bob.join(room)
    refused = await bob.call("PATCH", f"/api/rooms/{room}", json={"default_role": "viewer"})
    assert refused.status_code == 403
    changed = await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "viewer"})
    assert changed.status_code == 200
    assert changed.json()["default_role"] == "viewer"
    assert (await cat.join(room)).json()["member"]["role"] == "viewer"
    bad = await ada.call("PATCH", f"/api/rooms/{room}", json={"default_role": "owner!"})
    assert bad.status_code == 400


@pytest.mark.parametrize("bad_id", ["has.dot", "x" * 65, "sp%20ace"])
async def test_invalid_room_ids_are_400(api_server: LiveServer, bad_id: str):
    ada = await new_user(api_server.http_url)
    response = await ada.join(bad_id)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_unknown_paths_answer_json_404(api_server: LiveServer):
    ada = await new_user(api_server.http_url)
    response = await ada.call("GET", "/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
