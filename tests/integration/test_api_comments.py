"""Comment threads over the REST API, on both backends: each status, from the client's side."""

import asyncio

import pytest
from tests.support import ANCHOR, User, comment_events, new_user, thread_body
from websockets.asyncio.client import connect

from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio


async def people(server: LiveServer, room: str) -> tuple[User, User, User, User]:
    """The room's owner, an editor, a viewer, and a stranger who is no member."""
    owner = await new_user(server.http_url, "Ada")
    editor = await new_user(server.http_url, "Bob")
    viewer = await new_user(server.http_url, "Cy")
    stranger = await new_user(server.http_url, "Eve")
    await owner.join(room)
    await editor.join(room)
    await viewer.join(room)
    role = await owner.call(
        "PUT", f"/api/rooms/{room}/members/{viewer.id}", json={"role": "viewer"}
    )
    assert role.status_code == 200
    return owner, editor, viewer, stranger


async def test_an_editor_opens_a_thread_and_members_read_it_with_its_replies(api_server, room):
    owner, editor, viewer, _ = await people(api_server, room)
    made = await editor.call("POST", f"/api/rooms/{room}/comments", json=thread_body())
    assert made.status_code == 201
    thread = made.json()
    assert thread["author_id"] == editor.id
    assert thread["author_name"] == "Bob"
    assert thread["anchor"] == ANCHOR
    assert thread["resolved"] is False
    answer = await owner.call(
        "POST", f"/api/rooms/{room}/comments/{thread['id']}/replies", json={"body": "  Debug.  "}
    )
    assert answer.status_code == 201
    assert answer.json()["body"] == "Debug."
    listed = await viewer.call("GET", f"/api/rooms/{room}/comments")
    assert listed.status_code == 200
    [seen] = listed.json()["threads"]
    assert seen["body"] == "Why print here?"
    assert [reply["author_name"] for reply in seen["replies"]] == ["Ada"]


async def test_the_list_filters_by_file_and_by_resolution(api_server, room):
    owner, *_ = await people(api_server, room)
    first = (await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body())).json()
    await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body(file="util.js"))
    resolved = await owner.call(
        "PATCH", f"/api/rooms/{room}/comments/{first['id']}", json={"resolved": True}
    )
    assert resolved.status_code == 200
    assert resolved.json()["resolved"] is True
    assert resolved.json()["resolved_by"] == owner.id

    async def files(query: str) -> list[str]:
        found = await owner.call("GET", f"/api/rooms/{room}/comments{query}")
        return [thread["file"] for thread in found.json()["threads"]]

    assert await files("") == ["main.py", "util.js"]
    assert await files("?file=util.js") == ["util.js"]
    assert await files("?resolved=true") == ["main.py"]
    assert await files("?resolved=false&file=main.py") == []
    reopened = await owner.call(
        "PATCH", f"/api/rooms/{room}/comments/{first['id']}", json={"resolved": False}
    )
    assert reopened.json() == {
        "thread_id": first["id"],
        "resolved": False,
        "resolved_by": None,
        "resolved_at": None,
    }


async def test_viewers_read_but_every_write_is_403(api_server, room):
    owner, _, viewer, _ = await people(api_server, room)
    thread = (await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body())).json()
    base = f"/api/rooms/{room}/comments"
    writes = [
        ("POST", base, thread_body()),
        ("POST", f"{base}/{thread['id']}/replies", {"body": "me too"}),
        ("PATCH", f"{base}/{thread['id']}", {"resolved": True}),
        ("DELETE", f"{base}/{thread['id']}", None),
    ]
    for method, path, body in writes:
        answer = await viewer.call(method, path, json=body)
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"] == "forbidden"
    assert (await viewer.call("GET", base)).status_code == 200
    [kept] = (await owner.call("GET", base)).json()["threads"]
    assert kept["resolved"] is False
    assert kept["replies"] == []


async def test_a_stranger_gets_404_for_everything_and_learns_nothing(api_server, room):
    owner, _, _, stranger = await people(api_server, room)
    thread = (await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body())).json()
    base = f"/api/rooms/{room}/comments"
    calls = [
        ("GET", base, None),
        ("POST", base, thread_body()),
        ("POST", f"{base}/{thread['id']}/replies", {"body": "hi"}),
        ("PATCH", f"{base}/{thread['id']}", {"resolved": True}),
        ("DELETE", f"{base}/{thread['id']}", None),
    ]
    for method, path, body in calls:
        answer = await stranger.call(method, path, json=body)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"] == "not_found"
    assert len((await owner.call("GET", base)).json()["threads"]) == 1


async def test_authors_delete_their_own_owners_anyones_editors_not_others(api_server, room):
    owner, editor, _, _ = await people(api_server, room)
    base = f"/api/rooms/{room}/comments"
    mine = (await owner.call("POST", base, json=thread_body())).json()
    theirs = (await editor.call("POST", base, json=thread_body(quote="x"))).json()
    reply = (await editor.call("POST", f"{base}/{mine['id']}/replies", json={"body": "ok"})).json()
    refused = await editor.call("DELETE", f"{base}/{mine['id']}")
    assert refused.status_code == 403
    assert "author" in refused.json()["message"]
    gone = await editor.call("DELETE", f"{base}/{reply['id']}")
    assert gone.status_code == 200
    assert gone.json() == {"thread_id": mine["id"], "comment_id": reply["id"], "deleted": True}
    again = await owner.call("POST", f"{base}/{mine['id']}/replies", json={"body": "stays?"})
    assert again.status_code == 201
    assert (await owner.call("DELETE", f"{base}/{theirs['id']}")).status_code == 200
    assert (await owner.call("DELETE", f"{base}/{mine['id']}")).status_code == 200  # + replies
    assert (await owner.call("GET", base)).json()["threads"] == []
    missing = await owner.call("DELETE", f"{base}/{mine['id']}")
    assert missing.status_code == 404


async def test_unknown_threads_are_404(api_server, room):
    owner, *_ = await people(api_server, room)
    base = f"/api/rooms/{room}/comments"
    reply = await owner.call("POST", f"{base}/nosuchthread/replies", json={"body": "hi"})
    assert reply.status_code == 404
    resolve = await owner.call("PATCH", f"{base}/nosuchthread", json={"resolved": True})
    assert resolve.status_code == 404


async def test_a_reply_is_not_a_thread_one_can_reply_to_or_resolve(api_server, room):
    owner, *_ = await people(api_server, room)
    base = f"/api/rooms/{room}/comments"
    thread = (await owner.call("POST", base, json=thread_body())).json()
    reply = (await owner.call("POST", f"{base}/{thread['id']}/replies", json={"body": "a"})).json()
    nested = await owner.call("POST", f"{base}/{reply['id']}/replies", json={"body": "b"})
    assert nested.status_code == 404
    assert (
        await owner.call("PATCH", f"{base}/{reply['id']}", json={"resolved": True})
    ).status_code == 404


async def test_a_thread_of_another_room_cannot_be_reached_through_mine(api_server, room):
    owner, *_ = await people(api_server, room)
    other_room = f"{room}-other"
    await owner.join(other_room)
    there = (
        await owner.call("POST", f"/api/rooms/{other_room}/comments", json=thread_body())
    ).json()
    base = f"/api/rooms/{room}/comments"
    assert (
        await owner.call("POST", f"{base}/{there['id']}/replies", json={"body": "x"})
    ).status_code == 404
    assert (await owner.call("DELETE", f"{base}/{there['id']}")).status_code == 404
    assert (
        len((await owner.call("GET", f"/api/rooms/{other_room}/comments")).json()["threads"]) == 1
    )


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"body": ""}, 400, "bad_request"),
        ({"body": "   \n "}, 400, "bad_request"),
        ({"body": "nul \x00 inside"}, 400, "bad_request"),
        ({"body": "x" * 4001}, 413, "comment_too_long"),
        ({"quote": "q" * 2001}, 413, "comment_too_long"),
        ({"body": "x" * 100_001}, 400, "bad_request"),
        ({"file": ""}, 400, "bad_request"),
        ({"file": "a\nb"}, 400, "bad_request"),
        ({"anchor": {"start": "not base64!", "end": ANCHOR["end"]}}, 400, "bad_request"),
        ({"anchor": {"start": "A" * 300, "end": ANCHOR["end"]}}, 400, "bad_request"),
        ({"anchor": {"start": ANCHOR["start"]}}, 400, "bad_request"),
        ({"body": 12}, 400, "bad_request"),
    ],
)
async def test_bad_threads_are_refused_and_store_nothing(api_server, room, change, status, error):
    owner, *_ = await people(api_server, room)
    answer = await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body(**change))
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["message"]
    assert (await owner.call("GET", f"/api/rooms/{room}/comments")).json()["threads"] == []


async def test_a_body_of_4000_characters_is_kept_whole(api_server, room):
    owner, *_ = await people(api_server, room)
    answer = await owner.call(
        "POST", f"/api/rooms/{room}/comments", json=thread_body(body="é" * 4000)
    )
    assert answer.status_code == 201
    [thread] = (await owner.call("GET", f"/api/rooms/{room}/comments")).json()["threads"]
    assert thread["body"] == "é" * 4000


async def test_markup_is_kept_as_the_text_it_is(api_server, room):
    owner, *_ = await people(api_server, room)
    markup = '<img src=x onerror="alert(1)"> & <b>bold</b>'
    await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body(body=markup))
    [thread] = (await owner.call("GET", f"/api/rooms/{room}/comments")).json()["threads"]
    assert thread["body"] == markup


async def test_a_full_thread_refuses_another_reply_with_413(api_server, room, monkeypatch):
    monkeypatch.setattr("pairpilot.storage.comments.MAX_REPLIES_PER_THREAD", 2)
    monkeypatch.setattr("pairpilot.storage.comments.MAX_THREADS_PER_ROOM", 1)
    owner, *_ = await people(api_server, room)
    base = f"/api/rooms/{room}/comments"
    thread = (await owner.call("POST", base, json=thread_body())).json()
    for text in ("one", "two"):
        assert (
            await owner.call("POST", f"{base}/{thread['id']}/replies", json={"body": text})
        ).status_code == 201
    third = await owner.call("POST", f"{base}/{thread['id']}/replies", json={"body": "three"})
    assert third.status_code == 413
    assert third.json()["error"] == "too_many_comments"
    another = await owner.call("POST", base, json=thread_body())
    assert another.status_code == 413
    assert another.json()["error"] == "too_many_comments"
    [kept] = (await owner.call("GET", base)).json()["threads"]
    assert [reply["body"] for reply in kept["replies"]] == ["one", "two"]
    metrics = (await owner.call("GET", "/metrics")).text
    assert 'reason="comments_per_room"' in metrics


async def test_comment_writes_count_against_the_write_rate(tmp_path, room):
    async with live_server(quick_settings(tmp_path, write_rate="2/hour")) as server:
        owner = await new_user(server.http_url, "Ada")
        await owner.join(room)
        base = f"/api/rooms/{room}/comments"
        thread = (await owner.call("POST", base, json=thread_body())).json()
        reply = await owner.call("POST", f"{base}/{thread['id']}/replies", json={"body": "a"})
        assert reply.status_code == 201
        limited = await owner.call("PATCH", f"{base}/{thread['id']}", json={"resolved": True})
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert "Retry-After" in limited.headers
        [kept] = (await owner.call("GET", base)).json()["threads"]  # reads are not limited
        assert kept["resolved"] is False


async def test_bad_query_parameters_are_400(api_server, room):
    owner, *_ = await people(api_server, room)
    answer = await owner.call("GET", f"/api/rooms/{room}/comments?resolved=perhaps")
    assert answer.status_code == 400
    assert (
        await owner.call("PATCH", f"/api/rooms/{room}/comments/x", json={"resolved": "maybe"})
    ).status_code == 400
    assert (await owner.call("DELETE", f"/api/rooms/{room}/comments/bad%20id")).status_code == 400


async def test_a_restore_leaves_the_threads_alone(api_server, room):
    owner, *_ = await people(api_server, room)
    version = await owner.call("POST", f"/api/rooms/{room}/versions", json={"name": "empty"})
    assert version.status_code == 201
    thread = (await owner.call("POST", f"/api/rooms/{room}/comments", json=thread_body())).json()
    restored = await owner.call(
        "POST", f"/api/rooms/{room}/versions/{version.json()['id']}/restore"
    )
    assert restored.status_code == 200, restored.text
    [kept] = (await owner.call("GET", f"/api/rooms/{room}/comments")).json()["threads"]
    assert kept == thread


async def test_deleting_my_data_erases_my_comments_even_where_i_am_a_viewer(api_server, room):
    ada = await new_user(api_server.http_url, "Ada")
    bob = await new_user(api_server.http_url, "Bob")
    await bob.join(room)  # Bob's room
    await ada.join(room)
    base = f"/api/rooms/{room}/comments"
    bobs = (await bob.call("POST", base, json=thread_body(body="Bob's"))).json()
    adas = (await ada.call("POST", base, json=thread_body(body="Ada's"))).json()
    await bob.call("POST", f"{base}/{adas['id']}/replies", json={"body": "Bob on Ada's"})
    adas_reply = await ada.call("POST", f"{base}/{bobs['id']}/replies", json={"body": "Ada's"})
    await bob.call("PUT", f"/api/rooms/{room}/members/{ada.id}", json={"role": "viewer"})
    async with connect(api_server.ws_url(room, bob.token), compression=None) as page:
        assert (await ada.call("DELETE", "/api/me")).status_code == 200
        events = await asyncio.wait_for(comment_events(page, 2), 30)
    assert sorted(event["deleted"]["comment_id"] for event in events) == sorted(
        [adas["id"], adas_reply.json()["id"]]
    )
    [left] = (await bob.call("GET", base)).json()["threads"]
    assert left["id"] == bobs["id"]
    assert left["replies"] == []
