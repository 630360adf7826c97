"""Links no one can guess, in the browser: start page ids, link access, invite links."""

import re

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    clipboard_text,
    editor_text,
    expect_connected,
    expect_editor_text,
    open_room,
    type_at_end,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio

# The start page's ids: readable words, then 22 base64url characters (128 random bits).
UNGUESSABLE_ID = re.compile(r"^[a-z]+-[a-z]+-[A-Za-z0-9_-]{22}$")


async def test_the_start_page_makes_room_ids_with_at_least_96_random_bits(
    server: LiveServer, person: NewPerson
):
    ada = await person("Ada")
    ids = []
    for _ in range(2):
        await ada.goto(server.http_url + "/")
        await by_test_id(ada, "create-room").click()
        await ada.wait_for_url(re.compile(r"/r/[^/]+$"), timeout=UI_TIMEOUT_MS)
        await expect_connected(ada)
        ids.append(ada.url.rsplit("/", 1)[1])
    assert all(UNGUESSABLE_ID.fullmatch(room_id) for room_id in ids), ids
    assert ids[0].rsplit("-", 1)[-1] != ids[1].rsplit("-", 1)[-1]
    await expect(by_test_id(ada, "guessable-note")).to_be_hidden()


async def test_an_editor_invite_to_an_invite_only_room_lets_a_second_person_edit(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=server.http_url
    )
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "copy-invite").click()
    await by_test_id(ada, "link-access").select_option("none")
    await expect(by_test_id(ada, "room-link-access")).to_contain_text("Invite only")
    await by_test_id(ada, "copy-invite-editor").click()
    await expect(by_test_id(ada, "invite-copied")).to_have_text("Link copied")
    link = await clipboard_text(ada, f"{server.http_url}/r/{room}?invite=")
    assert link.startswith(f"{server.http_url}/r/{room}?invite=")

    # Without the invite, the room's plain link finds nothing.
    eve = await person("Eve")
    await eve.goto(f"{server.http_url}/r/{room}")
    await expect(by_test_id(eve, "error-message")).to_contain_text(
        "Room not found or not accessible", timeout=UI_TIMEOUT_MS
    )

    bob = await person("Bob")
    await bob.goto(link)
    await expect_connected(bob)
    await expect(by_test_id(bob, "read-only-notice")).to_be_hidden()
    assert bob.url == f"{server.http_url}/r/{room}"  # the token leaves the address bar
    bob_in_adas_list = by_test_id(ada, "participant").filter(has_text="Bob")
    await expect(bob_in_adas_list).to_have_attribute("data-role", "editor", timeout=UI_TIMEOUT_MS)
    before = await editor_text(ada)
    await type_at_end(bob, "\n# Bob was invited")
    await expect_editor_text(ada, before + "\n# Bob was invited")

    await bob.reload()  # a member now: the plain link is enough
    await expect_connected(bob)


async def test_owners_of_a_room_with_a_guessable_id_see_a_note(
    server: LiveServer, person: NewPerson
):
    room = "brave-otter-42"  # the old start page's shape: 36,000 ids in all
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    note = by_test_id(ada, "guessable-note")
    await expect(note).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(note).to_contain_text("guessed")
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
    await expect(by_test_id(bob, "guessable-note")).to_be_hidden()
    await by_test_id(bob, "copy-invite").click()
    await expect(by_test_id(bob, "link-access")).to_be_hidden()  # owners only
    await expect(by_test_id(bob, "room-link-access")).to_have_text(
        "Anyone with the room link can edit"
    )

    await by_test_id(ada, "copy-invite").click()
    await by_test_id(ada, "link-access").select_option("none")
    await expect(note).to_be_hidden()


async def test_an_owner_lists_and_revokes_invite_links_and_the_revoked_link_is_refused(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.context.grant_permissions(["clipboard-write"], origin=server.http_url)
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "copy-invite").click()
    await by_test_id(ada, "link-access").select_option("none")
    await expect(by_test_id(ada, "invite-list-empty")).to_be_visible()
    # The link as the server made it (the clipboard is the other test's subject).
    async with ada.expect_response(
        lambda r: r.url.endswith("/invites") and r.request.method == "POST"
    ) as made:
        await by_test_id(ada, "copy-invite-viewer").click()
    token = (await (await made.value).json())["token"]
    await expect(by_test_id(ada, "invite-copied")).to_have_text("Link copied")

    await by_test_id(ada, "copy-invite").click()  # the menu lists what is live when it opens
    items = by_test_id(ada, "invite-item")
    await expect(items).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await expect(items.first).to_have_attribute("data-role", "viewer")
    await expect(items.first).to_contain_text("Viewer link, expires")
    await by_test_id(ada, "revoke-invite").click()
    await expect(items).to_have_count(0, timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "invite-list-empty")).to_be_visible()

    bob = await person("Bob")
    await bob.goto(f"{server.http_url}/r/{room}?invite={token}")
    await expect(by_test_id(bob, "error-message")).to_contain_text("revoked", timeout=UI_TIMEOUT_MS)
