"""The server is killed (SIGKILL) and restarted while two pages are open: nothing is lost."""

import base64
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, expect
from pycrdt import Doc, Map
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    ada_and_bob,
    by_test_id,
    editor_content,
    editor_text,
    expect_connected,
    expect_editor_text,
    open_room,
)

from pairpilot.testing import ServerProcess

pytestmark = pytest.mark.anyio

FLUSH_MS = 100
# Reconnect backoff is capped at 15 s (with jitter); a restart on a loaded machine adds more.
RECONNECT_TIMEOUT_MS = 90_000


def _stored_file_text(database: Path, room: str, file: str) -> str:
    """The file's text as the server stored it: snapshot plus update log, read from SQLite."""
    doc = Doc()
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        for (snapshot_b64,) in db.execute(
            "SELECT snapshot_b64 FROM room_snapshots WHERE room_id = ?", (room,)
        ):
            if snapshot_b64:
                doc.apply_update(base64.b64decode(snapshot_b64))
        for (update,) in db.execute(
            'SELECT "update" FROM room_updates WHERE room_id = ? ORDER BY id', (room,)
        ):
            doc.apply_update(update)
    files = doc.get("files", type=Map)
    return str(files[file]) if file in files else ""


def _wait_until_stored(database: Path, room: str, file: str, needle: str) -> None:
    deadline = time.monotonic() + 30
    while needle not in _stored_file_text(database, room, file):
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} was not flushed to {database} within 30 s")
        time.sleep(FLUSH_MS / 1000)


async def _append(page: Page, text: str) -> None:
    await editor_content(page).click()
    await page.keyboard.press("Control+End")
    await page.keyboard.insert_text(text)


async def test_pages_reconnect_after_a_kill_and_restart_with_nothing_lost(
    tmp_path: Path, chromium: Path, room: str, person: NewPerson
):
    process = ServerProcess(
        {"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": str(FLUSH_MS)}
    )
    await anyio.to_thread.run_sync(process.start)
    try:
        ada, bob = await ada_and_bob(person, process.http_url, room)

        await _append(ada, "\n# typed before the kill")
        before = await editor_text(ada)
        await expect_editor_text(bob, before)
        await anyio.to_thread.run_sync(
            _wait_until_stored,
            tmp_path / "pairpilot.sqlite3",
            room,
            "main.py",
            "# typed before the kill",
        )

        await anyio.to_thread.run_sync(process.kill)
        for page in (ada, bob):
            await expect(by_test_id(page, "connection-status")).not_to_have_attribute(
                "data-state", "connected", timeout=RECONNECT_TIMEOUT_MS
            )

        await anyio.to_thread.run_sync(process.start)
        for page in (ada, bob):
            await expect_connected(page, timeout=RECONNECT_TIMEOUT_MS)
            await expect_editor_text(page, before)

        # Presence came back too: each sees the other online.
        for page, other in ((ada, "Bob"), (bob, "Ada")):
            await expect(by_test_id(page, "participant").filter(has_text=other)).to_have_attribute(
                "data-online", "true", timeout=RECONNECT_TIMEOUT_MS
            )

        await _append(bob, "\n# typed after the restart")
        after = before + "\n# typed after the restart"
        await expect_editor_text(ada, after)
        await expect_editor_text(bob, after)

        # A newcomer gets everything from the restarted server.
        cy = await person("Cy")
        await open_room(cy, process.http_url, room)
        await expect_editor_text(cy, after)
    finally:
        await anyio.to_thread.run_sync(process.kill)


async def test_edits_made_while_the_server_is_down_survive_a_kill_inside_the_flush_interval(
    tmp_path: Path, chromium: Path, room: str, person: NewPerson
):
    # A long flush interval: the kill surely loses the server's unflushed updates; the open
    # pages still hold them and give them back when they reconnect.
    process = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "60000"})
    await anyio.to_thread.run_sync(process.start)
    try:
        ada, bob = await ada_and_bob(person, process.http_url, room)
        await _append(ada, "\n# not flushed yet")
        await expect_editor_text(bob, await editor_text(ada))

        await anyio.to_thread.run_sync(process.kill)
        await expect(by_test_id(bob, "connection-status")).not_to_have_attribute(
            "data-state", "connected", timeout=RECONNECT_TIMEOUT_MS
        )
        await _append(bob, "\n# typed while the server was down")

        await anyio.to_thread.run_sync(process.start)
        for page in (ada, bob):
            await expect_connected(page, timeout=RECONNECT_TIMEOUT_MS)
        text = await editor_text(bob)
        assert "# not flushed yet" in text
        assert "# typed while the server was down" in text
        await expect_editor_text(ada, text)

        cy = await person("Cy")
        await open_room(cy, process.http_url, room)
        await expect_editor_text(cy, text)
    finally:
        await anyio.to_thread.run_sync(process.kill)
