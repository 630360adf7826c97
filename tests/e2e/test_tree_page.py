"""The file tree on the page: folders, moves while someone types, drag and drop, quick open,
search across files, and a folder upload that keeps its paths."""

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    editor_text,
    expect_editor_text,
    file_item,
    open_file,
    open_room,
    set_code,
    type_at_end,
)
from tests.support import new_user

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio


def folder_item(page: Page, path: str):
    """The tree's row for the folder at `path`."""
    return page.locator(f"[data-testid=folder-item][data-folder='{path}']")


async def drag(page: Page, source: Locator, target: Locator) -> None:
    """Drag `source` onto `target` with the mouse, releasing once the target takes the drop."""
    await expect(target).to_be_visible(timeout=UI_TIMEOUT_MS)
    box = await target.bounding_box()
    assert box is not None
    await source.hover()
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    await expect(target).to_have_class(re.compile(r"\bdrop-target\b"), timeout=UI_TIMEOUT_MS)
    await page.mouse.up()


async def _project(server: LiveServer, room: str) -> None:
    """The room holds a small project (uploaded with its paths) before anyone opens it."""
    owner = await new_user(server.http_url, "Owner")
    assert (await owner.join(room)).status_code == 200
    files = [
        {"name": "main.py", "text": "from utils.strings import slug\nprint(slug('Hi There'))\n"},
        {
            "name": "utils/strings.py",
            "text": "def slug(s):\n    return s.lower().replace(' ', '-')\n",
        },
        {"name": "utils/__init__.py", "text": ""},
        {"name": "docs/notes.md", "text": "# notes\nslug makes ids\n"},
    ]
    response = await owner.call("POST", f"/api/rooms/{room}/files", json={"files": files})
    assert response.status_code == 200, response.text


async def _new(page: Page, button: str, path: str) -> None:
    await by_test_id(page, button).click()
    await by_test_id(page, "file-name-input").fill(path)
    await by_test_id(page, "file-name-input").press("Enter")


async def test_a_file_moved_into_a_new_folder_while_another_person_types_in_it_keeps_every_edit(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await _new(ada, "new-folder", "lib")
    await expect(folder_item(bob, "lib")).to_be_visible(timeout=UI_TIMEOUT_MS)

    async def bob_types() -> None:
        for i in range(8):
            await type_at_end(bob, f"\n# bob {i}")

    async def ada_moves() -> None:
        await drag(ada, file_item(ada, "main.py"), folder_item(ada, "lib"))

    await asyncio.gather(bob_types(), ada_moves())
    for page in (ada, bob):
        await expect(file_item(page, "lib/main.py")).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(file_item(page, "main.py")).to_have_count(0)
    # Bob's editor followed the file to its new path without losing a keystroke.
    await expect(by_test_id(bob, "current-file")).to_have_text("lib/main.py", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "current-file")).to_have_text("lib/main.py", timeout=UI_TIMEOUT_MS)
    text = await editor_text(bob)
    assert all(f"# bob {i}" in text for i in range(8)), text
    await expect_editor_text(ada, text)


async def test_folders_open_close_rename_and_delete_with_a_count(
    server: LiveServer, room: str, person: NewPerson
):
    await _project(server, room)
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await expect(file_item(ada, "utils/strings.py")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await folder_item(ada, "utils").click()  # closes it
    await expect(folder_item(ada, "utils")).to_have_attribute("aria-expanded", "false")
    await expect(file_item(ada, "utils/strings.py")).to_have_count(0)
    await folder_item(ada, "utils").click()
    await expect(file_item(ada, "utils/strings.py")).to_be_visible()

    await open_file(bob, "utils/strings.py")
    await folder_item(ada, "utils").click()  # selects (and closes) it: rename acts on it
    await by_test_id(ada, "rename-file").click()
    await expect(by_test_id(ada, "file-name-input")).to_have_value("utils")
    await by_test_id(ada, "file-name-input").fill("src/helpers")
    await by_test_id(ada, "file-name-input").press("Enter")
    for page in (ada, bob):
        await expect(file_item(page, "src/helpers/strings.py")).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(file_item(page, "src/helpers/__init__.py")).to_be_visible()
    await expect(by_test_id(bob, "current-file")).to_have_text("src/helpers/strings.py")
    # Bob's presence shows on the file he is in.
    await expect(
        file_item(ada, "src/helpers/strings.py").get_by_test_id("file-presence")
    ).to_have_attribute("title", "Bob", timeout=UI_TIMEOUT_MS)

    await folder_item(ada, "src").click()
    await by_test_id(ada, "delete-file").click()
    await expect(by_test_id(ada, "delete-question")).to_have_text(
        "Delete folder src and the 2 files in it?"
    )
    await by_test_id(ada, "confirm-delete").click()
    for page in (ada, bob):
        await expect(page.get_by_test_id("file-item")).to_have_count(2, timeout=UI_TIMEOUT_MS)
        await expect(folder_item(page, "src")).to_have_count(0)


async def test_quick_open_finds_a_file_by_a_fuzzy_path(
    server: LiveServer, room: str, person: NewPerson
):
    await _project(server, room)
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await ada.keyboard.press("Control+P")
    await by_test_id(ada, "quick-open-input").fill("utstr")
    await expect(by_test_id(ada, "quick-open-item").first).to_have_attribute(
        "data-file", "utils/strings.py"
    )
    await by_test_id(ada, "quick-open-input").press("Enter")
    await expect(by_test_id(ada, "current-file")).to_have_text("utils/strings.py")
    await expect(by_test_id(ada, "quick-open")).to_have_count(0)
    await expect(file_item(ada, "utils/strings.py")).to_have_attribute("aria-selected", "true")


async def test_search_across_files_lists_matches_by_file_and_line_and_opens_one(
    server: LiveServer, room: str, person: NewPerson
):
    await _project(server, room)
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await ada.keyboard.press("Control+Shift+F")
    await by_test_id(ada, "search-input").fill("SLUG")
    results = by_test_id(ada, "search-result")
    found = [
        (await r.get_attribute("data-file"), await r.get_attribute("data-line"))
        for r in await results.all()
    ]
    assert found == [
        ("docs/notes.md", "2"),
        ("utils/strings.py", "1"),
        ("main.py", "1"),
        ("main.py", "2"),
    ]
    await expect(by_test_id(ada, "search-file")).to_have_count(3)
    await results.nth(1).click()
    await expect(by_test_id(ada, "current-file")).to_have_text("utils/strings.py")


async def test_a_folder_upload_keeps_its_paths(
    server: LiveServer, room: str, person: NewPerson, tmp_path: Path
):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "app.py").write_text("import pkg.tool\n")
    (project / "pkg" / "tool.py").write_text("NAME = 'tool'\n")
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "upload-folder-input").set_input_files(project)
    await expect(file_item(ada, "project/pkg/tool.py")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(file_item(ada, "project/app.py")).to_be_visible()
    await open_file(ada, "project/pkg/tool.py")
    await expect_editor_text(ada, "NAME = 'tool'\n")


async def test_a_comment_thread_stays_on_its_file_when_the_file_moves(
    server: LiveServer, room: str, person: NewPerson
):
    from tests.e2e.test_comments_page import comment, select_on_line  # noqa: PLC0415

    ada, bob = await ada_and_bob(person, server.http_url, room)
    await _new(ada, "new-file", "notes.py")
    await set_code(ada, "x = 1\nprint('target')\n")
    await open_file(bob, "notes.py")
    await expect_editor_text(bob, "x = 1\nprint('target')\n")
    await select_on_line(ada, 2, 7, 6)
    await comment(ada, "look here")
    await expect(by_test_id(bob, "comment-thread")).to_have_count(1, timeout=UI_TIMEOUT_MS)

    await by_test_id(ada, "rename-file").click()
    await by_test_id(ada, "file-name-input").fill("src/notes.py")
    await by_test_id(ada, "file-name-input").press("Enter")
    for page in (ada, bob):
        await expect(by_test_id(page, "current-file")).to_have_text(
            "src/notes.py", timeout=UI_TIMEOUT_MS
        )
        # Threads name the file by its id: the move keeps them on it.
        await expect(by_test_id(page, "comment-thread")).to_have_count(1)
        await expect(by_test_id(page, "comment-thread")).to_contain_text("look here")


async def test_tabs_follow_the_files_opened_renamed_and_closed(
    server: LiveServer, room: str, person: NewPerson
):
    await _project(server, room)
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await open_file(ada, "utils/strings.py")
    await open_file(ada, "docs/notes.md")
    tabs = by_test_id(ada, "tab")
    await expect(tabs).to_have_count(3)
    await tabs.nth(1).click()
    await expect(by_test_id(ada, "current-file")).to_have_text("utils/strings.py")
    await expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")

    await by_test_id(ada, "rename-file").click()
    await by_test_id(ada, "file-name-input").fill("lib/strings.py")
    await by_test_id(ada, "file-name-input").press("Enter")
    await expect(tabs.nth(1)).to_have_attribute("data-file", "lib/strings.py")

    await tabs.nth(1).get_by_test_id("tab-close").click()
    await expect(tabs).to_have_count(2)
    await expect(by_test_id(ada, "current-file")).to_have_text("docs/notes.md")
