"""The page when a guardrail refuses: a full, crowded or deleted room, a refused start."""

import asyncio
import re
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, expect
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    ada_and_bob,
    by_test_id,
    editor_content,
    expect_connected,
    open_room,
    paste_code,
    set_code,
)

from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio

# Long enough for a reconnect loop to show itself: the page's backoff starts at 0.1-0.5 s.
QUIET_S = 3.0


def count_sockets(page: Page) -> list[str]:
    """The URLs of every WebSocket the page opens from now on."""
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


async def test_a_room_over_its_quota_says_so_offers_a_copy_and_reconnects_after_a_deletion(
    tmp_path: Path, room: str, person: NewPerson
):
    async with live_server(quick_settings(tmp_path, room_max_bytes=65_536)) as server:
        ada = await person("Ada")
        await open_room(ada, server.http_url, room)
        sockets = count_sockets(ada)

        # 100,000 characters: one update over the room's 64 KiB, refused and not applied.
        big = "".join(f"line_{i:05} = {i}  # too much for this room\n" for i in range(2_500))
        assert len(big.encode()) > 65_536
        await paste_code(ada, big)

        banner = by_test_id(ada, "room-full")
        await expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(banner).to_contain_text(re.compile(r"This room is full \(.+ of .+\)"))
        await expect(banner).to_contain_text("Your latest edits were not saved")
        await expect(by_test_id(ada, "connection-status")).to_have_attribute(
            "data-state", "offline"
        )
        await expect(editor_content(ada)).to_have_attribute("contenteditable", "true")
        await asyncio.sleep(QUIET_S)
        assert sockets == [], f"the page reconnected on its own: {sockets}"

        async with ada.expect_download() as download_info:
            await by_test_id(ada, "download-copy").click()
        download = await download_info.value
        assert download.suggested_filename == f"{room}-my-copy.txt"
        copy = (await anyio.Path(await download.path()).read_bytes()).decode()
        assert "===== main.py =====" in copy
        assert big in copy

        # Trying again with the text still there is refused again, once.
        retry = by_test_id(ada, "retry-connection")
        await retry.click()
        await expect(retry).to_have_text("Try again", timeout=UI_TIMEOUT_MS)
        await expect(retry).to_be_enabled()
        await expect(banner).to_be_visible()
        await asyncio.sleep(QUIET_S)
        assert len(sockets) == 1, f"one retry, one socket: {sockets}"

        # Deleting the text makes the unsent insert tiny (Yjs keeps only its length).
        await set_code(ada, "print('smaller')\n")
        await retry.click()
        await expect_connected(ada)
        await expect(banner).to_be_hidden()
        await expect(by_test_id(ada, "save-status")).to_have_attribute(
            "data-state", "saved", timeout=UI_TIMEOUT_MS
        )


async def test_an_edit_over_the_message_limit_stops_the_reconnects_until_it_is_deleted(
    tmp_path: Path, room: str, person: NewPerson
):
    async with live_server(quick_settings(tmp_path, max_message_bytes=65_536)) as server:
        ada = await person("Ada")
        await open_room(ada, server.http_url, room)
        sockets = count_sockets(ada)

        # One update over the 64 KiB message limit: closed 1009, which a resync would repeat.
        big = "".join(f"line_{i:05} = {i}  # too much for one message\n" for i in range(2_500))
        await paste_code(ada, big)

        banner = by_test_id(ada, "room-full")
        await expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(banner).to_contain_text("larger than the server accepts in one message")
        await asyncio.sleep(QUIET_S)
        assert sockets == [], f"the page reconnected on its own: {sockets}"

        await set_code(ada, "print('smaller')\n")
        await by_test_id(ada, "retry-connection").click()
        await expect_connected(ada)
        await expect(banner).to_be_hidden()
        await expect(by_test_id(ada, "save-status")).to_have_attribute(
            "data-state", "saved", timeout=UI_TIMEOUT_MS
        )


async def test_a_room_at_its_connection_limit_says_so_and_lets_the_person_try_again(
    tmp_path: Path, room: str, person: NewPerson
):
    async with live_server(quick_settings(tmp_path, room_max_connections=1)) as server:
        ada = await person("Ada")
        await open_room(ada, server.http_url, room)
        bob = await person("Bob")
        sockets = count_sockets(bob)
        await bob.goto(f"{server.http_url}/r/{room}")

        banner = by_test_id(bob, "room-crowded")
        await expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
        await expect(banner).to_contain_text(re.compile(r"Room is full: .*\(the limit\)"))
        await expect(by_test_id(bob, "connection-status")).to_have_attribute(
            "data-state", "offline"
        )
        await asyncio.sleep(QUIET_S)
        assert len(sockets) == 1, f"the page retried on its own: {sockets}"

        await ada.close()
        await by_test_id(bob, "retry-crowded").click()
        await expect_connected(bob)
        await expect(banner).to_be_hidden()


async def test_a_room_deleted_by_its_owner_is_gone_from_every_open_page(
    server: LiveServer, room: str, person: NewPerson
):
    ada, bob = await ada_and_bob(person, server.http_url, room)
    await set_code(bob, "print('written by Bob')\n")
    await expect(by_test_id(bob, "delete-room")).to_be_hidden()
    bob_sockets = count_sockets(bob)

    await by_test_id(ada, "delete-room").click()
    dialog = by_test_id(ada, "delete-room-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(f"Delete room “{room}”?")
    confirm = by_test_id(ada, "delete-room-dialog-confirm")
    await expect(confirm).to_be_disabled()
    await by_test_id(ada, "delete-room-dialog-input").fill(room)
    await confirm.click()

    await expect(ada).to_have_url(f"{server.http_url}/", timeout=UI_TIMEOUT_MS)
    await expect(by_test_id(ada, "home-note")).to_have_text(f"Room “{room}” was deleted.")
    await expect(
        by_test_id(ada, "recent-rooms").locator(f"a[data-room-id='{room}']")
    ).to_have_count(0)

    banner = by_test_id(bob, "room-deleted")
    await expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(banner).to_contain_text("This room was deleted")
    await expect(by_test_id(bob, "room-deleted-home")).to_have_attribute("href", "/")
    await expect(editor_content(bob)).to_have_attribute("contenteditable", "false")
    await asyncio.sleep(QUIET_S)
    assert bob_sockets == [], f"the page reconnected to a deleted room: {bob_sockets}"


async def test_delete_my_data_deletes_the_rooms_only_i_own_and_forgets_me_here(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await person("Ada")
    await open_room(ada, server.http_url, room)
    await ada.goto(f"{server.http_url}/")

    await by_test_id(ada, "delete-my-data").click()
    await expect(by_test_id(ada, "delete-my-data-dialog")).to_be_visible()
    await by_test_id(ada, "delete-my-data-dialog-confirm").click()

    result = by_test_id(ada, "delete-my-data-result")
    await expect(result).to_contain_text(
        f"Deleted 1 room you alone owned ({room})", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "delete-my-data-dialog")).to_be_hidden()
    await expect(by_test_id(ada, "recent-rooms")).to_have_text("No rooms yet.")
    stored = await ada.evaluate(
        "['pairpilot.session', 'pairpilot.name', 'pairpilot.recentRooms']"
        ".map((key) => localStorage.getItem(key))"
    )
    assert stored == [None, None, None]


async def test_the_start_page_says_why_it_cannot_create_another_room(
    tmp_path: Path, person: NewPerson
):
    async with live_server(quick_settings(tmp_path, rooms_per_anonymous_user=1)) as server:
        ada = await person("Ada")
        await ada.goto(f"{server.http_url}/")
        await by_test_id(ada, "create-room").click()
        await expect_connected(ada)

        await ada.goto(f"{server.http_url}/")
        await by_test_id(ada, "create-room").click()
        await expect(by_test_id(ada, "home-error")).to_contain_text(
            "Could not create the room: 403 quota_exceeded: ", timeout=UI_TIMEOUT_MS
        )
        await expect(ada).to_have_url(f"{server.http_url}/")
        await expect(by_test_id(ada, "create-room")).to_be_enabled()


async def test_the_start_page_says_why_it_cannot_sign_in(tmp_path: Path, person: NewPerson):
    async with live_server(quick_settings(tmp_path, signin_rate="1/hour")) as server:
        # Ada's sign-in takes the address's one sign-in of the hour (if nothing else took it).
        ada = await person("Ada")
        await ada.goto(f"{server.http_url}/")
        async with ada.expect_response(lambda response: "/api/auth/anonymous" in response.url):
            await by_test_id(ada, "create-room").click()

        bob = await person("Bob")
        await bob.goto(f"{server.http_url}/")
        await by_test_id(bob, "create-room").click()
        await expect(by_test_id(bob, "home-error")).to_contain_text(
            "Could not sign in: 429 rate_limited: ", timeout=UI_TIMEOUT_MS
        )
        await expect(bob).to_have_url(f"{server.http_url}/")
