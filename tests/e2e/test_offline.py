"""Offline (issue #26): what a person typed survives a closed tab, and nothing comes back that
should not. The page keeps each room in IndexedDB and a service worker keeps the built client."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect
from pycrdt import Doc, Map
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    editor_text,
    expect_connected,
    expect_editor_text,
    open_room,
    type_at_end,
)

from pairpilot.testing import LiveServer, ServerProcess, join, sign_in

pytestmark = pytest.mark.anyio

KEPT = "Offline — your edits are kept on this device"
# Reconnect backoff is capped at 15 s (with jitter); a restart on a loaded machine adds more.
RECONNECT_TIMEOUT_MS = 90_000

# This device's copies as the page's IndexedDB holds them (client/src/local-store.ts).
_LOCAL_ROOMS_JS = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open('pairpilot-local');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains('meta')) { db.close(); resolve([]); return; }
    const tx = db.transaction(['meta', 'docs'], 'readonly');
    const meta = tx.objectStore('meta').getAll();
    const docs = tx.objectStore('docs').getAll();
    tx.oncomplete = () => {
      db.close();
      resolve(meta.result.map((m) => {
        const doc = docs.result.find((d) => d.roomId === m.roomId);
        return { roomId: m.roomId, unsent: m.unsent, bytes: doc ? doc.state.byteLength : -1 };
      }).concat(docs.result.filter((d) => !meta.result.some((m) => m.roomId === d.roomId))
        .map((d) => ({ roomId: d.roomId, unsent: null, bytes: d.state.byteLength }))));
    };
  };
})"""

_CONTROLLED_JS = """async () => {
  await navigator.serviceWorker.ready;
  if (navigator.serviceWorker.controller) return true;
  await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
  return true;
}"""


async def local_rooms(page: Page) -> list[dict[str, Any]]:
    """The rooms this device keeps (roomId, unsent, bytes of the stored document)."""
    rooms: list[dict[str, Any]] = await page.evaluate(_LOCAL_ROOMS_JS)
    return rooms


async def expect_saved(page: Page) -> None:
    """The saved signal says the server stored every edit of this page."""
    await expect(by_test_id(page, "save-status")).to_have_attribute(
        "data-state", "saved", timeout=RECONNECT_TIMEOUT_MS
    )


async def expect_kept(page: Page) -> None:
    """The page says its offline edits are on this device (written to IndexedDB)."""
    status = by_test_id(page, "save-status")
    await expect(status).to_have_text(KEPT, timeout=UI_TIMEOUT_MS)
    await expect(status).to_have_attribute("data-local", "kept", timeout=UI_TIMEOUT_MS)


async def go_offline(page: Page) -> None:
    """The browser loses the network; the page says so."""
    await page.context.set_offline(offline=True)
    await expect(by_test_id(page, "connection-status")).to_have_attribute(
        "data-state", "offline", timeout=UI_TIMEOUT_MS
    )


async def server_text(http_url: str, room: str, file: str = "main.py") -> str:
    """The file as the server has it, read by a new member through the snapshot API."""
    token = await sign_in(http_url, "Checker")
    await join(http_url, room, token)
    async with httpx.AsyncClient(base_url=http_url) as client:
        response = await client.get(
            f"/api/rooms/{room}/snapshot", headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
    doc: Doc[Any] = Doc()
    snapshot = response.json()["snapshot_b64"]
    if snapshot:
        doc.apply_update(base64.b64decode(snapshot))
    files = doc.get("files", type=Map)
    return str(files[file]) if file in files else ""


async def reopen(context: BrowserContext, url: str) -> Page:
    """A new tab of the same browser on `url` (the closed one's storage is kept)."""
    page = await context.new_page()
    await page.goto(url)
    return page


async def test_edits_typed_offline_in_a_closed_tab_are_sent_once_when_the_room_is_opened_again(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
    await expect_saved(ada)
    before = await editor_text(ada)

    await go_offline(ada)
    await type_at_end(ada, "\n# typed offline")
    await expect_kept(ada)
    context = ada.context
    await ada.close()

    await context.set_offline(offline=False)
    again = await reopen(context, f"{server.http_url}/r/{room}")
    expected = before + "\n# typed offline"
    await expect_editor_text(again, expected)
    await expect_connected(again)
    await expect_saved(again)
    await expect_editor_text(bob, expected)
    assert await server_text(server.http_url, room) == expected
    assert [r["unsent"] for r in await local_rooms(again) if r["roomId"] == room] == [False]
