"""Issue #13 in the browser: the saved signal, version history and restore, zip and upload."""

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from tests.e2e.conftest import ARTIFACTS, NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    clipboard_text,
    create_file,
    editor_content,
    editor_text,
    expect_editor_text,
    file_item,
    open_file,
    open_room,
    set_code,
    type_at_end,
)

from pairpilot.testing import LiveServer

pytestmark = pytest.mark.anyio

# Every data-state the save signal takes from now on, in order: each change's old value.
_RECORD_SAVE_STATES_JS = """() => {
  const status = document.querySelector('[data-testid=save-status]');
  window.__saveStates = [];
  new MutationObserver((records) => records.forEach((r) => window.__saveStates.push(r.oldValue)))
    .observe(status, { attributeFilter: ['data-state'], attributeOldValue: true });
}"""
_SAVE_STATES_JS = """() => [...window.__saveStates,
  document.querySelector('[data-testid=save-status]').dataset.state]"""

# Whether closing the tab now would ask first (the page's beforeunload handler cancels it).
_WOULD_WARN_ON_CLOSE_JS = """() => {
  const event = new Event('beforeunload', { cancelable: true });
  window.dispatchEvent(event);
  return event.defaultPrevented;
}"""


async def expect_saved(page: Page) -> None:
    """The save signal says every edit of this page is stored."""
    status = by_test_id(page, "save-status")
    await expect(status).to_have_attribute("data-state", "saved", timeout=UI_TIMEOUT_MS)
    await expect(status).to_have_text("Saved")


async def open_history(page: Page) -> None:
    """Open the history panel and wait until its list is loaded."""
    await by_test_id(page, "history-toggle").click()
    await expect(by_test_id(page, "history-panel")).to_be_visible()
    await expect(by_test_id(page, "version-list")).to_have_attribute(
        "aria-busy", "false", timeout=UI_TIMEOUT_MS
    )


async def name_version(page: Page, name: str) -> None:
    """Name the room's current state from the open history panel."""
    await by_test_id(page, "name-version").click()
    await by_test_id(page, "version-name-input").fill(name)
    await by_test_id(page, "version-name-save").click()
    named = by_test_id(page, "version-item").filter(has_text=name)
    await expect(named).to_have_attribute("data-kind", "named", timeout=UI_TIMEOUT_MS)


async def api_call(page: Page, method: str, path: str, body: object = None) -> object:
    """Call the API from the page with its own token; the JSON answer."""
    return await page.evaluate(
        """async ([method, path, body]) => {
          const { token } = JSON.parse(localStorage.getItem('pairpilot.session'));
          const response = await fetch(path, {
            method,
            headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
            body: body === null ? undefined : JSON.stringify(body),
          });
          if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
          return response.json();
        }""",
        [method, path, body],
    )


async def test_the_save_signal_says_saved_once_the_server_stored_an_edit(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    # The server's first "saved" message comes right after the first sync.
    await expect_saved(ada)

    await ada.evaluate(_RECORD_SAVE_STATES_JS)
    await type_at_end(ada, "\n# stored")
    await expect_saved(ada)
    states = await ada.evaluate(_SAVE_STATES_JS)
    assert "saving" in states, f"the edit was never shown as being saved: {states}"
    assert states[-1] == "saved"
    assert not await ada.evaluate(_WOULD_WARN_ON_CLOSE_JS)


async def test_edits_made_offline_are_counted_until_the_server_stored_them(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await expect_saved(ada)

    await ada.context.set_offline(offline=True)
    await expect(by_test_id(ada, "connection-status")).to_have_attribute(
        "data-state", "offline", timeout=UI_TIMEOUT_MS
    )
    await editor_content(ada).click()
    await ada.keyboard.press("Control+End")
    for char in "abc":  # three keystrokes: three transactions of this page
        await ada.keyboard.type(char)
    status = by_test_id(ada, "save-status")
    await expect(status).to_have_attribute("data-state", "offline")
    # Kept on this device (IndexedDB, see test_offline.py): closing the tab loses nothing.
    await expect(status).to_have_text("Offline — your edits are kept on this device")
    await expect(status).to_have_attribute("title", re.compile(r"^3 edits not sent yet"))
    assert not await ada.evaluate(_WOULD_WARN_ON_CLOSE_JS), "warned though nothing can be lost"

    await ada.context.set_offline(offline=False)
    await expect_saved(ada)
    assert not await ada.evaluate(_WOULD_WARN_ON_CLOSE_JS)
    await expect_editor_text(bob, await editor_text(ada))


async def test_a_restore_reaches_the_other_person_live_with_a_note(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(ada, "print('version one')\n")
    await expect_editor_text(bob, "print('version one')\n")

    await open_history(ada)
    await name_version(ada, "Before refactor")
    await set_code(ada, "print('refactored')\n")
    await expect_editor_text(bob, "print('refactored')\n")

    await by_test_id(ada, "version-item").filter(has_text="Before refactor").click()
    preview = by_test_id(ada, "version-preview")
    await expect(preview).to_be_visible()
    diff = by_test_id(ada, "version-diff")
    await expect(diff).to_have_attribute("data-file", "main.py", timeout=UI_TIMEOUT_MS)
    # Red: the file now; green: the version's text.
    await expect(diff.locator(".cm-deletedChunk")).to_contain_text("print('refactored')")
    await expect(diff.locator(".cm-changedLine, .cm-insertedLine").first).to_contain_text(
        "print('version one')"
    )
    assert await diff.get_attribute("data-changes") != "0"
    ARTIFACTS.mkdir(exist_ok=True)
    await ada.screenshot(path=ARTIFACTS / "history-panel.png")

    await bob.evaluate("window.__notReloaded = true")
    await by_test_id(ada, "restore-version").click()

    await expect_editor_text(ada, "print('version one')\n")
    await expect_editor_text(bob, "print('version one')\n")
    assert await bob.evaluate("window.__notReloaded === true"), "Bob's page was reloaded"
    note = by_test_id(bob, "restore-note")
    await expect(note).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(note).to_contain_text("Ada restored “Before refactor” (version ")
    # The state the restore replaced is a version of its own, listed at once.
    backup = by_test_id(ada, "version-item").filter(has_text="Before restoring “Before refactor”")
    await expect(backup).to_have_attribute("data-kind", "restore", timeout=UI_TIMEOUT_MS)
    # The preview follows the live text: nothing differs any more.
    await expect(diff).to_have_attribute("data-changes", "0", timeout=UI_TIMEOUT_MS)

    # Someone opening the room later gets the restored text, and no note: it is not news.
    cy = await person("Cy")
    await open_room(cy, server.http_url, room)
    await expect_editor_text(cy, "print('version one')\n")
    await expect(by_test_id(cy, "restore-note")).to_be_hidden()


async def test_the_history_lists_versions_newest_first_and_loads_more(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    for number in range(1, 23):
        await api_call(ada, "POST", f"/api/rooms/{room}/versions", {"name": f"v{number}"})

    await open_history(ada)
    items = by_test_id(ada, "version-item")
    await expect(items).to_have_count(20, timeout=UI_TIMEOUT_MS)
    await expect(items.first).to_contain_text("v22")
    await expect(items.first).to_contain_text("Ada")
    await by_test_id(ada, "versions-more").click()
    await expect(items.filter(has_text="v1")).to_have_count(
        # "v1" also matches v10…v19: every named one is listed once.
        11,
        timeout=UI_TIMEOUT_MS,
    )
    shown = await items.locator(".version-title").all_text_contents()
    named = [title for title in shown if title.startswith("v")]
    assert named == [f"v{number}" for number in range(22, 0, -1)]


async def test_the_downloaded_zip_holds_exactly_the_rooms_files(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    main = "print('héllo ✓')\n\nfor i in range(2):\n    print(i)\n"
    await set_code(ada, main)
    await create_file(ada, "notes.md")
    notes = "# Notes\n\n- ünïcode, tabs\tand trailing spaces   \n"
    await set_code(ada, notes)
    assert await editor_text(ada) == notes

    async with ada.expect_download() as download_info:
        await by_test_id(ada, "download-zip").click()
    download = await download_info.value
    assert download.suggested_filename == f"{room}.zip"
    path = await download.path()
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["main.py", "notes.md"]
        assert archive.read("main.py") == main.encode()
        assert archive.read("notes.md") == notes.encode()


async def test_an_uploaded_zip_adds_its_files_to_the_room_at_their_paths(
    server: LiveServer, room: str, person: NewPerson, tmp_path: Path
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    util = "def double(x):\n    return 2 * x\n"
    readme = "# Projet\n\nÇa marche ✓\n"
    upload = tmp_path / "project.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("util.py", util)
        archive.writestr("docs/README.md", readme)
        archive.writestr("main.py", "print('uploaded')\n")  # taken: gets a number

    await by_test_id(ada, "upload-input").set_input_files(upload)

    for page in (ada, bob):
        for name in ("util.py", "docs/README.md", "main (2).py"):
            await expect(file_item(page, name)).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "upload-result")).to_contain_text("util.py")
    # The first uploaded file is opened.
    await expect(by_test_id(ada, "current-file")).to_have_text("util.py")
    await expect_editor_text(ada, util)
    await open_file(bob, "docs/README.md")
    await expect_editor_text(bob, readme)
    await open_file(bob, "main (2).py")
    await expect_editor_text(bob, "print('uploaded')\n")


async def test_uploaded_text_files_are_added_and_binary_ones_refused(
    server: LiveServer, room: str, person: NewPerson, tmp_path: Path
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    (tmp_path / "a.js").write_text("console.log('a');\n")
    (tmp_path / "b.json").write_text(json.dumps({"b": 1}))
    await by_test_id(ada, "upload-input").set_input_files([tmp_path / "a.js", tmp_path / "b.json"])
    await expect(file_item(ada, "a.js")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(file_item(ada, "b.json")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect_editor_text(ada, "console.log('a');\n")

    image = tmp_path / "logo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    await by_test_id(ada, "upload-input").set_input_files(image)
    await expect(by_test_id(ada, "error-message")).to_contain_text(
        "logo.png is not a UTF-8 text file", timeout=UI_TIMEOUT_MS
    )
    await expect(ada.get_by_test_id("file-item")).to_have_count(3)


async def test_a_broken_zip_is_refused_with_the_servers_reason(
    server: LiveServer, room: str, person: NewPerson, tmp_path: Path
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    broken = tmp_path / "broken.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.py", "x = 1\n")
    broken.write_bytes(buffer.getvalue()[:20])

    await by_test_id(ada, "upload-input").set_input_files(broken)
    await expect(by_test_id(ada, "error-message")).to_contain_text(
        "Could not upload the files: 400", timeout=UI_TIMEOUT_MS
    )
    await expect(ada.get_by_test_id("file-item")).to_have_count(1)


async def test_a_viewer_browses_the_history_but_cannot_restore_name_or_upload(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await open_history(ada)
    await name_version(ada, "Kept")
    await by_test_id(ada, "default-role-select").select_option("viewer")
    await expect(by_test_id(ada, "default-role-select")).to_have_value("viewer")
    await expect(by_test_id(ada, "upload-files")).to_be_visible()

    cy = await person("Cy")
    loads: list[str] = []
    cy.on("load", lambda page: loads.append(page.url))
    await open_room(cy, server.http_url, room)
    await expect(by_test_id(cy, "read-only-notice")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(cy, "upload-files")).to_be_hidden()
    await expect(by_test_id(cy, "download-zip")).to_be_enabled()
    await open_history(cy)
    await expect(by_test_id(cy, "name-version")).to_be_disabled()
    await by_test_id(cy, "version-item").filter(has_text="Kept").click()
    await expect(by_test_id(cy, "version-diff")).to_have_attribute(
        "data-file", "main.py", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(cy, "restore-version")).to_be_disabled()
    # Cy never typed: nothing of Cy's was refused, so no reload and no refusal banner.
    await expect(by_test_id(cy, "error-message")).to_be_hidden()
    assert len(loads) == 1, f"Cy's page was loaded {len(loads)} times"


async def test_copy_invite_link_puts_the_room_address_on_the_clipboard(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=server.http_url
    )
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "copy-invite").click()
    await by_test_id(ada, "copy-room-link").click()
    await expect(by_test_id(ada, "invite-copied")).to_have_text("Link copied")
    room_link = f"{server.http_url}/r/{room}"
    assert await clipboard_text(ada, room_link) == room_link


async def test_without_a_clipboard_the_invite_link_is_shown_selected(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    await open_room(ada, server.http_url, room)
    await by_test_id(ada, "copy-invite").click()
    await by_test_id(ada, "copy-room-link").click()
    field = by_test_id(ada, "invite-link")
    await expect(field).to_be_visible()
    await expect(field).to_have_value(f"{server.http_url}/r/{room}")
    await expect(field).to_be_focused()
    selected = await ada.evaluate("document.activeElement.selectionEnd")
    assert selected == len(f"{server.http_url}/r/{room}")
