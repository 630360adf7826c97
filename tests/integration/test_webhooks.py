"""Webhooks against a receiver of the test's own: signed, debounced, retried, disabled, once.

Each receiver answers as the test says (tests/receiver.py); signatures are checked with the
``standardwebhooks`` package's own verifier.
"""

import asyncio
import base64
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from pycrdt import Text
from tests.conftest import backend_settings
from tests.receiver import Receiver, webhook_receiver
from tests.support import User, eventually, new_user

from pairpilot.storage.schema import webhook_endpoints
from pairpilot.testing import (
    LiveServer,
    ServerProcess,
    free_port,
    live_server,
    quick_settings,
    synced_client,
    wait_until,
)

pytestmark = pytest.mark.anyio

OPERATOR_SECRET = "whsec_" + base64.b64encode(b"operator-secret-of-the-tests!!").decode()
QUICK = {
    "webhook_allow_private": True,  # the receiver is on loopback
    "webhook_debounce_s": 0.3,
    "webhook_debounce_max_s": 1.0,
    "webhook_retry_first_s": 0.2,
    "webhook_retry_max_s": 0.5,
    "webhook_timeout_s": 2.0,
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[LiveServer]:
    settings = backend_settings(
        request, tmp_path, webhook_url=receiver.url, webhook_secret=OPERATOR_SECRET, **QUICK
    )
    async with live_server(settings) as running:
        yield running


async def _register(owner: User, room: str, url: str, **body) -> dict:
    response = await owner.call("POST", f"/api/rooms/{room}/webhooks", json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def _listed(owner: User, room: str) -> list[dict]:
    response = await owner.call("GET", f"/api/rooms/{room}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()


def _payloads(received, secret: str) -> list[dict]:
    return [r.verified(secret) for r in received]


async def test_every_event_reaches_the_operator_and_the_owners_endpoint_signed_without_content(
    server: LiveServer, receiver: Receiver, room: str
):
    async with webhook_receiver() as owners:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        hook = await _register(ada, room, owners.url)
        assert hook["secret"].startswith("whsec_")
        assert hook["enabled"] is True
        assert hook["events"] is None
        bob = await new_user(server.http_url, "Bob")
        assert (await bob.join(room)).status_code == 200
        async with synced_client(await server.member_url(room, "Cid")) as doc:
            doc.get("code", type=Text).insert(0, "print('secret content')")
            await wait_until(lambda: "room.updated" in owners.types(), what="room.updated")
        named = await ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "v1"})
        assert named.status_code == 201
        assert (await ada.call("DELETE", f"/api/rooms/{room}/members/{bob.id}")).status_code == 200
        assert (await ada.call("DELETE", f"/api/rooms/{room}")).status_code == 200
        await wait_until(lambda: "room.deleted" in owners.types(), what="room.deleted")
        payloads = _payloads(owners.delivered(), hook["secret"])
    types = [p["type"] for p in payloads]
    assert types.count("member.joined") == 2  # Bob, Cid (Ada's came before the endpoint)
    assert {"room.updated", "version.created", "member.left", "room.deleted"} <= set(types)
    assert "room.created" not in types
    assert all(p["data"]["room_id"] == room for p in payloads)
    left = next(p for p in payloads if p["type"] == "member.left")
    assert left["data"]["user_id"] == bob.id
    versions = [p["data"] for p in payloads if p["type"] == "version.created"]
    named_event = next(v for v in versions if v["kind"] == "named")  # an unload may add "auto"
    assert named_event["version_id"] == named.json()["id"]
    assert b"secret content" not in b"".join(r.body for r in owners.received)
    # The operator's endpoint hears every room's events from the start, with its own secret.
    await wait_until(lambda: "room.deleted" in receiver.types(), what="the operator's")
    delivered = _payloads(receiver.delivered(), OPERATOR_SECRET)
    operator = [p for p in delivered if p["data"]["room_id"] == room]  # not another test's
    assert operator[0]["type"] == "room.created"
    assert operator[0]["data"] == {"room_id": room, "owner_id": ada.id}
    assert operator[1]["type"] == "member.joined"
    assert operator[1]["data"] == {"room_id": room, "user_id": ada.id, "role": "owner"}
    assert len(operator) == len(payloads) + 2
    # A deleted room's endpoint is dropped once its last event was sent.
    await eventually(lambda: _stored_endpoints(server, room), 0, what="the endpoint swept")


async def test_an_automatic_checkpoint_is_a_version_created_event(
    server: LiveServer, receiver: Receiver, room: str
):
    """A room that unloads after edits is checkpointed (an automatic version): the operator's
    endpoint hears version.created with kind "auto" and the version's id."""
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    async with synced_client(server.ws_url(room, ada.token)) as doc:
        doc.get("code", type=Text).insert(0, "checkpointed once the room unloads")

    def auto() -> list[dict]:
        return [
            p["data"]
            for p in _payloads(receiver.delivered(), OPERATOR_SECRET)
            if p["type"] == "version.created" and p["data"]["kind"] == "auto"
        ]

    await wait_until(lambda: bool(auto()), what="the checkpoint's version.created")
    listed = (await ada.call("GET", f"/api/rooms/{room}/versions")).json()["versions"]
    assert auto()[0]["version_id"] in {v["id"] for v in listed if v["kind"] == "auto"}
    assert auto()[0]["room_id"] == room


async def _stored_endpoints(server: LiveServer, room: str) -> int:
    engine = server.services.store.engine
    async with engine.connect() as conn:
        return await conn.scalar(
            sa.select(sa.func.count())
            .select_from(webhook_endpoints)
            .where(webhook_endpoints.c.room_id == room)
        )


async def test_what_the_webhooks_api_does_with_bad_or_unauthorised_input(
    server: LiveServer, receiver: Receiver, room: str
):
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    bob = await new_user(server.http_url, "Bob")
    assert (await bob.join(room)).status_code == 200
    eve = await new_user(server.http_url, "Eve")
    path = f"/api/rooms/{room}/webhooks"
    good = {"url": receiver.url}
    cases = [
        (bob, "POST", good, 403),  # an editor
        (bob, "GET", None, 403),
        (eve, "POST", good, 404),  # not a member: the room is not there
        (User(server.http_url, "not-a-token", "", ""), "POST", good, 401),
        (ada, "POST", {"url": "ftp://example.com/hook"}, 400),
        (ada, "POST", {"url": "http://"}, 400),
        (ada, "POST", {"url": "http://user:pw@example.com/"}, 400),
        (ada, "POST", {"url": "http://example.com/\u0000hook"}, 400),
        (ada, "POST", {"url": "https://example.com/" + "x" * 2048}, 400),
        (ada, "POST", {"url": receiver.url, "events": ["room.renamed"]}, 400),
        (ada, "POST", {"url": receiver.url, "events": []}, 400),
        (ada, "POST", {"events": ["room.updated"]}, 400),
    ]
    for user, method, body, status in cases:
        response = await user.call(method, path, json=body)
        assert response.status_code == status, (body, response.text)
        assert "error" in response.json()
    garbage = await ada.call(
        "POST", path, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400
    # The same URL twice: two endpoints, each with its own secret (each gets every event).
    first = await _register(ada, room, receiver.url, events=["member.left"])
    second = await _register(ada, room, receiver.url, events=["member.left"])
    assert first["secret"] != second["secret"]
    for _ in range(8):
        await _register(ada, room, receiver.url, events=["room.deleted"])
    over = await ada.call("POST", path, json=good)
    assert over.status_code == 409
    assert "at most 10 webhooks" in over.json()["message"]
    listed = await _listed(ada, room)
    assert len(listed) == 10
    assert all("secret" not in hook for hook in listed)
    assert listed[0]["events"] == ["member.left"]
    assert (await ada.call("DELETE", f"{path}/nope")).status_code == 404
    assert (await bob.call("DELETE", f"{path}/{first['id']}")).status_code == 403
    gone = await ada.call("DELETE", f"{path}/{first['id']}")
    assert gone.json() == {"id": first["id"], "deleted": True}
    assert (await ada.call("DELETE", f"{path}/{first['id']}")).status_code == 404
    # Only the events asked for: Bob leaving reaches the second endpoint (and the operator's).
    assert (await bob.call("DELETE", f"/api/rooms/{room}/members/{bob.id}")).status_code == 200
    await wait_until(
        lambda: any(r.verified_or_none(second["secret"]) for r in receiver.delivered()),
        what="member.left to the second endpoint",
    )
    mine = [p for r in receiver.delivered() if (p := r.verified_or_none(second["secret"]))]
    assert [p["type"] for p in mine] == ["member.left"]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(quick_settings(tmp_path)) as running:  # private addresses refused
        yield running


async def test_owner_endpoints_may_not_point_inside_the_servers_network(
    guarded: LiveServer, room: str
):
    ada = await new_user(guarded.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    for url in (
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ):
        response = await ada.call("POST", f"/api/rooms/{room}/webhooks", json={"url": url})
        assert response.status_code == 400, url
        assert "PAIRPILOT_WEBHOOK_ALLOW_PRIVATE" in response.json()["message"], url
    public = await ada.call(
        "POST", f"/api/rooms/{room}/webhooks", json={"url": "https://93.184.215.14/hook"}
    )
    assert public.status_code == 201, public.text


async def test_failed_deliveries_are_retried_after_500s_and_a_timeout_with_the_same_id(
    server: LiveServer, receiver: Receiver, room: str
):
    async with webhook_receiver() as flaky:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        hook = await _register(ada, room, flaky.url, events=["member.joined"])
        flaky.answers = [500, 503, "hang", 200]
        bob = await new_user(server.http_url, "Bob")
        assert (await bob.join(room)).status_code == 200
        await wait_until(lambda: len(flaky.delivered()) == 1, timeout=30, what="delivered")
        attempts = flaky.received
        assert [a.status for a in attempts] == [500, 503, "hang", 200]
        assert len({a.id for a in attempts}) == 1  # one event, one webhook-id
        for attempt in attempts:
            assert attempt.verified(hook["secret"])["data"]["user_id"] == bob.id
        await eventually(
            lambda: _listed_fields(ada, room, "pending", "last_error"), [(0, None)], "settled"
        )
        (listed,) = await _listed(ada, room)
        assert listed["enabled"] is True
        assert listed["last_success_at"] is not None
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            metrics = (await client.get("/metrics")).text
        assert 'pairpilot_webhook_deliveries_total{outcome="retried"} 3.0' in metrics


async def _listed_fields(owner: User, room: str, *names: str) -> list[tuple]:
    return [tuple(hook[n] for n in names) for hook in await _listed(owner, room)]


async def test_an_endpoint_failing_past_the_retry_period_is_disabled_and_its_owner_sees_why(
    tmp_path: Path, room: str
):
    async with webhook_receiver() as broken:
        broken.answers = [500] * 1000
        settings = quick_settings(tmp_path, **QUICK, webhook_retry_for_s=1.5)
        async with live_server(settings) as server:
            ada = await new_user(server.http_url, "Ada")
            assert (await ada.join(room)).status_code == 200
            await _register(ada, room, broken.url)
            bob = await new_user(server.http_url, "Bob")
            assert (await bob.join(room)).status_code == 200
            await eventually(
                lambda: _listed_fields(ada, room, "enabled"), [(False,)], "disabled", timeout=30
            )
            (hook,) = await _listed(ada, room)
            assert hook["disabled_reason"].startswith("disabled after failing for")
            assert "HTTP 500" in hook["disabled_reason"]
            assert hook["pending"] == 0
            tries = len(broken.received)
            assert tries >= 2
            # Disabled: nothing more is queued or sent to it.
            assert (
                await ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "x"})
            ).status_code == 201
            await eventually(lambda: _listed_fields(ada, room, "pending"), [(0,)], "nothing queued")
            assert len(broken.received) == tries


async def test_deliveries_wait_while_the_receiver_is_down_and_arrive_once_it_is_back(
    server: LiveServer, room: str
):
    receiver = Receiver()
    async with webhook_receiver(receiver):
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        hook = await _register(ada, room, receiver.url, events=["member.joined"])
    # Down: connections are refused.
    bob = await new_user(server.http_url, "Bob")
    assert (await bob.join(room)).status_code == 200
    await eventually(
        lambda: _has_error(ada, room), expected=True, what="a failed attempt recorded", timeout=20
    )
    async with webhook_receiver(receiver):  # back on the same port
        await wait_until(lambda: len(receiver.delivered()) == 1, timeout=30, what="delivered")
        assert receiver.delivered()[0].verified(hook["secret"])["data"]["user_id"] == bob.id


async def _has_error(owner: User, room: str) -> bool:
    (hook,) = await _listed(owner, room)
    return hook["last_error"] is not None and hook["pending"] == 1


async def test_two_processes_deliver_each_event_once(
    migrated_postgres: str, receiver: Receiver, tmp_path: Path
):
    env = {
        "DATABASE_URL": migrated_postgres,
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "PAIRPILOT_JWT_SECRET": secrets.token_urlsafe(32),
        "PAIRPILOT_WEBHOOK_URL": receiver.url,
        "PAIRPILOT_WEBHOOK_SECRET": OPERATOR_SECRET,
        "PAIRPILOT_WEBHOOK_ALLOW_PRIVATE": "true",
        "PAIRPILOT_WEBHOOK_RETRY_FIRST_S": "0.2",
        "PAIRPILOT_WEBHOOK_RETRY_MAX_S": "0.5",
        "PAIRPILOT_LOG_LEVEL": "WARNING",
    }
    processes = [ServerProcess(env), ServerProcess(env)]
    for process in processes:
        await asyncio.to_thread(process.start, 120)
    try:
        # Some first attempts fail, so both processes also retry each other's deliveries.
        receiver.answers = [500, 200] * 20
        users = [await new_user(processes[n % 2].http_url, f"u{n}") for n in range(2)]
        rooms = [f"two-{secrets.token_hex(6)}-{n}" for n in range(20)]
        for n, room in enumerate(rooms):
            assert (await users[n % 2].join(room)).status_code == 200
        expected = 2 * len(rooms)  # room.created and member.joined each
        await wait_until(lambda: len(receiver.delivered()) >= expected, timeout=60, what="all")
        await eventually(lambda: _queued(migrated_postgres), 0, what="the queue empty")
        ids = Counter(r.id for r in receiver.delivered())
        assert len(ids) == expected
        assert max(ids.values()) == 1
        for r in receiver.delivered():
            r.verified(OPERATOR_SECRET)
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)


async def _queued(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval("SELECT count(*) FROM webhook_deliveries")
    finally:
        await connection.close()


async def test_a_moved_rooms_endpoints_and_their_queued_deliveries_move_with_it(
    server: LiveServer, receiver: Receiver, room: str
):
    async with webhook_receiver() as owners:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join(room)).status_code == 200
        hook = await _register(ada, room, owners.url, events=["member.joined"])
        # An endpoint that refuses connections: Bob's join stays queued for it.
        down = await _register(ada, room, f"http://127.0.0.1:{free_port()}/hook")
        bob = await new_user(server.http_url, "Bob")
        assert (await bob.join(room)).status_code == 200
        await wait_until(lambda: len(owners.delivered()) == 1, what="Bob's member.joined")
        await eventually(
            lambda: _listed_fields(ada, room, "id", "pending"),
            [(hook["id"], 0), (down["id"], 1)],
            what="Bob's join queued for the endpoint that is down",
        )
        moved = await ada.call("POST", f"/api/rooms/{room}/move")
        assert moved.status_code == 200, moved.text
        new_id = moved.json()["new_room_id"]
        assert await _listed_fields(ada, new_id, "id", "pending", "enabled") == [
            (hook["id"], 0, True),
            (down["id"], 1, True),
        ]
        assert (await ada.call("GET", f"/api/rooms/{room}/webhooks")).status_code == 410
        assert await _stored_endpoints(server, room) == 0
        cid = await new_user(server.http_url, "Cid")
        assert (await cid.join(new_id)).status_code == 200
        await wait_until(lambda: len(owners.delivered()) == 2, what="Cid's member.joined")
        joined = owners.delivered()[1].verified(hook["secret"])  # the same endpoint and secret
    assert joined["data"] == {"room_id": new_id, "user_id": cid.id, "role": "editor"}


async def test_erasing_ones_data_leaves_the_rooms_webhooks_to_the_room_unattributed(
    server: LiveServer, receiver: Receiver, room: str
):
    ada = await new_user(server.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    bob = await new_user(server.http_url, "Bob")
    assert (await bob.join(room)).status_code == 200
    promoted = await ada.call("PUT", f"/api/rooms/{room}/members/{bob.id}", json={"role": "owner"})
    assert promoted.status_code == 200
    hook = await _register(ada, room, receiver.url)
    assert hook["created_by"] == ada.id
    assert (await ada.call("DELETE", "/api/me")).status_code == 200
    assert await _listed_fields(bob, room, "id", "created_by", "enabled") == [
        (hook["id"], None, True)
    ]
