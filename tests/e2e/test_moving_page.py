"""Moving a room with a guessable id to a new link, in the browser (issue #22)."""

import re
import uuid

import pytest
from playwright.async_api import expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    SYNC_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    by_test_id,
    expect_connected,
    expect_editor_text,
    open_room,
    set_code,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio

NEW_ID = re.compile(r"/r/(moved-room-[A-Za-z0-9_-]{22})$")


async def test_the_owner_moves_a_guessable_room_and_a_members_page_follows(
    server: LiveServer, person: NewPerson
):
    room = f"g{uuid.uuid4().hex[:8]}"  # a short id: guessable
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await set_code(ada, "print('moves along')")
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
    await expect_editor_text(bob, "print('moves along')")

    move = by_test_id(ada, "move-room")
    await expect(move).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "move-room")).to_be_hidden()  # owners only
    await move.click()
    await by_test_id(ada, "move-room-dialog-confirm").click()

    await ada.wait_for_url(NEW_ID, timeout=UI_TIMEOUT_MS)
    new_id = NEW_ID.search(ada.url).group(1)
    await bob.wait_for_url(f"{server.http_url}/r/{new_id}", timeout=SYNC_TIMEOUT_MS)
    for page in (ada, bob):
        await expect_connected(page)
        await expect_editor_text(page, "print('moves along')")
    await expect(by_test_id(ada, "guessable-note")).to_be_hidden()
