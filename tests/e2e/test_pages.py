"""The file list shared between pages, the start page, and a bad room id."""

import re

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    create_file,
    expect_connected,
    expect_editor_text,
    file_item,
    open_file,
    open_room,
    set_code,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_a_file_created_and_renamed_in_one_page_appears_in_the_other(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)

    await create_file(ada, "notes.md")
    await set_code(ada, "# shared notes\n")
    await expect(file_item(bob, "notes.md")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await open_file(bob, "notes.md")
    await expect_editor_text(bob, "# shared notes\n")

    await by_test_id(ada, "rename-file").click()
    await by_test_id(ada, "file-name-input").fill("readme.md")
    await by_test_id(ada, "file-name-input").press("Enter")
    await expect(by_test_id(ada, "current-file")).to_have_text("readme.md", timeout=UI_TIMEOUT_MS)

    # Bob had the file open: he follows the rename and keeps the text.
    await expect(file_item(bob, "readme.md")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(file_item(bob, "notes.md")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "current-file")).to_have_text("readme.md", timeout=UI_TIMEOUT_MS)
    await expect_editor_text(bob, "# shared notes\n")


async def test_the_start_page_creates_a_room_and_lands_in_it(server: LiveServer, person: NewPerson):
    ada = await person("Ada")
    await ada.goto(server.http_url + "/")
    await expect(by_test_id(ada, "name-input")).to_have_value("Ada", timeout=UI_TIMEOUT_MS)
    await by_test_id(ada, "name-input").fill("Ada Lovelace")
    await by_test_id(ada, "create-room").click()

    await ada.wait_for_url(re.compile(r"/r/[A-Za-z0-9_-]{1,64}$"), timeout=UI_TIMEOUT_MS)
    room_id = ada.url.rsplit("/", 1)[1]
    await expect(by_test_id(ada, "room-id")).to_have_text(room_id)
    await expect(by_test_id(ada, "my-name")).to_have_text("Ada Lovelace")
    await expect_connected(ada)
    await expect(by_test_id(ada, "current-file")).to_have_text("main.py", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "participant").filter(has_text="Ada Lovelace")).to_have_attribute(
        "data-role", "owner", timeout=UI_TIMEOUT_MS
    )


async def test_the_start_page_opens_a_room_by_id(server: LiveServer, room: str, person: NewPerson):
    ada = await person("Ada")
    await ada.goto(server.http_url + "/")
    await by_test_id(ada, "open-room-input").fill(room)
    await by_test_id(ada, "open-room").click()
    await ada.wait_for_url(f"{server.http_url}/r/{room}", timeout=UI_TIMEOUT_MS)
    await expect_connected(ada)

    # The start page remembers it.
    await ada.goto(server.http_url + "/")
    recent = by_test_id(ada, "recent-rooms").locator(f"a[data-room-id='{room}']")
    await expect(recent).to_be_visible(timeout=UI_TIMEOUT_MS)
    await recent.click()
    await ada.wait_for_url(f"{server.http_url}/r/{room}", timeout=UI_TIMEOUT_MS)
    await expect_connected(ada)


async def test_an_invalid_room_id_shows_an_error(server: LiveServer, person: NewPerson):
    ada = await person("Ada")
    await ada.goto(server.http_url + "/r/not%20a%20room!")
    error = by_test_id(ada, "error-message")
    await expect(error).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(error).to_contain_text("is not a room id")
    await expect(by_test_id(ada, "editor")).to_have_count(0)

    await ada.goto(server.http_url + "/")
    room_input = by_test_id(ada, "open-room-input")
    await room_input.fill("bad/id")
    # The field's own pattern works in the browser (it marks the field invalid as one types).
    assert await room_input.evaluate("(input) => input.validity.patternMismatch")
    await room_input.fill("good_id-42")
    assert not await room_input.evaluate("(input) => input.validity.patternMismatch")
    await room_input.fill("bad/id")
    await by_test_id(ada, "open-room").click()
    await expect(by_test_id(ada, "home-error")).to_contain_text(
        "Room ids are 1", timeout=UI_TIMEOUT_MS
    )
    assert ada.url == server.http_url + "/"


async def test_a_stored_token_the_server_rejects_is_replaced_by_a_new_sign_in(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    # A session from another server (or a rotated secret): well-formed, far from expiry, refused.
    await ada.context.add_init_script(
        """localStorage.getItem('pairpilot.session') || localStorage.setItem(
             'pairpilot.session', JSON.stringify({
               token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
               expiresAt: Date.now() + 86400000,
               user: {id: '00000000-0000-0000-0000-000000000000', name: 'Ada'}}));"""
    )
    await open_room(ada, server.http_url, room)
    await expect(by_test_id(ada, "error-message")).to_be_hidden()
    session = await ada.evaluate("JSON.parse(localStorage.getItem('pairpilot.session'))")
    assert session["user"]["id"] != "00000000-0000-0000-0000-000000000000"
    # One Ada, online, as the owner: no ghost of the refused identity.
    await expect(by_test_id(ada, "participant")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    me = by_test_id(ada, "participant").filter(has_text="Ada")
    await expect(me).to_have_attribute("data-user-id", session["user"]["id"])
    await expect(me).to_have_attribute("data-role", "owner", timeout=UI_TIMEOUT_MS)
    await expect(me).to_have_attribute("data-online", "true")
