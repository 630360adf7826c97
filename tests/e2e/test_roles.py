"""Roles in the browser: an owner makes someone a viewer, who then cannot change anything."""

import pytest
from playwright.async_api import Page, expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    editor_content,
    editor_text,
    expect_connected,
    expect_editor_text,
    open_room,
    set_code,
    type_at_end,
)
from tests.support import User

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_a_viewer_set_by_the_owner_cannot_type(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await expect(by_test_id(bob, "read-only-notice")).to_be_hidden()

    bob_in_adas_list = by_test_id(ada, "participant").filter(has_text="Bob")
    await expect(bob_in_adas_list).to_have_attribute("data-role", "editor", timeout=UI_TIMEOUT_MS)
    await bob_in_adas_list.get_by_test_id("role-select").select_option("viewer")
    await expect(bob_in_adas_list).to_have_attribute("data-role", "viewer", timeout=UI_TIMEOUT_MS)

    notice = by_test_id(bob, "read-only-notice")
    await expect(notice).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(notice).to_have_text("Read-only: you are a viewer")
    await expect(editor_content(bob)).to_have_attribute("contenteditable", "false")
    await expect(by_test_id(bob, "run")).to_be_disabled()

    before = await editor_text(ada)
    await editor_content(bob).click(force=True)
    await bob.keyboard.press("Control+End")
    await bob.keyboard.type("viewer typing")
    await bob.keyboard.press("Enter")
    # Ada's next edit reaches Bob after anything Bob might have sent; then compare both sides.
    await type_at_end(ada, "\n# owner still edits")
    await expect_editor_text(bob, before + "\n# owner still edits")
    await expect_editor_text(ada, before + "\n# owner still edits")
    assert "viewer typing" not in await editor_text(bob)
    assert "viewer typing" not in await editor_text(ada)


async def _session_user(page: Page, base: str) -> User:
    """The user a page signed in as (its stored session), to call the API as them."""
    session = await page.evaluate("JSON.parse(localStorage.getItem('pairpilot.session'))")
    return User(base, session["token"], session["user"]["id"], session["user"]["name"])


async def test_a_viewer_set_through_the_api_cannot_type(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    owner = await _session_user(ada, server.http_url)
    viewer = await _session_user(bob, server.http_url)

    response = await owner.call(
        "PUT", f"/api/rooms/{room}/members/{viewer.id}", json={"role": "viewer"}
    )
    assert response.status_code == 200, response.text
    before = await editor_text(ada)

    # Bob's page does not know yet: the editor still takes the keys, the server drops the edit.
    await type_at_end(bob, "\n# viewer typing")
    await expect(by_test_id(bob, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "error-message")).to_have_text(
        "The server did not accept your edit: you are a viewer in this room.",
        timeout=UI_TIMEOUT_MS,
    )
    await expect_connected(bob)
    await expect_editor_text(bob, before)
    await type_at_end(ada, "\n# owner")
    await expect_editor_text(ada, before + "\n# owner")
    await expect_editor_text(bob, before + "\n# owner")


async def test_newcomers_join_with_the_default_role_the_owner_chose(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "default-role-select").select_option("viewer")
    await expect(by_test_id(ada, "default-role-select")).to_have_value("viewer")
    # The choice is stored by the server: it survives Ada's reload.
    await ada.reload()
    await open_room(ada, server.http_url, room)
    await expect(by_test_id(ada, "default-role-select")).to_have_value(
        "viewer", timeout=UI_TIMEOUT_MS
    )

    cy = await person("Cy")
    await open_room(cy, server.http_url, room)
    await expect(by_test_id(cy, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(cy, "new-file")).to_be_disabled()
    await expect(by_test_id(ada, "participant").filter(has_text="Cy")).to_have_attribute(
        "data-role", "viewer", timeout=UI_TIMEOUT_MS
    )

    # A viewer still sees everything live: edits and runs.
    await set_code(ada, 'print("for everyone")\n')
    await expect_editor_text(cy, 'print("for everyone")\n')


async def test_a_viewer_made_editor_again_can_type(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    bob_in_adas_list = by_test_id(ada, "participant").filter(has_text="Bob")
    await expect(bob_in_adas_list.get_by_test_id("role-select")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )

    await bob_in_adas_list.get_by_test_id("role-select").select_option("viewer")
    await expect(by_test_id(bob, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await bob_in_adas_list.get_by_test_id("role-select").select_option("editor")
    await expect(by_test_id(bob, "read-only-notice")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "run")).to_be_enabled(timeout=UI_TIMEOUT_MS)

    await type_at_end(bob, "\n# Bob edits again")
    await expect_editor_text(ada, await editor_text(bob))
    assert (await editor_text(ada)).endswith("# Bob edits again")


async def test_a_viewer_cannot_undo_what_they_typed_as_an_editor(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await type_at_end(bob, "\n# Bob typed this as an editor")
    text = await editor_text(bob)
    await expect_editor_text(ada, text)

    bob_in_adas_list = by_test_id(ada, "participant").filter(has_text="Bob")
    await bob_in_adas_list.get_by_test_id("role-select").select_option("viewer")
    await expect(by_test_id(bob, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    # Keys go to the page where Bob typed: CodeMirror's keymap and the browser's own undo.
    for _ in range(3):
        await bob.keyboard.press("Control+z")
    await bob.keyboard.press("Control+Shift+z")

    await type_at_end(ada, "\n# owner")
    await expect_editor_text(ada, text + "\n# owner")
    await expect_editor_text(bob, text + "\n# owner")
    # Nothing was sent and refused (a refusal shows this banner and reloads the page).
    await expect(by_test_id(bob, "error-message")).to_be_hidden()
