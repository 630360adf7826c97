"""Comment threads on the page (issue #25): made on a selection, live in a second page, shown
as text, anchored so that they move with edits, outdated when their text is deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    editor_content,
    expect_editor_text,
    open_room,
    set_code,
)

from pairpilot.testing import LiveServer, join, sign_in

pytestmark = pytest.mark.anyio

PEER = Path(__file__).parents[1] / "interop" / "peer.mjs"
CODE = "x = 1\nprint('target')\ny = 2\n"
MARKUP = '<img src=x onerror="window.__pwned = 1">'


async def select_on_line(page: Page, line: int, start: int, length: int) -> None:
    """Select ``length`` characters of line ``line`` (1-based) from column ``start`` (0-based)."""
    await editor_content(page).click()
    await page.keyboard.press("Control+Home")
    for _ in range(line - 1):
        await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Home")
    for _ in range(start):
        await page.keyboard.press("ArrowRight")
    for _ in range(length):
        await page.keyboard.press("Shift+ArrowRight")


async def comment(page: Page, body: str) -> None:
    """Comment on the selection."""
    await by_test_id(page, "add-comment").click()
    await by_test_id(page, "comment-input").fill(body)
    await by_test_id(page, "comment-submit").click()
    await expect(by_test_id(page, "comment-form")).to_be_hidden(timeout=UI_TIMEOUT_MS)


def thread(page: Page) -> object:
    return by_test_id(page, "comment-thread")


# The text of the editor's underlined comment ranges, without the remote carets in them.
HIGHLIGHTED_JS = """() => [...document.querySelectorAll('.cm-comment-range')].map((range) => {
  const copy = range.cloneNode(true);
  copy.querySelectorAll('.cm-ySelectionCaret').forEach((caret) => caret.remove());
  return copy.textContent;
}).join('').replaceAll('\\u2060', '')"""


async def highlighted(page: Page) -> str:
    """The text of the editor's underlined comment ranges."""
    text: str = await page.evaluate(HIGHLIGHTED_JS)
    return text


async def test_a_comment_arrives_live_in_a_second_page_and_its_markup_is_text(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(ada, CODE)
    await expect_editor_text(bob, CODE)
    await expect(by_test_id(ada, "add-comment")).to_be_disabled()  # nothing selected yet
    await select_on_line(ada, 2, 7, 6)  # target
    await comment(ada, MARKUP)
    on_bob = by_test_id(bob, "comment-thread")
    await expect(on_bob).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await expect(on_bob).to_have_attribute("data-state", "open")
    await expect(on_bob.get_by_test_id("comment-text")).to_have_text(MARKUP)
    await expect(on_bob.get_by_test_id("comment-quote")).to_have_text("target")
    await expect(by_test_id(bob, "open-comments")).to_have_text("💬 1 open")
    await expect(bob.locator(".cm-comment-gutter [data-testid=comment-marker]")).to_have_count(1)
    assert await highlighted(bob) == "target"
    for page in (ada, bob):
        assert await page.locator("[data-testid=comments] img").count() == 0
        assert await page.evaluate("() => window.__pwned") is None

    # Bob replies, resolves and reopens; Ada sees each change without a reload.
    await on_bob.get_by_test_id("reply-input").fill("<b>agreed</b>")
    await on_bob.get_by_test_id("reply-submit").click()
    on_ada = by_test_id(ada, "comment-thread")
    await expect(on_ada.get_by_test_id("reply-text")).to_have_text("<b>agreed</b>")
    await on_bob.get_by_test_id("comment-resolve").click()
    await expect(on_ada).to_have_attribute("data-state", "resolved", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "open-comments")).to_have_text("💬 0 open")
    await expect(ada.locator("[data-testid=comment-marker]")).to_have_count(0)
    await on_ada.get_by_test_id("comment-reopen").click()
    await expect(on_bob).to_have_attribute("data-state", "open", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "open-comments")).to_have_text("💬 1 open")

    # Jump to the code: the thread's range is selected in the editor.
    await editor_content(bob).click()
    await bob.keyboard.press("Control+End")
    await on_bob.get_by_test_id("comment-jump").click()
    selected = await bob.evaluate("() => window.getSelection().toString()")
    assert selected.replace("\u2060", "") == "target"  # without Ada's caret in it

    # Ada (its author) deletes the thread; it leaves Bob's page.
    await on_ada.get_by_test_id("comment-delete").click()
    await expect(on_bob).to_have_count(0, timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(bob, "comments-empty")).to_be_visible()


async def test_a_thread_whose_text_is_deleted_is_kept_as_outdated_with_its_quote(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(ada, CODE)
    await select_on_line(ada, 2, 0, 15)  # print('target')
    await comment(ada, "Use logging")
    await expect(by_test_id(bob, "comment-thread")).to_have_attribute("data-state", "open")
    await set_code(bob, "x = 1\ny = 2\n")  # the line is gone
    for page in (ada, bob):
        item = by_test_id(page, "comment-thread")
        await expect(item).to_have_attribute("data-state", "outdated", timeout=UI_TIMEOUT_MS)
        await expect(item.get_by_test_id("comment-outdated")).to_be_visible()
        await expect(item.get_by_test_id("comment-quote")).to_have_text("print('target')")
        await expect(item.get_by_test_id("comment-jump")).to_be_disabled()
    # Still there after a reload: nothing dropped it.
    await bob.reload()
    await open_room(bob, server.http_url, room)
    await expect(by_test_id(bob, "comment-thread")).to_have_attribute(
        "data-state", "outdated", timeout=UI_TIMEOUT_MS
    )


async def test_an_anchor_follows_a_stock_clients_edits_before_and_inside_its_range(
    server: LiveServer, room: str, person: NewPerson, node: str
):
    ada: Page = await person("Ada")
    await open_room(ada, server.http_url, room)
    await set_code(ada, CODE)
    await select_on_line(ada, 2, 7, 6)  # target
    await comment(ada, "rename it")
    assert await highlighted(ada) == "target"
    token = await sign_in(server.http_url, "Node")
    await join(server.http_url, room, token)
    stock = await asyncio.create_subprocess_exec(
        node,
        str(PEER),
        f"ws://127.0.0.1:{server.port}/collab",
        room,
        "editAround",
        token,
        stdout=asyncio.subprocess.PIPE,
        env={
            "PATH": "/usr/bin:/bin",
            "FILE": "main.py",
            "FIND": "target",
            "BEFORE": "# added before\n",
            "INSIDE": "XX",
            "INSIDE_AT": "3",
        },
    )
    stdout, _ = await asyncio.wait_for(stock.communicate(), 60)
    final = json.loads(stdout.decode().splitlines()[-1])
    assert stock.returncode == 0, final
    assert final["errors"] == []
    expected = "# added before\nx = 1\nprint('tarXXget')\ny = 2\n"
    await expect_editor_text(ada, expected)
    await ada.wait_for_function(f"() => ({HIGHLIGHTED_JS})() === 'tarXXget'", timeout=UI_TIMEOUT_MS)
    item = by_test_id(ada, "comment-thread")
    await expect(item).to_have_attribute("data-state", "open")
    await expect(item.get_by_test_id("comment-quote")).to_have_text("target")  # as it was made


async def test_a_viewer_reads_threads_but_has_no_comment_controls(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(ada, CODE)
    await select_on_line(ada, 1, 0, 5)
    await comment(ada, "fine")
    bob_in_adas_list = by_test_id(ada, "participant").filter(has_text="Bob")
    await expect(bob_in_adas_list).to_have_attribute("data-role", "editor", timeout=UI_TIMEOUT_MS)
    await bob_in_adas_list.get_by_test_id("role-select").select_option("viewer")
    await expect(by_test_id(bob, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    item = by_test_id(bob, "comment-thread")
    await expect(item.get_by_test_id("comment-text")).to_have_text("fine")
    await select_on_line(bob, 2, 0, 3)
    await expect(by_test_id(bob, "add-comment")).to_be_disabled()
    for control in ("reply-input", "comment-resolve", "comment-delete"):
        await expect(item.get_by_test_id(control)).to_have_count(0)


async def test_a_refused_comment_says_why_and_keeps_the_text(
    server: LiveServer, room: str, person: NewPerson
):
    ada: Page = await person("Ada")
    await open_room(ada, server.http_url, room)
    await set_code(ada, CODE)
    await select_on_line(ada, 1, 0, 5)
    long = "a" * 4001
    await by_test_id(ada, "add-comment").click()
    await by_test_id(ada, "comment-input").fill(long)
    await by_test_id(ada, "comment-submit").click()
    await expect(by_test_id(ada, "comment-error")).to_contain_text(
        "A comment holds at most 4000 characters; this one has 4001", timeout=UI_TIMEOUT_MS
    )
    assert await by_test_id(ada, "comment-input").input_value() == long
    await expect(by_test_id(ada, "comment-thread")).to_have_count(0)
