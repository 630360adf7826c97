"""Follow mode and leading with three people in Debian's chromium (issue #25)."""

from __future__ import annotations

import pytest
from playwright.async_api import Locator, Page, expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    create_file,
    editor_content,
    open_file,
    open_room,
    paste_code,
)
from tests.e2e.test_presence_page import _awareness_frame
from websockets.asyncio.client import connect

from pairpilot.testing import LiveServer, join, sign_in

pytestmark = pytest.mark.anyio

LONG = "".join(f"line_{number} = {number}\n" for number in range(1, 301))


async def three(person: NewPerson, base_url: str, room: str) -> tuple[Page, Page, Page]:
    """Ada (the owner), Bob and Cy, each with the room open."""
    pages = []
    for name in ("Ada", "Bob", "Cy"):
        page = await person(name)
        await open_room(page, base_url, room)
        pages.append(page)
    ada, bob, cy = pages
    return ada, bob, cy


def control(page: Page, of: str, test_id: str) -> Locator:
    """A control inside the participant item of the person named ``of``."""
    return by_test_id(page, "participant").filter(has_text=of).get_by_test_id(test_id)


async def follow(page: Page, of: str) -> None:
    await control(page, of, "follow").click(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(page, "follow-banner")).to_have_text(
        f"Following {of} — Esc to stop Stop", timeout=UI_TIMEOUT_MS
    )


async def expect_not_following(page: Page, why: str | None = None) -> None:
    await expect(by_test_id(page, "follow-banner")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    if why is not None:
        await expect(by_test_id(page, "follow-note-text")).to_contain_text(why)


def line(page: Page, text: str) -> Locator:
    return page.locator("[data-testid=editor] .cm-line", has_text=text)


async def test_following_opens_their_file_and_keeps_their_lines_in_view(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob, cy = await three(person, server.http_url, room)
    await create_file(ada, "long.py")
    await paste_code(ada, LONG)
    await open_file(ada, "main.py")
    await follow(bob, "Ada")
    await expect(control(bob, "Ada", "unfollow")).to_be_visible()
    await expect(by_test_id(ada, "followers")).to_have_text("Bob is following you")
    await follow(cy, "Ada")
    await expect(by_test_id(ada, "followers")).to_have_text(
        "Bob and Cy are following you", timeout=UI_TIMEOUT_MS
    )

    # Ada opens the long file and goes to its end: Bob's page follows, file and lines.
    await open_file(ada, "long.py")
    await expect(by_test_id(bob, "current-file")).to_have_text("long.py", timeout=UI_TIMEOUT_MS)
    await editor_content(ada).click()
    await ada.keyboard.press("Control+End")
    await expect(line(ada, "line_300 = 300")).to_be_in_viewport()
    await expect(line(bob, "line_300 = 300")).to_be_in_viewport(timeout=UI_TIMEOUT_MS)
    # And back up to the middle.
    await ada.keyboard.press("Control+Home")
    for _ in range(150):
        await ada.keyboard.press("ArrowDown")
    await expect(line(bob, "line_151 = 151")).to_be_in_viewport(timeout=UI_TIMEOUT_MS)
    await expect(line(bob, "line_300 = 300")).not_to_be_in_viewport()
    await expect(by_test_id(bob, "follow-banner")).to_be_visible()

    # Unfollow from the participant list.
    await control(cy, "Ada", "unfollow").click()
    await expect_not_following(cy)
    await expect(by_test_id(ada, "followers")).to_have_text(
        "Bob is following you", timeout=UI_TIMEOUT_MS
    )
    # A file Ada makes now (its name may reach Bob's awareness before its text): Bob opens it.
    await create_file(ada, "fresh.py")
    await expect(by_test_id(bob, "current-file")).to_have_text("fresh.py", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(cy, "current-file")).to_have_text("long.py")


async def test_selecting_keeps_following_typing_scrolling_or_another_file_stops_it(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob, _ = await three(person, server.http_url, room)
    await create_file(ada, "long.py")
    await paste_code(ada, LONG)
    await follow(bob, "Ada")
    await expect(by_test_id(bob, "current-file")).to_have_text("long.py", timeout=UI_TIMEOUT_MS)

    # Clicking and selecting: still following.
    await editor_content(bob).click()
    await bob.keyboard.press("Shift+ArrowDown")
    await bob.keyboard.press("Shift+ArrowRight")
    await expect(by_test_id(bob, "follow-banner")).to_be_visible()
    # Typing stops it, and says so.
    await bob.keyboard.type("x")
    await expect_not_following(bob, "You stopped following Ada: you typed.")
    await expect(by_test_id(ada, "followers")).to_be_hidden(timeout=UI_TIMEOUT_MS)

    await follow(bob, "Ada")
    await editor_content(bob).hover()
    await bob.mouse.wheel(0, 600)
    await expect_not_following(bob, "You stopped following Ada: you scrolled.")

    await follow(bob, "Ada")
    await open_file(bob, "main.py")
    await expect_not_following(bob, "You stopped following Ada: you opened another file.")

    await follow(bob, "Ada")
    await bob.keyboard.press("Escape")
    await expect_not_following(bob, "You stopped following Ada: you pressed Esc.")


async def test_following_someone_who_follows_you_is_refused(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob, cy = await three(person, server.http_url, room)
    await follow(bob, "Ada")
    await follow(cy, "Bob")
    await control(ada, "Bob", "follow").click()
    await expect(by_test_id(ada, "follow-note-text")).to_have_text(
        "Bob is following you, so you cannot follow Bob: that would be a loop."
    )
    await control(ada, "Cy", "follow").click()  # Cy follows Bob, who follows Ada
    await expect(by_test_id(ada, "follow-note-text")).to_contain_text("cannot follow Cy")
    await expect(by_test_id(ada, "follow-banner")).to_be_hidden()
    await expect(by_test_id(bob, "follow-banner")).to_be_visible()


async def test_an_owner_leads_everyone_including_people_who_join_and_then_stops(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
    await expect(by_test_id(bob, "lead")).to_be_hidden()  # owners only
    await create_file(ada, "lead.py")
    await by_test_id(ada, "lead").click()
    await expect(by_test_id(ada, "lead")).to_have_text("Stop leading")
    await expect(by_test_id(bob, "follow-banner")).to_contain_text(
        "Following Ada", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(bob, "current-file")).to_have_text("lead.py", timeout=UI_TIMEOUT_MS)

    # Cy joins while Ada leads: Cy follows too.
    cy = await person("Cy")
    await cy.goto(f"{server.http_url}/r/{room}")
    await expect(by_test_id(cy, "follow-banner")).to_contain_text(
        "Following Ada", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(cy, "current-file")).to_have_text("lead.py", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "followers")).to_have_text(
        "Bob and Cy are following you", timeout=UI_TIMEOUT_MS
    )

    # Cy stops on their own: Bob keeps following, and Cy is not pulled back in.
    await cy.keyboard.press("Escape")
    await expect_not_following(cy)
    await open_file(ada, "main.py")
    await expect(by_test_id(bob, "current-file")).to_have_text("main.py", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(cy, "current-file")).to_have_text("lead.py")
    await expect(by_test_id(cy, "follow-banner")).to_be_hidden()

    # Ada stops leading: Bob is told.
    await by_test_id(ada, "lead").click()
    await expect_not_following(bob, "You stopped following Ada: Ada stopped leading.")


async def test_a_leader_who_leaves_ends_the_following_with_a_note(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob, cy = await three(person, server.http_url, room)
    await by_test_id(ada, "lead").click()
    for page in (bob, cy):
        await expect(by_test_id(page, "follow-banner")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await ada.close()
    for page in (bob, cy):
        await expect_not_following(page, "You stopped following Ada: they left the room.")


async def test_a_peers_forged_lead_and_follow_fields_do_nothing_on_the_page(
    server: LiveServer, room: str, person: NewPerson
):
    """An editor's raw client claims to be an owner who leads, follows an HTML string, and sends
    a view that is no view: the page follows nobody and shows none of it."""
    ada: Page = await person("Ada")
    await open_room(ada, server.http_url, room)
    mallory = await sign_in(server.http_url, "Mallory")
    member = (await join(server.http_url, room, mallory))["member"]
    async with connect(server.ws_url(room, mallory), compression=None) as websocket:
        state = {
            "user": {"id": member["user_id"], "name": "Mallory", "role": "owner"},
            "lead": 1_700_000_000_000,
            "follow": '<img src=x onerror="window.__pwned = 1">',
            "view": {"file": "main.py", "top": "<b>", "bottom": 5},
        }
        await websocket.send(_awareness_frame(4242, 1, state))
        mallory_item = ada.locator(f"[data-testid=participant][data-user-id='{member['user_id']}']")
        await expect(mallory_item).to_have_attribute("data-online", "true", timeout=UI_TIMEOUT_MS)
        await expect(by_test_id(ada, "follow-banner")).to_be_hidden()
        await expect(by_test_id(ada, "followers")).to_be_hidden()
        assert await ada.locator("img").count() == 0
        assert await ada.evaluate("() => window.__pwned") is None
