"""What a person does on the room page, by the client's data-testids (client/README.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from playwright.async_api import Locator, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

# Generous: other jobs (benchmarks) may load the 2-core machine while these tests run.
UI_TIMEOUT_MS = 30_000
SYNC_TIMEOUT_MS = 30_000

# The open file's text as CodeMirror shows it, without the remote carets' name labels.
_EDITOR_TEXT_JS = """() => {
  const lines = document.querySelectorAll('[data-testid=editor] .cm-content > .cm-line');
  return [...lines].map((line) => {
    const copy = line.cloneNode(true);
    copy.querySelectorAll('.cm-ySelectionCaret').forEach((caret) => caret.remove());
    return copy.textContent;
  }).join('\\n');
}"""


def by_test_id(page: Page, test_id: str) -> Locator:
    """The element with this data-testid."""
    return page.get_by_test_id(test_id)


def editor_content(page: Page) -> Locator:
    """CodeMirror's editable element."""
    return page.locator("[data-testid=editor] .cm-content")


async def open_room(page: Page, base_url: str, room_id: str, *, file: str = "main.py") -> None:
    """Load /r/{room_id}, wait until synced and `file` is open in the editor."""
    await page.goto(f"{base_url}/r/{room_id}")
    await expect_connected(page)
    await expect(by_test_id(page, "current-file")).to_have_text(file, timeout=UI_TIMEOUT_MS)


async def ada_and_bob(
    person: Callable[[str], Awaitable[Page]], base_url: str, room_id: str
) -> tuple[Page, Page]:
    """Two people, Ada then Bob, each with the room open and synced."""
    ada = await person("Ada")
    await open_room(ada, base_url, room_id)
    bob = await person("Bob")
    await open_room(bob, base_url, room_id)
    return ada, bob


async def expect_connected(page: Page, timeout: int = UI_TIMEOUT_MS) -> None:
    """The connection status says connected (synced with the server)."""
    await expect(by_test_id(page, "connection-status")).to_have_attribute(
        "data-state", "connected", timeout=timeout
    )


async def editor_text(page: Page) -> str:
    """The open file's text as shown."""
    text: str = await page.evaluate(_EDITOR_TEXT_JS)
    return text


async def expect_editor_text(page: Page, expected: str, timeout: int = SYNC_TIMEOUT_MS) -> None:
    """Wait (bounded) until the editor shows exactly `expected`."""
    try:
        await page.wait_for_function(
            f"(expected) => ({_EDITOR_TEXT_JS})() === expected", arg=expected, timeout=timeout
        )
    except PlaywrightTimeoutError as exc:
        shown = await editor_text(page)
        raise AssertionError(f"editor shows {shown!r}, expected {expected!r}") from exc


# A paste as the browser delivers it: CodeMirror inserts the clipboard text over the selection.
_PASTE_JS = """(code) => {
  const data = new DataTransfer();
  data.setData('text/plain', code);
  document.querySelector('[data-testid=editor] .cm-content').dispatchEvent(
    new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}"""


async def set_code(page: Page, code: str) -> None:
    """Replace the open file's content: select all, paste (no auto-indent or auto-close).

    A paste goes through CodeMirror's own handler. Inserted (IME-like) text goes into the DOM
    first and CodeMirror reads it back from there; with that, one CI run ran a file that did not
    parse ("Invalid or unexpected token") after Bob replaced Ada's code, which 37 runs here
    under CPU load did not reproduce. The editor is checked to show exactly `code` after.
    """
    await paste_code(page, code)
    await expect_editor_text(page, code)


async def paste_code(page: Page, code: str) -> None:
    """Select all of the open file and paste `code` over it (not checked: long texts scroll)."""
    await editor_content(page).click()
    await page.keyboard.press("Control+A")
    await page.evaluate(_PASTE_JS, code)


async def type_at_end(page: Page, text: str) -> None:
    """Type like a person at the end of the open file."""
    await editor_content(page).click()
    await page.keyboard.press("Control+End")
    await page.keyboard.type(text)


async def run_and_wait(page: Page, status: str = "done", timeout: int = UI_TIMEOUT_MS) -> str:
    """Press Run, wait until a new shared run reaches `status`; its run id."""
    run_status = by_test_id(page, "run-status")
    previous = await run_status.get_attribute("data-run-id") or ""
    await expect(by_test_id(page, "run")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    await by_test_id(page, "run").click()
    await expect(run_status).not_to_have_attribute("data-run-id", previous, timeout=timeout)
    await expect(run_status).to_have_attribute("data-status", status, timeout=timeout)
    return await run_status.get_attribute("data-run-id") or ""


async def create_file(page: Page, name: str) -> None:
    """Create a file through the file list; it opens in the editor."""
    await by_test_id(page, "new-file").click()
    await by_test_id(page, "file-name-input").fill(name)
    await by_test_id(page, "file-name-input").press("Enter")
    await expect(by_test_id(page, "current-file")).to_have_text(name, timeout=UI_TIMEOUT_MS)


def file_item(page: Page, name: str) -> Locator:
    """The file list's entry for `name`."""
    return page.locator(f"[data-testid=file-item][data-file='{name}']")


async def open_file(page: Page, name: str) -> None:
    """Open `name` from the file list (waiting for it to arrive)."""
    await file_item(page, name).click(timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(page, "current-file")).to_have_text(name, timeout=UI_TIMEOUT_MS)


async def clipboard_text(page: Page, prefix: str, timeout_s: float = UI_TIMEOUT_MS / 1000) -> str:
    """The clipboard's text once it starts with ``prefix`` (read again until then).

    On a busy machine Chromium's ``readText`` has answered "" right after ``writeText``
    resolved; the text arrives a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        text: str = await page.evaluate("navigator.clipboard.readText()")
        if text.startswith(prefix) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)
