"""Offline (issue #26): what a person typed survives a closed tab, and nothing comes back that
should not. The page keeps each room in IndexedDB and a service worker keeps the built client."""

from __future__ import annotations

import base64
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect
from pycrdt import Doc, Map
from tests.e2e.conftest import CLIENT_INDEX, NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    editor_text,
    expect_connected,
    expect_editor_text,
    open_room,
    type_at_end,
)
from tests.support import RETIRED_ROWS, stored_rows

from pairpilot.settings import Settings
from pairpilot.testing import LiveServer, ServerProcess, join, live_server, sign_in

pytestmark = pytest.mark.anyio

KEPT = "Offline — your edits are kept on this device"
MOVED_ID = re.compile(r"/r/(moved-room-[A-Za-z0-9_-]{22})$")
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

# Whether the service worker controls the page within `ms` (it claims pages once it activates).
_CONTROLLED_JS = """(ms) => Promise.race([
  navigator.serviceWorker.ready.then(() => navigator.serviceWorker.controller !== null
    || new Promise((resolve) => navigator.serviceWorker.addEventListener(
      'controllerchange', () => resolve(true), { once: true }))),
  new Promise((resolve) => setTimeout(() => resolve(false), ms)),
])"""

_CACHE_NAMES_JS = "async () => (await caches.keys()).sort()"


async def expect_controlled(page: Page) -> None:
    """Wait (bounded) until the service worker controls the page."""
    controlled = await page.evaluate(_CONTROLLED_JS, UI_TIMEOUT_MS)
    assert controlled, "no service worker controls the page"


async def wait_for_caches(page: Page, wanted: list[str]) -> None:
    """Wait (bounded) until the page's origin holds exactly the caches `wanted`."""
    with anyio.fail_after(UI_TIMEOUT_MS / 1000):
        while await page.evaluate(_CACHE_NAMES_JS) != wanted:
            await page.wait_for_timeout(100)


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
    home = await reopen(context, f"{server.http_url}/")
    listed = home.locator(f"[data-testid=recent-rooms] li:has(a[data-room-id='{room}'])")
    await expect(listed.get_by_test_id("unsent-edits")).to_have_text(" · edits not sent yet")
    await home.close()

    await context.set_offline(offline=False)
    again = await reopen(context, f"{server.http_url}/r/{room}")
    expected = before + "\n# typed offline"
    await expect_editor_text(again, expected)
    await expect_connected(again)
    await expect_saved(again)
    await expect_editor_text(bob, expected)
    assert await server_text(server.http_url, room) == expected
    assert [r["unsent"] for r in await local_rooms(again) if r["roomId"] == room] == [False]


async def lines_once(page: Page, *lines: str) -> str:
    """Wait until the open file holds each line exactly once; its text."""
    await page.wait_for_function(
        """(lines) => {
          const text = [...document.querySelectorAll('[data-testid=editor] .cm-content > .cm-line')]
            .map((line) => line.textContent).join('\\n');
          return lines.every((line) => text.split(line).length === 2);
        }""",
        arg=list(lines),
        timeout=RECONNECT_TIMEOUT_MS,
    )
    return await editor_text(page)


def count(text: str, line: str) -> int:
    return text.count(line)


async def test_a_room_reopened_with_no_network_loads_from_this_device_and_is_sent_once_later(
    tmp_path: Path, chromium: Path, room: str, person: NewPerson
):
    # Meanwhile the server is killed and restarted, and another person edits: both kept.
    process = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "100"})
    await anyio.to_thread.run_sync(process.start)
    try:
        ada = await person("Ada")
        await open_room(ada, process.http_url, room)
        await expect_controlled(ada)  # the service worker keeps the built client
        bob = await person("Bob")
        await open_room(bob, process.http_url, room)
        await expect_saved(ada)
        before = await editor_text(ada)

        await go_offline(ada)
        await type_at_end(ada, "\n# typed offline")
        await expect_kept(ada)
        context = ada.context
        await ada.close()
        await type_at_end(bob, "\n# Bob meanwhile")
        await expect_saved(bob)

        # No server at all: only the service worker and this device can open the room now.
        await anyio.to_thread.run_sync(process.kill)
        again = await reopen(context, f"{process.http_url}/r/{room}")
        await expect_editor_text(again, before + "\n# typed offline")
        await expect(by_test_id(again, "connection-status")).to_have_attribute(
            "data-state", "offline"
        )
        await type_at_end(again, "\n# typed in the page opened offline")
        await expect_kept(again)

        await anyio.to_thread.run_sync(process.start)
        await context.set_offline(offline=False)
        await expect_connected(again, timeout=RECONNECT_TIMEOUT_MS)
        lines = ("# typed offline", "# typed in the page opened offline", "# Bob meanwhile")
        text = await lines_once(again, *lines)
        await expect_saved(again)
        await expect_editor_text(bob, text, timeout=RECONNECT_TIMEOUT_MS)
        stored = await server_text(process.http_url, room)
        assert [count(stored, line) for line in lines] == [1, 1, 1], stored
    finally:
        await anyio.to_thread.run_sync(process.kill)


async def delete_room(page: Page, room: str) -> None:
    """The owner deletes the room from its page."""
    await by_test_id(page, "delete-room").click()
    await by_test_id(page, "delete-room-dialog-input").fill(room)
    await by_test_id(page, "delete-room-dialog-confirm").click()
    await expect(by_test_id(page, "home-note")).to_be_visible(timeout=UI_TIMEOUT_MS)


async def test_a_room_deleted_while_a_person_was_offline_is_not_brought_back_by_their_copy(
    server: LiveServer, room: str, person: NewPerson
):
    bob = await person("Bob")  # the owner
    await open_room(bob, server.http_url, room)
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await expect_saved(ada)
    await go_offline(ada)
    await type_at_end(ada, "\n# typed offline before the deletion")
    await expect_kept(ada)
    context = ada.context
    await ada.close()
    await delete_room(bob, room)

    await context.set_offline(offline=False)
    again = await reopen(context, f"{server.http_url}/r/{room}")
    await expect(by_test_id(again, "room-deleted")).to_be_visible(timeout=UI_TIMEOUT_MS)
    kept = by_test_id(again, "kept-copy")
    await expect(kept).to_be_visible(timeout=UI_TIMEOUT_MS)
    async with again.expect_download() as download:
        await by_test_id(again, "download-kept-copy").click()
    saved_as = await (await download.value).path()
    assert "# typed offline before the deletion" in await anyio.Path(saved_as).read_text()
    assert await stored_rows(server, room) == RETIRED_ROWS
    assert [r for r in await local_rooms(again) if r["roomId"] == room] == []

    # Opened again: still gone, and the text still offered until the person forgets it.
    await again.reload()
    await expect(by_test_id(again, "room-deleted")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(kept).to_be_visible(timeout=UI_TIMEOUT_MS)
    await by_test_id(again, "forget-kept-copy").click()
    await again.reload()
    await expect(by_test_id(again, "room-deleted")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(kept).to_be_hidden()
    assert await stored_rows(server, room) == RETIRED_ROWS


async def test_a_copy_of_a_room_whose_id_now_names_another_room_is_not_sent_to_it(
    tmp_path: Path, chromium: Path, room: str, person: NewPerson
):
    # The server's data is replaced (a new database): the same id is a new room, of another
    # generation. The old copy's text is offered for download and never reaches the new room.
    first = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path / "first")})
    await anyio.to_thread.run_sync(first.start)
    try:
        ada = await person("Ada")
        await open_room(ada, first.http_url, room)
        await expect_saved(ada)
        await go_offline(ada)
        await type_at_end(ada, "\n# typed for the old room")
        await expect_kept(ada)
        context = ada.context
        await ada.close()
    finally:
        await anyio.to_thread.run_sync(first.kill)
    second = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path / "second")}, port=first.port)
    await anyio.to_thread.run_sync(second.start)
    try:
        await context.set_offline(offline=False)
        again = await reopen(context, f"{second.http_url}/r/{room}")
        await expect(by_test_id(again, "kept-copy")).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(by_test_id(again, "kept-copy-reason")).to_contain_text("new room")
        await expect_connected(again)
        await expect_saved(again)
        assert "# typed for the old room" not in await editor_text(again)
        assert "# typed for the old room" not in await server_text(second.http_url, room)
    finally:
        await anyio.to_thread.run_sync(second.kill)


async def test_sign_out_clears_every_local_room_while_another_tab_of_a_room_is_open(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await expect_saved(ada)
    await expect(by_test_id(ada, "save-status")).to_have_attribute("data-local", "kept")
    home = await ada.context.new_page()
    await home.goto(f"{server.http_url}/")
    await by_test_id(home, "forget-device").click()
    await by_test_id(home, "forget-device-dialog-confirm").click()
    await expect(by_test_id(home, "forget-device-result")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert await local_rooms(home) == []

    # The room's tab heard of it: what it is shown or typed later is not kept any more.
    await expect(by_test_id(ada, "error-message")).to_contain_text("forgot", timeout=UI_TIMEOUT_MS)
    await go_offline(ada)
    await type_at_end(ada, "\n# typed after the sign-out")
    status = by_test_id(ada, "save-status")
    await expect(status).to_contain_text("not saved yet")
    await expect(status).to_have_attribute("data-local", "none")
    assert await local_rooms(home) == []


async def test_two_tabs_of_a_room_offline_on_one_device_converge_and_are_sent_once(
    server: LiveServer, room: str, person: NewPerson
):
    one = await person("Ada")
    await open_room(one, server.http_url, room)
    two = await one.context.new_page()
    await open_room(two, server.http_url, room)
    await expect_saved(one)
    await go_offline(one)
    await expect(by_test_id(two, "connection-status")).to_have_attribute(
        "data-state", "offline", timeout=UI_TIMEOUT_MS
    )
    await type_at_end(one, "\n# from tab one")
    await type_at_end(two, "\n# from tab two")
    lines = ("# from tab one", "# from tab two")
    text = await lines_once(one, *lines)
    await expect_editor_text(two, text)

    await one.context.set_offline(offline=False)
    for page in (one, two):
        await expect_connected(page, timeout=RECONNECT_TIMEOUT_MS)
        await expect_saved(page)
    stored = await server_text(server.http_url, room)
    assert [count(stored, line) for line in lines] == [1, 1], stored


async def test_the_local_store_stays_bounded_after_200_opens_of_a_room_without_edits(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await expect_saved(ada)
    status = by_test_id(ada, "save-status")
    await expect(status).to_have_attribute("data-local", "kept")
    first = await local_rooms(ada)
    for _ in range(200):
        await ada.reload()
        await expect(status).to_have_attribute("data-local", "kept", timeout=UI_TIMEOUT_MS)
    assert await local_rooms(ada) == first
    assert len(first) == 1
    assert first[0]["unsent"] is False


@asynccontextmanager
async def serving_a_build_copy(
    tmp_path: Path, *left_out: str
) -> AsyncIterator[tuple[Path, LiveServer]]:
    """A copy of the built client (a test changes it as a new build would) and its server."""
    client = tmp_path / "dist"
    shutil.copytree(CLIENT_INDEX.parent, client, ignore=shutil.ignore_patterns("*.map", *left_out))
    async with live_server(Settings(data_dir=tmp_path / "data", client_dir=client)) as server:
        yield client, server


def build_id(worker: str) -> str:
    """The BUILD a built sw.js names."""
    return worker.split('const BUILD = "')[1].split('"', maxsplit=1)[0]


async def open_controlled(page: Page, url: str) -> None:
    """Load `url` and wait until the service worker controls the page."""
    await page.goto(url)
    await expect_controlled(page)


async def test_a_new_build_replaces_the_cached_client_on_the_next_online_load(
    tmp_path: Path, chromium: Path, person: NewPerson
):
    async with serving_a_build_copy(tmp_path, "pyodide") as (client, server):
        page = await person("Ada")
        await open_controlled(page, f"{server.http_url}/")

        # A new build: another page and another worker (the build id changes with the files).
        index = (client / "index.html").read_text()
        marker = '<meta name="pairpilot-test-build" content="{}">'
        (client / "index.html").write_text(index.replace("<head>", "<head>" + marker.format("two")))
        worker = (client / "sw.js").read_text()
        (client / "sw.js").write_text(worker.replace(build_id(worker), "upgraded"))

        await page.reload()
        build = page.locator("meta[name=pairpilot-test-build]")
        await expect(build).to_have_attribute("content", "two")
        await wait_for_caches(page, ["pairpilot-client-upgraded"])

        # Offline, the page comes from the new build's cache (the server now has a third page,
        # which only the network could give).
        (client / "index.html").write_text(index.replace("<head>", "<head>" + marker.format("3")))
        await page.context.set_offline(offline=True)
        await page.reload()
        await expect(build).to_have_attribute("content", "two")


# Fills this device's store with `count` small rooms of the current epoch, opened long ago
# (room i at time i); those in `unsent` hold edits not sent yet.
_FILL_STORE_JS = """([count, unsent]) => new Promise((resolve, reject) => {
  const epoch = localStorage.getItem('pairpilot.localEpoch');
  const open = indexedDB.open('pairpilot-local', 1);
  open.onupgradeneeded = () => {
    for (const name of ['meta', 'docs', 'kept']) {
      open.result.createObjectStore(name, { keyPath: 'roomId' });
    }
  };
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const tx = db.transaction(['meta', 'docs'], 'readwrite');
    for (let i = 0; i < count; i += 1) {
      const roomId = `stored-${i}`;
      tx.objectStore('meta').put({ roomId, epoch, generation: 0, role: 'editor',
        unsent: unsent.includes(i), bytes: 3, openedAt: i, writtenAt: i });
      tx.objectStore('docs').put({ roomId, epoch, generation: 0, state: new Uint8Array([0, 0]),
        saved: new Uint8Array([0]), authored: [] });
    }
    tx.oncomplete = () => { db.close(); resolve(); };
    tx.onerror = () => reject(tx.error);
  };
})"""


async def test_a_full_store_drops_the_room_opened_longest_ago_but_never_one_with_unsent_edits(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.goto(f"{server.http_url}/")
    await ada.evaluate(_FILL_STORE_JS, [30, [0]])  # LOCAL_MAX_ROOMS, the oldest unsent
    await open_room(ada, server.http_url, room)
    await expect(by_test_id(ada, "save-status")).to_have_attribute(
        "data-local", "kept", timeout=UI_TIMEOUT_MS
    )
    kept = {r["roomId"] for r in await local_rooms(ada)}
    assert len(kept) == 30
    assert room in kept
    assert "stored-0" in kept  # older, but holds edits not sent yet
    assert "stored-1" not in kept  # the oldest without


async def test_a_store_full_of_unsent_edits_keeps_them_and_says_this_room_is_not_kept(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await ada.goto(f"{server.http_url}/")
    await ada.evaluate(_FILL_STORE_JS, [30, list(range(30))])
    await ada.reload()  # listed on the start page, though never in its recent rooms
    await expect(by_test_id(ada, "unsent-edits")).to_have_count(30, timeout=UI_TIMEOUT_MS)
    await open_room(ada, server.http_url, room)
    await expect(by_test_id(ada, "save-status")).to_have_attribute(
        "data-local", "full", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "local-store-note")).to_contain_text("stay in this tab only")
    kept = {r["roomId"] for r in await local_rooms(ada)}
    assert kept == {f"stored-{i}" for i in range(30)}


async def test_a_copy_of_a_room_moved_meanwhile_follows_it_and_is_sent_to_the_new_id(
    server: LiveServer, person: NewPerson
):
    room = f"g{uuid.uuid4().hex[:8]}"  # a short id: guessable, so its owner may move it
    ada = await person("Ada")  # the owner
    await open_room(ada, server.http_url, room)
    bob = await person("Bob")
    await open_room(bob, server.http_url, room)
    await expect_saved(bob)
    await go_offline(bob)
    await type_at_end(bob, "\n# typed offline before the move")
    await expect_kept(bob)
    context = bob.context
    await bob.close()

    await by_test_id(ada, "move-room").click()
    await by_test_id(ada, "move-room-dialog-confirm").click()
    await ada.wait_for_url(MOVED_ID, timeout=UI_TIMEOUT_MS)
    new_id = MOVED_ID.search(ada.url).group(1)

    await context.set_offline(offline=False)
    again = await reopen(context, f"{server.http_url}/r/{room}")
    await again.wait_for_url(f"{server.http_url}/r/{new_id}", timeout=UI_TIMEOUT_MS)
    await expect_connected(again)
    text = await lines_once(again, "# typed offline before the move")
    await expect_saved(again)
    await expect_editor_text(ada, text)
    assert [r["roomId"] for r in await local_rooms(again)] == [new_id]
