"""What a peer's presence can put on the page: text and validated colours only (issue #22).

The peer is a raw y-websocket client of the test's own (any client can send any awareness state),
a member of the room named Mallory, who claims to be "Ada (owner)" with the role owner and a
colour that is a CSS injection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from playwright.async_api import Page, expect
from pycrdt import Assoc, Doc, Encoder, Map, StickyIndex, Text
from tests.e2e.conftest import NewPerson
from tests.e2e.room_page import UI_TIMEOUT_MS, by_test_id, open_room
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, join, sign_in, wait_until

pytestmark = pytest.mark.anyio

INJECTION = "red;background:url(http://x)"
# Every element whose style carries the peer's string, or any url() at all.
_INJECTED_STYLES_JS = """() => [...document.querySelectorAll('[style]')]
  .map((el) => el.getAttribute('style'))
  .filter((style) => style.includes('url(') || style.includes('red;'))"""


def _awareness_frame(client_id: int, clock: int, state: dict[str, object]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(1)
    encoder.write_var_uint(client_id)
    encoder.write_var_uint(clock)
    encoder.write_var_string(json.dumps(state))
    return protocol.awareness(encoder.to_bytes())


async def _read_into(websocket, doc: Doc) -> None:
    with contextlib.suppress(ConnectionClosed):  # the test closes it
        async for frame in websocket:
            message = protocol.decode_message(frame)
            if isinstance(message, protocol.SyncStep2 | protocol.SyncUpdate):
                doc.apply_update(message.update)


async def test_a_peers_injected_colour_and_claimed_name_and_role_never_reach_the_page(
    server: LiveServer, room: str, person: NewPerson
):
    ada: Page = await person("Ada")
    await open_room(ada, server.http_url, room)
    mallory = await sign_in(server.http_url, "Mallory")
    member = (await join(server.http_url, room, mallory))["member"]
    doc: Doc = Doc()
    async with connect(server.ws_url(room, mallory), compression=None) as websocket:
        reader = asyncio.create_task(_read_into(websocket, doc))
        await websocket.send(protocol.sync_step1(doc.get_state()))
        files = doc.get("files", type=Map)
        await wait_until(lambda: isinstance(files.get("main.py"), Text), what="main.py synced")
        text = files["main.py"]
        where = StickyIndex.new(text, 0, Assoc.AFTER).to_json()
        state = {
            "user": {
                "id": member["user_id"],
                "name": "Ada (owner)",
                "role": "owner",
                "color": INJECTION,
                "colorLight": INJECTION,
            },
            "file": "main.py",
            "cursor": {"anchor": where, "head": where},
        }
        await websocket.send(_awareness_frame(doc.client_id, 1, state))

        mine = ada.locator(f"[data-testid=participant][data-user-id='{member['user_id']}']")
        await expect(mine).to_have_attribute("data-online", "true", timeout=UI_TIMEOUT_MS)
        # Named and ranked by the room's membership, not by what the peer claims.
        await expect(mine.locator(".participant-name")).to_have_text("Mallory")
        await expect(mine).to_have_attribute("data-role", "editor")
        # Its cursor is drawn (with the colour derived from its id), and nothing carries the string.
        caret = by_test_id(ada, "editor").locator(".cm-ySelectionCaret")
        await expect(caret).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(caret).to_contain_text("Mallory")
        assert "url(" not in (await mine.locator(".dot").get_attribute("style") or "")
        assert await ada.evaluate(_INJECTED_STYLES_JS) == []
        reader.cancel()
