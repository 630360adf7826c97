"""POST /api/ratelimit/run: 3 per 60 s per (room, user), in memory and on Redis, failing open."""

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.support import User, new_user

from pairpilot.testing import (
    LiveServer,
    free_port,
    live_server,
    quick_settings,
    sentry_ingest,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def _run(user: User, room: str):  # type: ignore[no-untyped-def]
    return await user.call("POST", "/api/ratelimit/run", json={"roomId": room})


async def test_the_fourth_run_in_a_minute_is_429_with_retry_after(server: LiveServer, room):
    ada = await new_user(server.http_url)
    await ada.join(room)
    answers = [await _run(ada, room) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.json()["remaining"] for a in answers[:3]] == [2, 1, 0]
    assert answers[0].json()["allowed"] is True
    assert answers[0].json()["limit"] == 3
    limited = answers[3]
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert limited.json()["message"] == f"Run limit reached — try again in {retry} s"
    assert limited.json()["allowed"] is False


async def test_the_window_is_per_room_and_per_user(server: LiveServer, room):
    ada, bob = await new_user(server.http_url), await new_user(server.http_url)
    other = f"{room}-b"
    for user in (ada, bob):
        await user.join(room)
        await user.join(other)
    for _ in range(3):
        assert (await _run(ada, room)).status_code == 200
    assert (await _run(ada, room)).status_code == 429
    assert (await _run(bob, room)).status_code == 200
    assert (await _run(ada, other)).status_code == 200


async def test_non_members_get_404_and_bad_bodies_400(server: LiveServer, room):
    ada, eve = await new_user(server.http_url), await new_user(server.http_url)
    await ada.join(room)
    assert (await _run(eve, room)).status_code == 404
    for body in ({}, {"roomId": "bad id!"}, {"room": room}):
        response = await eve.call("POST", "/api/ratelimit/run", json=body)
        assert response.status_code == 400


async def test_a_short_window_frees_slots_again(tmp_path: Path, room):
    async with live_server(quick_settings(tmp_path, run_limit=1, run_window_s=1)) as server:
        ada = await new_user(server.http_url)
        await ada.join(room)
        assert (await _run(ada, room)).status_code == 200
        assert (await _run(ada, room)).status_code == 429
        await asyncio.sleep(1.1)
        assert (await _run(ada, room)).status_code == 200


# Fail-open is not what these test: a timeout that a loaded machine cannot reach, so all fifty
# calls are decided by Redis (at the default 200 ms, some of them failed open under load).
PATIENT_MS = 10_000


async def test_fifty_concurrent_runs_on_redis_allow_exactly_three(tmp_path, redis_url, room):
    settings = quick_settings(tmp_path, redis_url=redis_url, redis_timeout_ms=PATIENT_MS)
    async with live_server(settings) as server:
        ada = await new_user(server.http_url)
        await ada.join(room)
        answers = await asyncio.gather(*(_run(ada, room) for _ in range(50)))
        statuses = [a.status_code for a in answers]
        assert statuses.count(200) == 3
        assert statuses.count(429) == 47
        assert not any(a.json().get("degraded") for a in answers)


async def test_two_processes_share_the_window_through_redis(tmp_path, redis_url, room):
    settings = quick_settings(tmp_path, redis_url=redis_url, redis_timeout_ms=PATIENT_MS)
    async with live_server(settings) as first, live_server(settings) as second:
        ada = await new_user(first.http_url)
        await ada.join(room)
        elsewhere = User(second.http_url, ada.token, ada.id, ada.name)
        assert [(await _run(u, room)).status_code for u in (ada, elsewhere, ada, elsewhere)] == [
            200,
            200,
            200,
            429,
        ]


async def test_an_unreachable_redis_fails_open_and_warns_once(tmp_path: Path, room, caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with live_server(quick_settings(tmp_path, redis_url=dead)) as server:
        ada = await new_user(server.http_url)
        await ada.join(room)
        answers = [await _run(ada, room) for _ in range(6)]
        assert all(a.status_code == 200 for a in answers)
        assert all(a.json() == {**a.json(), "allowed": True, "degraded": True} for a in answers)
        warnings = [r for r in caplog.records if "failing open" in str(r.msg)]
        assert len(warnings) == 1
        assert server.services.limiter.fail_open_count == 6


async def test_the_redis_outage_story_end_to_end(tmp_path, private_redis, room, caplog):
    """Redis goes away: runs keep working, one warning, one Sentry event, the fail-open counter
    rises, /readyz names Redis; Redis returns: limiting and readiness come back by themselves."""
    url, redis_process = private_redis
    async with sentry_ingest() as ingest:
        settings = quick_settings(tmp_path, redis_url=url, sentry_dsn=ingest.dsn())
        async with live_server(settings) as server:
            ada = await new_user(server.http_url)
            await ada.join(room)
            assert (await _run(ada, room)).json()["remaining"] == 2
            assert (await _get(server, "/readyz")).status_code == 200

            redis_process.stop()
            outage = [await _run(ada, room) for _ in range(5)]
            assert all(a.status_code == 200 and a.json()["degraded"] for a in outage)
            ready = await _get(server, "/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] == "down"
            assert (
                _metric(await _get(server, "/metrics"), "pairpilot_ratelimit_fail_open_total") == 5
            )
            warnings = [r for r in caplog.records if "failing open" in str(r.msg)]
            assert len(warnings) == 1
            await wait_until(lambda: bool(ingest.events()), what="the outage event")
            await asyncio.sleep(0.3)
            assert len(ingest.events()) == 1
            assert ingest.events()[0]["tags"]["task"] == "ratelimit"

            redis_process.start()
            recovered = [await _run(ada, room) for _ in range(4)]
            assert [a.status_code for a in recovered] == [200, 200, 200, 429]
            assert (await _get(server, "/readyz")).status_code == 200
            assert not server.services.limiter.in_outage


async def _get(server: LiveServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        return await client.get(path)


def _metric(response: httpx.Response, name: str) -> float:
    for line in response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")
