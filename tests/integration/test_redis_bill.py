"""The Redis bill (issue #23): a room wholly on one process costs (nearly) no Redis commands."""

import asyncio
from pathlib import Path

import pytest
import redis.asyncio
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

from pairpilot.sync import protocol
from pairpilot.testing import live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


async def _commands(url: str) -> dict[str, int]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    spent = {name: after[name] - before.get(name, 0) for name in after if name != "info"}
    return {name: calls for name, calls in spent.items() if calls}


async def test_keystrokes_in_a_room_wholly_on_one_process_cost_nearly_no_redis_commands(
    tmp_path: Path, private_redis: tuple[str, object], room: str
) -> None:
    url, _ = private_redis
    settings = quick_settings(tmp_path, redis_url=url, messages_per_second=10_000)
    async with live_server(settings) as server:
        async with (
            synced_client(await server.member_url(room)) as typist,
            synced_client(await server.member_url(room)) as reader,
        ):
            bus = server.services.bus
            await wait_until(lambda: bus.quiet(room), what="the room to be held here, quiet")
            before = await _commands(url)
            text = typist.get("code", type=Text)
            keystrokes = 1000
            for i in range(keystrokes):
                text.insert(len(text), "abcdefghij"[i % 10])
                await asyncio.sleep(0.002)
            await wait_until(lambda: len(_text(reader)) == keystrokes, what="the other socket")
            spent = _spent(before, await _commands(url))
    assert "xadd" not in spent, spent  # no frame went to the stream
    # What is left is the process's own: one blocking read and one heartbeat a second.
    assert sum(spent.values()) <= 0.02 * keystrokes, spent


async def test_a_second_process_gets_a_quiet_rooms_unflushed_edits_on_its_first_sync(
    tmp_path: Path, private_redis: tuple[str, object], room: str
) -> None:
    url, _ = private_redis
    settings = quick_settings(tmp_path, redis_url=url, flush_ms=60_000)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await a.member_url(room)) as on_a:
            await wait_until(lambda: a.services.bus.quiet(room), what="A to hold the room")
            on_a.get("code", type=Text).insert(0, "unflushed on A")
            await wait_until(lambda: _text(a.services.registry.rooms[room].doc) != "")
            assert (await a.services.store.load(room)).merged() is None
            async with connect(await b.member_url(room), compression=None) as websocket:
                await websocket.send(protocol.sync_step1(Doc().get_state()))
                while True:  # the server's step 1 and presence come first; then its answer
                    message = protocol.decode_message(await websocket.recv())
                    if isinstance(message, protocol.SyncStep2):
                        break
                first: Doc = Doc()
                first.apply_update(message.update)
                assert _text(first) == "unflushed on A"
            # and A streams the room while B has it
            assert not a.services.bus.quiet(room)
