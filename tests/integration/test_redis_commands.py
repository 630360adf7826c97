"""Only the Redis commands the README lists, all of them Redis 6.2-level (what Upstash serves).

Two processes share a room through a private Redis while every path that talks to Redis runs
once: edits and presence crossing, a newcomer's catch-up, a change of rights, a Run counted,
sign-in and write rates, a room deleted, a quiet room. ``INFO commandstats`` then names every
command any client sent; a command outside the list below (a newer one, or one Upstash does not
serve) fails this test, and the README's list must change with it.
"""

import os
from pathlib import Path

import pytest
import redis.asyncio
from pycrdt import Text
from tests.support import new_user

from pairpilot.testing import live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio

# README, "Several processes" / Upstash: the commands PairPilot's clients send, all of them in
# Redis 6.2: the bus's streams, keys and lease scripts; the limiters' (`limits`: INCRBY, the
# moving window's lists, its scripts); HELLO, which redis-py 8 sends on every connect, and
# ``client|setinfo``, its best-effort library name (an error it ignores where it is unknown).
ALLOWED = {
    "xadd", "xread", "xrange", "xrevrange", "xtrim", "xlen",
    "set", "get", "mget", "exists", "pexpire", "expire", "del",
    "eval", "evalsha", "script|load", "incrby", "lpush", "lindex", "ltrim",
    "ping", "hello", "client|setinfo",
}  # fmt: skip


async def _commands(url: str) -> set[str]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_") for name, value in stats.items() if value["calls"]}


def _text(doc) -> str:  # type: ignore[no-untyped-def]
    return str(doc.get("code", type=Text))


async def test_every_redis_command_sent_is_one_the_readme_lists(
    tmp_path: Path, private_redis: tuple[str, object]
) -> None:
    url, _ = private_redis
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    room, quiet = f"cmds-{os.urandom(4).hex()}", f"quiet-{os.urandom(4).hex()}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = {"redis_url": url, "database_url": database}
    async with (
        live_server(quick_settings(tmp_path / "a", **settings)) as a,
        live_server(quick_settings(tmp_path / "b", **settings)) as b,
    ):
        owner = await new_user(a.http_url, "Owner")
        assert (await owner.join(room)).status_code == 200
        guest = await new_user(b.http_url, "Guest")
        assert (await guest.join(room)).status_code == 200
        async with (
            synced_client(a.ws_url(room, owner.token)) as on_a,
            synced_client(b.ws_url(room, guest.token)) as on_b,
            synced_client(await a.member_url(quiet)) as alone,
        ):
            on_a.get("code", type=Text).insert(0, "shared")
            await wait_until(lambda: _text(on_b) == "shared", what="the edit across processes")
            alone.get("code", type=Text).insert(0, "quiet")
            answer = await owner.call(
                "PUT", f"/api/rooms/{room}/members/{guest.id}", json={"role": "viewer"}
            )
            assert answer.status_code == 200
            run = await owner.call("POST", "/api/ratelimit/run", json={"roomId": room})
            assert (run.status_code, run.json()["degraded"]) == (200, False)
        assert (await owner.call("DELETE", f"/api/rooms/{room}")).status_code in (200, 204)
    used = await _commands(url)
    used.discard("info")  # this test's own
    assert used <= ALLOWED, sorted(used - ALLOWED)
    assert {"xadd", "xread", "evalsha"} <= used  # the bus and the limiter did talk to it
