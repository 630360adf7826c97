"""The Redis bill (issue #23): what rooms cost in Redis commands, counted by Redis itself.

Each test has a private redis-server: ``INFO commandstats`` then counts this test's commands only.
The budgets are upper bounds (a slow machine sends fewer commands, not more).
"""

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio
from pycrdt import Doc, Text
from tests.integration.test_scale_out import DocReplica
from websockets.asyncio.client import connect

from pairpilot.bus import RedisStreamBus
from pairpilot.bus.streams import data_key
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


async def test_an_idle_open_room_costs_at_most_half_a_command_a_second(
    tmp_path: Path, private_redis: tuple[str, object], room: str
) -> None:
    url, _ = private_redis
    async with live_server(quick_settings(tmp_path, redis_url=url)) as server:
        async with (
            synced_client(await server.member_url(room)),
            synced_client(await server.member_url(room)),
        ):
            bus = server.services.bus
            await wait_until(lambda: bus.quiet(room), what="the room to be held here, quiet")
            before = await _commands(url)
            started = time.monotonic()
            # Longer than the reader's block (10 s) and the process key's renewal (10 s): the
            # window holds two of each and at most one lease renewal (every 30 s).
            window = 20.0
            await asyncio.sleep(window)  # nobody types: what the window costs is the budget
            spent = _spent(before, await _commands(url))
            elapsed = time.monotonic() - started
    assert sum(spent.values()) <= 0.5 * elapsed, spent


async def test_frames_of_many_shared_rooms_go_out_as_one_entry_read_once_by_the_other(
    private_redis: tuple[str, object],
) -> None:
    """Two processes sharing twenty rooms: a burst of 1,000 frames is one XADD and one XREAD."""
    url, _ = private_redis
    a, b = RedisStreamBus(url), RedisStreamBus(url)
    rooms = [f"shared-{index}" for index in range(20)]
    on_a = {room: DocReplica(a, room) for room in rooms}
    on_b = {room: DocReplica(b, room) for room in rooms}
    await a.start()
    await b.start()
    try:
        for room in rooms:
            a.subscribe(room, on_a[room])
            b.subscribe(room, on_b[room])
            await a.catch_up(room)
            await b.catch_up(room)
        for room in rooms:  # each side reads the other's data stream
            on_a[room].type("a")
            on_b[room].type("b")
        await wait_until(
            lambda: all(len(on_b[room].text()) == len(on_a[room].text()) == 2 for room in rooms),
            what="the first frames across",
        )
        assert data_key(a._me) not in {data_key(process) for process in a._reading}
        before = await _commands(url)
        for _ in range(50):  # 1,000 keystrokes in one go, before the publisher runs
            for room in rooms:
                on_a[room].type("x")
        await wait_until(
            lambda: all(len(on_b[room].text()) == 52 for room in rooms), what="the burst on B"
        )
        spent = _spent(before, await _commands(url))
    finally:
        await a.close()
        await b.close()
    assert spent.get("xadd", 0) == 1, spent  # every frame of every room in one entry
    # B's read of it and the reads around it (a reader that just read data reads the data
    # streams alone for up to 100 ms, then the room streams too); A's reader is never woken by
    # its own entry. One XREAD per frame would be hundreds.
    assert spent.get("xread", 0) <= 6, spent
    assert sum(spent.values()) <= 0.02 * 1000, spent
