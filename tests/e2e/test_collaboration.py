"""Two people in one room: typing, remote cursors, reload."""

import asyncio

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import ARTIFACTS, REPO, NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    editor_text,
    expect_editor_text,
    open_room,
    type_at_end,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_typing_in_one_page_appears_in_the_other(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await expect_editor_text(bob, await editor_text(ada))

    await type_at_end(ada, "\n# hello from Ada")
    expected = await editor_text(ada)
    assert expected.endswith("# hello from Ada")
    await expect_editor_text(bob, expected)

    await type_at_end(bob, "\n# and Bob")
    await expect_editor_text(ada, expected + "\n# and Bob")


async def test_the_remote_cursor_shows_its_owners_name(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)

    await type_at_end(ada, "\n# Ada was here")
    label = bob.locator("[data-testid=editor] .cm-ySelectionInfo", has_text="Ada")
    await expect(label).to_be_visible(timeout=UI_TIMEOUT_MS)
    # Visible to a person, not only to the DOM: not faded out until hovered.
    await expect(label).to_have_css("opacity", "1", timeout=UI_TIMEOUT_MS)

    await type_at_end(bob, "\n# Bob too")
    await expect(
        ada.locator("[data-testid=editor] .cm-ySelectionInfo", has_text="Bob")
    ).to_be_visible(timeout=UI_TIMEOUT_MS)

    ARTIFACTS.mkdir(exist_ok=True)
    await bob.screenshot(path=ARTIFACTS / "two-person-editor.png")
    assert (REPO / "test-artifacts" / "two-person-editor.png").stat().st_size > 0


async def test_reloading_the_page_shows_the_same_content(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await type_at_end(ada, "\nprint('kept across a reload')")
    typed = await editor_text(ada)

    await ada.reload()
    await open_room(ada, server.http_url, room)
    await expect_editor_text(ada, typed)


async def test_two_people_opening_a_new_room_at_once_edit_the_same_file(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    bob = await person("Bob")
    # Both may see an empty room and both create the starter file: one must win everywhere.
    await asyncio.gather(
        ada.goto(f"{server.http_url}/r/{room}"), bob.goto(f"{server.http_url}/r/{room}")
    )
    for page in (ada, bob):
        await expect(page.get_by_test_id("current-file")).to_have_text(
            "main.py", timeout=UI_TIMEOUT_MS
        )
    await expect(ada.get_by_test_id("file-item")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await expect(bob.get_by_test_id("file-item")).to_have_count(1, timeout=UI_TIMEOUT_MS)

    await type_at_end(ada, "\n# from Ada")
    await type_at_end(bob, "\n# from Bob")
    for page in (ada, bob):
        await expect(page.locator("[data-testid=editor] .cm-content")).to_contain_text(
            "# from Ada", timeout=UI_TIMEOUT_MS
        )
        await expect(page.locator("[data-testid=editor] .cm-content")).to_contain_text(
            "# from Bob", timeout=UI_TIMEOUT_MS
        )
    await expect_editor_text(bob, await editor_text(ada))


async def test_edits_made_offline_are_sent_when_back_online(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)

    await ada.context.set_offline(offline=True)
    await expect(ada.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "offline", timeout=UI_TIMEOUT_MS
    )
    await type_at_end(ada, "\n# written offline")
    await type_at_end(bob, "\n# written meanwhile")
    await ada.context.set_offline(offline=False)

    await expect(ada.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "connected", timeout=UI_TIMEOUT_MS
    )
    for page in (ada, bob):
        content = page.locator("[data-testid=editor] .cm-content")
        await expect(content).to_contain_text("# written offline", timeout=UI_TIMEOUT_MS)
        await expect(content).to_contain_text("# written meanwhile", timeout=UI_TIMEOUT_MS)
    await expect_editor_text(bob, await editor_text(ada))


async def test_a_person_who_closes_the_page_is_shown_offline(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    bob_for_ada = ada.get_by_test_id("participant").filter(has_text="Bob")
    await expect(bob_for_ada).to_have_attribute("data-online", "true", timeout=UI_TIMEOUT_MS)

    await bob.close()
    await expect(bob_for_ada).to_have_attribute("data-online", "false", timeout=UI_TIMEOUT_MS)
    await expect(ada.get_by_test_id("participant").filter(has_text="Ada")).to_have_attribute(
        "data-online", "true"
    )
