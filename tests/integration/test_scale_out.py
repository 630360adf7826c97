"""Two server processes share rooms through Redis: clients on either converge."""

import asyncio
import random
from pathlib import Path

import pytest
from pycrdt import Awareness, Doc, Text

from pairpilot.sync import protocol
from pairpilot.testing import live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


def _pair_settings(tmp_path: Path, redis_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    # One data dir: the two processes share the database file and the JWT secret.
    return quick_settings(tmp_path, redis_url=redis_url, **overrides)


async def test_clients_on_two_processes_converge(tmp_path, redis_url, room):
    settings = _pair_settings(tmp_path, redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with (
            synced_client(await a.member_url(room)) as on_a,
            synced_client(await b.member_url(room)) as on_b,
        ):
            rng = random.Random(7)
            for i in range(60):
                doc = on_a if i % 2 else on_b
                text = doc.get("code", type=Text)
                text.insert(rng.randint(0, len(text)), f"{i % 10}")
                await asyncio.sleep(0.005)
            await wait_until(
                lambda: _text(on_a) == _text(on_b) and len(_text(on_a)) == 60,
                what="the two processes' clients to converge",
            )
            replica_a = a.services.registry.rooms[room].doc
            replica_b = b.services.registry.rooms[room].doc
            await wait_until(lambda: _text(replica_a) == _text(replica_b) == _text(on_a))


async def test_presence_crosses_processes(tmp_path, redis_url, room):
    settings = _pair_settings(tmp_path, redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await a.member_url(room)):
            room_a = a.services.registry.rooms[room]
            room_a.awareness.apply_awareness_update(  # as if A's socket had sent it
                _presence_update("Ada"), "test"
            )
            a.services.bus.publish(room, _presence_frame(room_a), None)
            async with synced_client(await b.member_url(room)):
                await wait_until(
                    lambda: (
                        room in b.services.registry.rooms
                        and any(
                            state.get("user", {}).get("name") == "Ada"
                            for state in b.services.registry.rooms[room].awareness.states.values()
                        )
                    ),
                    what="Ada's presence on the other process",
                )


async def test_a_room_opened_on_a_second_process_catches_up_with_unflushed_edits(
    tmp_path, redis_url, room
):
    settings = _pair_settings(tmp_path, redis_url, flush_ms=60_000)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await a.member_url(room)) as on_a:
            on_a.get("code", type=Text).insert(0, "typed on A, not stored yet")
            await wait_until(lambda: room in a.services.registry.rooms)
            assert (await a.services.store.load(room)).merged() is None
            async with synced_client(await b.member_url(room)) as on_b:
                await wait_until(
                    lambda: _text(on_b) == "typed on A, not stored yet",
                    what="B to catch up from A's memory",
                )


async def test_replicas_catch_up_after_a_redis_outage(tmp_path, private_redis, room):
    url, redis_process = private_redis
    settings = _pair_settings(tmp_path, url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with (
            synced_client(await a.member_url(room)) as on_a,
            synced_client(await b.member_url(room)) as on_b,
        ):
            on_a.get("code", type=Text).insert(0, "before ")
            await wait_until(lambda: _text(on_b) == "before ")
            redis_process.stop()
            text_a = on_a.get("code", type=Text)
            text_a.insert(len(text_a), "during the outage")
            await asyncio.sleep(0.5)
            assert _text(on_b) == "before "
            redis_process.start()
            await wait_until(
                lambda: _text(on_b) == "before during the outage",
                timeout=20,
                what="B to catch up once Redis is back",
            )


def _presence_update(name: str) -> bytes:
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": name}})
    return awareness.encode_awareness_update([awareness.client_id])


def _presence_frame(room) -> bytes:  # type: ignore[no-untyped-def]
    return protocol.awareness(room.awareness.encode_awareness_update(list(room.awareness.states)))
