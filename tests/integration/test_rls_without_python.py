"""On PostgreSQL the database refuses what the Python role checks refuse, on its own (issue #22).

Each test takes the Python check away (the owner check of the web layer and of the directory
become no-ops) and makes the call as someone the check would refuse: the answer is still a
refusal, and nothing changed, because the request's transaction runs as the caller
(``SET LOCAL ROLE authenticated`` with the caller's claims) and Row Level Security decides.
"""

from pathlib import Path

import pytest
from tests.support import new_user

from pairpilot.access import policy
from pairpilot.storage import directory
from pairpilot.testing import live_server, quick_settings
from pairpilot.web import rooms

pytestmark = pytest.mark.anyio


def _no_owner_check(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (policy, rooms, directory):
        if hasattr(module, "require_owner"):
            monkeypatch.setattr(module, "require_owner", lambda _role: None)


async def test_rls_refuses_an_editors_role_change_when_python_does_not_check(
    tmp_path: Path, migrated_postgres: str, room: str, monkeypatch: pytest.MonkeyPatch
):
    async with live_server(quick_settings(tmp_path, database_url=migrated_postgres)) as server:
        ada = await new_user(server.http_url, "Ada")
        await ada.join(room)
        bob = await new_user(server.http_url, "Bob")
        await bob.join(room)  # an editor
        cid = await new_user(server.http_url, "Cid")
        await cid.join(room)
        _no_owner_check(monkeypatch)
        answer = await bob.call(
            "PUT", f"/api/rooms/{room}/members/{cid.id}", json={"role": "viewer"}
        )
        assert answer.status_code in {403, 404}, answer.text
        members = (await ada.call("GET", f"/api/rooms/{room}/members")).json()
        assert {m["user_id"]: m["role"] for m in members} == {
            ada.id: "owner",
            bob.id: "editor",
            cid.id: "editor",
        }
