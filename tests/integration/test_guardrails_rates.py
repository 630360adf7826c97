"""Rates and the rooms quota (README "Quotas and abuse limits"): sign-ins and refreshes per
client address, rooms created and REST writes per user, rooms owned per account; in memory and
on Redis, shared by two servers, failing open when Redis is down.

Every window here is an hour: no test can slide out of one on a slow machine.
"""

import asyncio
import base64
import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from pycrdt import Doc, Text
from starlette.routing import BaseRoute
from tests.conftest import backend_settings
from tests.support import User, new_user

from pairpilot.storage.versions import VersionKind
from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
RETRY = re.compile(r" — try again in (\d+ s|\d+ min)$")


def _address() -> str:
    """A client address no other test (or earlier run on the same Redis) has used."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def _sign_in(base: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with httpx.AsyncClient(base_url=base) as client:
        return await client.post("/api/auth/anonymous", json={"name": "Ada"}, headers=headers)


async def _refresh(base: str, refresh_token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as client:
        return await client.post(
            "/api/auth/token",
            params={"grant_type": "refresh_token"},
            json={"refresh_token": refresh_token},
        )


def _account(base: str, *, anonymous: bool) -> User:
    """A user whose token the test signs with the server's secret, like a Supabase project's."""
    user_id = str(uuid.uuid4())
    claims = {
        "sub": user_id,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 3600,
        "is_anonymous": anonymous,
        "user_metadata": {"name": "Grace"},
    }
    return User(base, jwt.encode(claims, SECRET, algorithm="HS256"), user_id, "Grace")


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


async def _metric(server: LiveServer, name: str, reason: str) -> float:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{reason="{reason}"}} '):
            return float(line.split()[-1])
    return 0.0


def _assert_limited(response: httpx.Response, message_start: str) -> int:
    """The 429's shape; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    retry = int(response.headers["Retry-After"])
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["message"].startswith(message_start + " — try again in ")
    assert RETRY.search(body["message"]), body["message"]
    return retry


# Sign-in and refresh, per client address


async def test_the_sign_in_past_the_rate_from_one_address_is_429_with_retry_after(tmp_path):
    async with live_server(quick_settings(tmp_path, signin_rate="5/hour")) as server:
        answers = [await _sign_in(server.http_url) for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        retry = _assert_limited(answers[5], "Too many sign-ins from your address")
        assert 1 <= retry <= 3600
        assert await _metric(server, "pairpilot_refusals_total", "signin_rate") == 2


async def test_a_listed_proxy_has_each_client_counted_by_its_forwarded_address(tmp_path):
    settings = quick_settings(tmp_path, signin_rate="2/hour", forwarded_allow_ips="127.0.0.1")
    async with live_server(settings) as server:
        first, second = _address(), _address()
        statuses = [(await _sign_in(server.http_url, first)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await _sign_in(server.http_url, second)).status_code == 200
        # The proxy's own requests are counted by its address.
        assert (await _sign_in(server.http_url)).status_code == 200


@pytest.mark.parametrize("listed", [None, "10.255.255.254"], ids=["no proxies", "another proxy"])
async def test_x_forwarded_for_from_an_unlisted_peer_is_ignored(tmp_path, listed):
    settings = quick_settings(tmp_path, signin_rate="2/hour", forwarded_allow_ips=listed)
    async with live_server(settings) as server:
        statuses = [(await _sign_in(server.http_url, _address())).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_the_refresh_past_the_rate_from_one_address_is_429(tmp_path):
    async with live_server(quick_settings(tmp_path, refresh_rate="3/hour")) as server:
        refresh_token = (await _sign_in(server.http_url)).json()["refresh_token"]
        for _ in range(3):
            answer = await _refresh(server.http_url, refresh_token)
            assert answer.status_code == 200, answer.text
            refresh_token = answer.json()["refresh_token"]
        limited = await _refresh(server.http_url, refresh_token)
        _assert_limited(limited, "Too many token refreshes from your address")
        # Sign-ins have a rate of their own.
        assert (await _sign_in(server.http_url)).status_code == 200
        assert await _metric(server, "pairpilot_refusals_total", "refresh_rate") == 1


# Rooms created per user, rooms owned per account


async def test_only_joins_that_create_a_room_count_against_the_creation_rate(backend, tmp_path):
    settings = backend_settings(backend, tmp_path, room_create_rate="3/hour")
    async with live_server(settings) as server:
        ada, bob = await new_user(server.http_url), await new_user(server.http_url)
        mine = [_room() for _ in range(3)]
        for room in mine:
            assert (await ada.join(room)).status_code == 200
        bobs = _room()
        assert (await bob.join(bobs)).status_code == 200
        refused = _room()
        limited = await ada.join(refused)
        _assert_limited(limited, "You have created too many rooms lately")
        # Joining an existing room, or one's own again, creates nothing.
        assert (await ada.join(bobs)).status_code == 200
        assert (await ada.join(mine[0])).status_code == 200
        # The refused room was not created: the next to join it owns it.
        answer = await bob.join(refused)
        assert answer.json()["room"]["owner_id"] == bob.id
        assert await _metric(server, "pairpilot_refusals_total", "create_rate") == 1


@pytest.mark.parametrize(
    ("anonymous", "most", "whose"),
    [(True, 2, "an anonymous account"), (False, 3, "an account")],
    ids=["anonymous", "account"],
)
async def test_a_room_past_the_owned_quota_is_403_quota_exceeded(
    backend, tmp_path, anonymous, most, whose
):
    settings = backend_settings(
        backend, tmp_path, jwt_secret=SECRET, rooms_per_user=3, rooms_per_anonymous_user=2
    )
    async with live_server(settings) as server:
        grace, bob = _account(server.http_url, anonymous=anonymous), await new_user(server.http_url)
        for _ in range(most):
            assert (await grace.join(_room())).status_code == 200
        refused = _room()
        answer = await grace.join(refused)
        assert answer.status_code == 403, answer.text
        assert answer.json() == {
            "error": "quota_exceeded",
            "message": f"You already own {most} rooms, the most {whose} may own: delete one first",
        }
        assert "Retry-After" not in answer.headers
        # Joining a room someone else owns is still fine; the refused one does not exist.
        bobs = _room()
        await bob.join(bobs)
        assert (await grace.join(bobs)).status_code == 200
        assert (await bob.join(refused)).json()["room"]["owner_id"] == bob.id
        assert await _metric(server, "pairpilot_refusals_total", "rooms_owned") == 1


async def test_concurrent_joins_of_one_user_cannot_pass_the_owned_quota(backend, tmp_path):
    settings = backend_settings(backend, tmp_path, rooms_per_anonymous_user=3)
    async with live_server(settings) as server:
        ada = await new_user(server.http_url)
        answers = await asyncio.gather(*(ada.join(_room()) for _ in range(12)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 3 + [403] * 9


async def test_one_new_room_joined_twice_at_once_is_created_once(backend, tmp_path):
    settings = backend_settings(backend, tmp_path, rooms_per_anonymous_user=3)
    async with live_server(settings) as server:
        ada = await new_user(server.http_url)
        for _ in range(2):
            await ada.join(_room())
        again = _room()
        twice = await asyncio.gather(ada.join(again), ada.join(again))
        assert [answer.status_code for answer in twice] == [200, 200]
        assert {answer.json()["member"]["role"] for answer in twice} == {"owner"}
        refused = await ada.join(_room())
        assert refused.status_code == 403
        assert refused.json()["message"].startswith("You already own 3 rooms")


# Writes per user


def _write_calls(
    room: str, target: str, version: int = 1
) -> dict[str, tuple[str, str, dict[str, object]]]:
    """One call of each REST write route (method, path, httpx arguments)."""
    doc = Doc()
    doc["main.py"] = Text("print(1)")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.py", "a = 1\n")
    update = base64.b64encode(doc.get_update()).decode()
    files = {"files": [{"name": "b.py", "text": "b = 2\n"}]}
    base = f"/api/rooms/{room}"
    return {
        "snapshot": ("POST", f"{base}/snapshot", {"json": {"snapshot_b64": update}}),
        "files": ("POST", f"{base}/files", {"json": files}),
        "import.zip": ("POST", f"{base}/import.zip", {"content": archive.getvalue()}),
        "versions": ("POST", f"{base}/versions", {"json": {"name": "v1"}}),
        "restore": ("POST", f"{base}/versions/{version}/restore", {}),
        "member role": ("PUT", f"{base}/members/{target}", {"json": {"role": "viewer"}}),
        "member removal": ("DELETE", f"{base}/members/{target}", {}),
        "default role": ("PATCH", base, {"json": {"default_role": "viewer"}}),
    }


async def test_every_rest_write_route_counts_against_the_write_rate(tmp_path):
    async with live_server(quick_settings(tmp_path, write_rate="1/hour")) as server:
        for name in _write_calls("r", "u"):
            owner, member = await new_user(server.http_url), await new_user(server.http_url)
            room = _room()
            await owner.join(room)
            await member.join(room)
            identity = server.services.identities.verify(owner.token)
            version = await server.services.directory.add_version(
                room, identity, VersionKind.NAMED, Doc().get_update(), "v0"
            )
            method, path, arguments = _write_calls(room, member.id, version.id)[name]
            first = await owner.call(method, path, **arguments)
            assert first.status_code < 400, (name, first.text)
            second = await owner.call(method, path, **arguments)
            _assert_limited(second, "Too many changes from your account")
            # Reads are not writes, and the rate is each user's own.
            assert (await owner.call("GET", f"/api/rooms/{room}/members")).status_code == 200
            assert (await member.call(method, path, **arguments)).status_code != 429


async def test_writes_of_every_kind_share_one_window_per_user(tmp_path):
    async with live_server(quick_settings(tmp_path, write_rate="3/hour")) as server:
        ada, bob = await new_user(server.http_url), await new_user(server.http_url)
        room = _room()
        await ada.join(room)
        await bob.join(room)
        calls = _write_calls(room, bob.id)
        for name in ("files", "versions", "default role"):
            method, path, arguments = calls[name]
            assert (await ada.call(method, path, **arguments)).status_code < 400, name
        method, path, arguments = calls["snapshot"]
        _assert_limited(
            await ada.call(method, path, **arguments), "Too many changes from your account"
        )
        assert await _metric(server, "pairpilot_refusals_total", "write_rate") == 1


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, in included routers too (FastAPI includes them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_write_route_of_a_room_has_the_write_rate(tmp_path):
    """A route that changes a room (POST, PUT, PATCH, DELETE under /api/rooms) lists WriteRate,
    except join, which has the creation rate and the rooms quota."""
    from pairpilot.web.app import create_app  # noqa: PLC0415
    from pairpilot.web.deps import count_write  # noqa: PLC0415

    app = create_app(quick_settings(tmp_path))
    writes = [
        route
        for route in _api_routes(app.routes)
        if route.path.startswith("/api/rooms/")
        and route.methods & {"POST", "PUT", "PATCH", "DELETE"}
        and not route.path.endswith("/join")
    ]
    assert len(writes) >= 8
    for route in writes:
        assert any(d.call is count_write for d in route.dependant.dependencies), route.path


# Redis: shared by servers, failing open


async def test_two_servers_share_the_windows_through_redis(tmp_path, redis_url):
    settings = quick_settings(
        tmp_path,
        redis_url=redis_url,
        signin_rate="3/hour",
        write_rate="2/hour",
        forwarded_allow_ips="127.0.0.1",
    )
    async with live_server(settings) as first, live_server(settings) as second:
        address = _address()  # the shared Redis keeps earlier runs' windows: a new address
        signed = [
            await _sign_in(server.http_url, address) for server in (first, second, first, second)
        ]
        assert [answer.status_code for answer in signed] == [200, 200, 200, 429]
        body = signed[0].json()
        ada = User(first.http_url, body["access_token"], body["user"]["id"], "Ada")
        room = _room()
        await ada.join(room)
        elsewhere = User(second.http_url, ada.token, ada.id, ada.name)
        method, path, arguments = _write_calls(room, ada.id)["versions"]
        answers = [await u.call(method, path, **arguments) for u in (ada, elsewhere, ada)]
        assert [a.status_code for a in answers] == [201, 201, 429]


async def test_an_unreachable_redis_lets_every_rate_through_and_warns_once(
    tmp_path: Path, private_redis, caplog
):
    url, redis_process = private_redis
    settings = quick_settings(
        tmp_path, redis_url=url, signin_rate="2/hour", room_create_rate="1/hour"
    )
    async with live_server(settings) as server:
        # Not refused before the outage: a refusal is kept in the process until its window ends.
        assert (await _sign_in(server.http_url)).status_code == 200

        redis_process.stop()
        outage = [await _sign_in(server.http_url) for _ in range(4)]
        assert [a.status_code for a in outage] == [200] * 4
        ada = User(server.http_url, outage[0].json()["access_token"], "", "")
        assert [(await ada.join(_room())).status_code for _ in range(2)] == [200, 200]
        assert await _metric(server, "pairpilot_guardrail_fail_open_total", "signin_rate") == 4
        assert await _metric(server, "pairpilot_guardrail_fail_open_total", "create_rate") == 2
        warnings = [r for r in caplog.records if "failing open" in str(r.msg)]
        assert len(warnings) == 1

        redis_process.start()  # empty: its windows start again
        statuses = [(await _sign_in(server.http_url)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert not server.services.limiter.in_outage
