"""Roles in the browser: an owner makes someone a viewer, who then cannot change anything."""

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    editor_content,
    editor_text,
    expect_editor_text,
    open_room,
    type_at_end,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


async def test_a_viewer_set_by_the_owner_cannot_type(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
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
