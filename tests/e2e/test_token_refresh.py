"""Issue #15 in the browser: tokens are refreshed (same user) before they expire, without a reload.

Access tokens here live 70 s, so the server asks an open socket for a new one 10 s after it
connects and would close it (4401) at 70 s; each test waits past its first token's expiry.
"""

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from playwright.async_api import Locator, Page, expect
from tests.e2e.conftest import CLIENT_INDEX, NewPerson
from tests.e2e.room_page import (
    UI_TIMEOUT_MS,
    by_test_id,
    editor_content,
    editor_text,
    expect_editor_text,
    open_room,
)
from tests.support import new_user, unavailable

from pairpilot.settings import Settings
from pairpilot.testing import LiveServer, quick_settings

pytestmark = pytest.mark.anyio

TOKEN_TTL_S = 70

# Every /collab socket the page opens: its URL, its close codes, the token renewals it sent
# (auth messages `[2, 3, …]`; not sent when `window.__dropRenewals`). Installed before the
# page's own scripts run.
_WATCH_SOCKETS_JS = """(() => {
  const seen = { urls: [], closes: [], renewals: 0 };
  window.__collab = seen;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (!String(url).includes('/collab/')) return;
      seen.urls.push(String(url));
      this.addEventListener('close', (event) => seen.closes.push(event.code));
      const send = this.send.bind(this);
      this.send = (data) => {
        if (data instanceof Uint8Array && data[0] === 2 && data[1] === 3) {
          seen.renewals += 1;
          if (window.__dropRenewals) return;
        }
        send(data);
      };
    }
  };
})();"""

# Every data-state the connection status takes from now on, in order.
_RECORD_CONNECTION_STATES_JS = """() => {
  const status = document.querySelector('[data-testid=connection-status]');
  window.__connectionStates = [];
  new MutationObserver((records) => records.forEach(
    (r) => window.__connectionStates.push(r.target.dataset.state),
  )).observe(status, { attributeFilter: ['data-state'] });
}"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Short-lived access tokens; the built client is required."""
    if not CLIENT_INDEX.is_file():
        unavailable(f"the built client ({CLIENT_INDEX}); run scripts/setup.sh")
    return quick_settings(tmp_path, token_ttl_s=TOKEN_TTL_S)


async def watched_person(person: NewPerson, name: str, *, drop_renewals: bool = False) -> Page:
    """A person whose page records its /collab sockets in `window.__collab`."""
    page = await person(name)
    if drop_renewals:
        await page.add_init_script("window.__dropRenewals = true;")
    await page.add_init_script(_WATCH_SOCKETS_JS)
    return page


async def sockets(page: Page) -> dict[str, Any]:
    """What the page's sockets did: `urls`, `closes`, `renewals`."""
    seen: dict[str, Any] = await page.evaluate("() => window.__collab")
    return seen


def socket_claims(url: str) -> dict[str, Any]:
    """The claims of the token a socket connected with (not verified: the server did that)."""
    token = parse_qs(urlsplit(url).query)["token"][0]
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def first_token_expiry(page: Page) -> int:
    """The `exp` (epoch s) of the token the page's first socket connected with."""
    urls = (await sockets(page))["urls"]
    assert urls, "the page opened no socket"
    return int(socket_claims(urls[0])["exp"])


async def type_words_until(page: Page, deadline: float) -> str:
    """Type numbered words at the end of the open file, one a second, until `deadline`."""
    await editor_content(page).click()
    await page.keyboard.press("Control+End")
    typed = ""
    word = 0
    while time.time() < deadline:
        await page.keyboard.type(f"{word} ")
        typed += f"{word} "
        word += 1
        await asyncio.sleep(1)
    return typed


async def stored_user_id(page: Page) -> str:
    """The user id of the session the page keeps in localStorage."""
    user_id: str = await page.evaluate(
        "() => JSON.parse(localStorage.getItem('pairpilot.session')).user.id"
    )
    return user_id


def participant(page: Page, user_id: str) -> Locator:
    """The participant list's entry for `user_id`."""
    return page.locator(f"[data-testid=participant][data-user-id='{user_id}']")


async def test_the_owner_is_still_the_owner_after_her_first_token_expired(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await watched_person(person, "Ada")
    await open_room(ada, server.http_url, room)
    ada_id = await stored_user_id(ada)
    await expect(participant(ada, ada_id)).to_have_attribute("data-role", "owner")

    await asyncio.sleep(max(0.0, await first_token_expiry(ada) + 3 - time.time()))

    # Without a reload: still her, still the owner, and an owner-only call goes through.
    assert await stored_user_id(ada) == ada_id
    await expect(participant(ada, ada_id)).to_have_attribute("data-role", "owner")
    async with ada.expect_response(lambda r: r.request.method == "PATCH") as changed:
        await by_test_id(ada, "default-role-select").select_option("viewer")
    assert (await changed.value).status == 200
    bob = await new_user(server.http_url, "Bob")
    joined = (await bob.join(room)).json()
    assert joined["member"]["role"] == "viewer", "Ada's change of the default role was refused"
    await expect(by_test_id(ada, "error-message")).to_be_hidden()
    members = (await bob.call("GET", f"/api/rooms/{room}/members")).json()
    assert sorted((m["user_id"], m["role"]) for m in members) == sorted(
        [(ada_id, "owner"), (bob.id, "viewer")]
    ), "another user joined the room in Ada's place"
    assert (await sockets(ada))["closes"] == [], "Ada's socket was closed"

    await open_room(ada, server.http_url, room)
    assert await stored_user_id(ada) == ada_id
    await expect(participant(ada, ada_id)).to_have_attribute(
        "data-role", "owner", timeout=UI_TIMEOUT_MS
    )
    await expect(by_test_id(ada, "default-role-select")).to_have_value("viewer")


async def test_a_socket_gets_its_new_token_in_place_and_keeps_every_edit(
    server: LiveServer, room: str, person: NewPerson
):
    ada = await watched_person(person, "Ada")
    await open_room(ada, server.http_url, room)
    bob = await watched_person(person, "Bob")
    await open_room(bob, server.http_url, room)
    await expect_editor_text(bob, await editor_text(ada))
    ada_id = await stored_user_id(ada)
    for page in (ada, bob):
        await page.evaluate(_RECORD_CONNECTION_STATES_JS)

    # Ada types all along: over the server's warning (10 s) and past her first token's end.
    deadline = max([await first_token_expiry(ada), await first_token_expiry(bob)]) + 4
    expected = await editor_text(ada) + await type_words_until(ada, deadline)

    await expect_editor_text(bob, expected)
    await expect_editor_text(ada, expected)
    for page, name in ((ada, "Ada"), (bob, "Bob")):
        seen = await sockets(page)
        assert len(seen["urls"]) == 1, f"{name}'s page opened another socket: {seen}"
        assert seen["closes"] == [], f"{name}'s socket was closed: {seen}"
        assert seen["renewals"] >= 1, f"{name}'s page never renewed its token: {seen}"
        states = await page.evaluate("() => window.__connectionStates")
        assert states == [], f"{name}'s connection left 'connected': {states}"
    await expect(by_test_id(ada, "connection-status")).to_have_attribute("data-state", "connected")
    assert await stored_user_id(ada) == ada_id


async def test_a_socket_closed_at_expiry_reconnects_as_the_same_user_with_every_edit(
    server: LiveServer, room: str, person: NewPerson
):
    # Ada's renewals never reach the server, so it closes her socket (4401) at the token's end.
    ada = await watched_person(person, "Ada", drop_renewals=True)
    await open_room(ada, server.http_url, room)
    bob = await watched_person(person, "Bob")
    await open_room(bob, server.http_url, room)
    ada_id = await stored_user_id(ada)

    deadline = await first_token_expiry(ada) + 6
    expected = await editor_text(ada) + await type_words_until(ada, deadline)

    await expect(by_test_id(ada, "connection-status")).to_have_attribute(
        "data-state", "connected", timeout=UI_TIMEOUT_MS
    )
    await expect_editor_text(bob, expected)
    await expect_editor_text(ada, expected)
    seen = await sockets(ada)
    assert seen["closes"] == [4401], f"the server did not close Ada's socket at expiry: {seen}"
    assert len(seen["urls"]) == 2, f"Ada's page did not reconnect once: {seen}"
    assert socket_claims(seen["urls"][1])["sub"] == ada_id, "Ada reconnected as another user"
    assert await stored_user_id(ada) == ada_id
    await expect(participant(ada, ada_id)).to_have_attribute("data-role", "owner")
