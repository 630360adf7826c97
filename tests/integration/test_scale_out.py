"""Two server processes share rooms through Redis: clients on either converge."""

import asyncio
import random
import time
from pathlib import Path

import pytest
import redis.asyncio
from pycrdt import Awareness, Doc, Text
from websockets.asyncio.client import connect

from pairpilot.bus import RedisStreamBus
from pairpilot.bus.streams import data_key, stream_key
from pairpilot.sync import protocol
from pairpilot.testing import ServerProcess, live_server, quick_settings, synced_client, wait_until

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


async def test_a_second_processs_first_sync_already_holds_the_first_processs_unflushed_edits(
    tmp_path, redis_url, room
):
    settings = _pair_settings(tmp_path, redis_url, flush_ms=60_000)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await a.member_url(room)) as on_a:
            on_a.get("code", type=Text).insert(0, "unflushed on A")
            # A has it unflushed; B's catch-up asks A for it (the room is quiet on A: nothing
            # of it is in Redis until B asks).
            await wait_until(lambda: _text(a.services.registry.rooms[room].doc) != "")
            async with connect(await b.member_url(room), compression=None) as websocket:
                await websocket.send(protocol.sync_step1(Doc().get_state()))
                while True:  # the server's step 1 and presence come first; then its answer
                    message = protocol.decode_message(await websocket.recv())
                    if isinstance(message, protocol.SyncStep2):
                        break
                first: Doc = Doc()
                first.apply_update(message.update)
                assert _text(first) == "unflushed on A"


async def test_a_replica_whose_reader_stalled_reads_on_from_where_it_stopped(
    tmp_path, redis_url, room
):
    settings = _pair_settings(tmp_path, redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with (
            synced_client(await a.member_url(room)) as on_a,
            synced_client(await b.member_url(room)) as on_b,
        ):
            bus_a, bus_b = a.services.bus, b.services.bus
            stalled, waiting = asyncio.Event(), asyncio.Event()
            original = bus_b._reader.xread

            async def stalled_xread(*args, **kwargs):  # type: ignore[no-untyped-def]
                waiting.set()
                await stalled.wait()
                return await original(*args, **kwargs)

            bus_b._reader.xread = stalled_xread  # type: ignore[method-assign]
            text = on_a.get("code", type=Text)
            text.insert(0, "-")  # returns B's read in flight; its next one waits
            await asyncio.wait_for(waiting.wait(), 20)
            seen_by_b = _text(on_b)
            for i in range(100):
                text.insert(len(text), f"{i % 10}")
                await asyncio.sleep(0.002)
            room_a = a.services.registry.rooms[room]
            await wait_until(
                lambda: _text(room_a.doc) == _text(on_a) and not bus_a._outbox,
                what="A's edits in Redis",
            )
            assert _text(on_b) == seen_by_b  # B's reader is held: nothing more arrived
            stalled.set()
            await wait_until(lambda: _text(on_b) == _text(on_a), what="B to read on")
            assert not bus_b.down  # read from the stream, not rebuilt by a full exchange


RETAIN_MS = 200


async def test_stored_entries_are_trimmed_and_a_replica_left_behind_recovers(redis_url, room):
    """Bus level: A's stored room stream entries are trimmed; B, stalled past the retention,
    falls back to a full state exchange and converges."""
    a = RedisStreamBus(redis_url, retain_ms=RETAIN_MS, block_ms=50)
    b = RedisStreamBus(redis_url, retain_ms=RETAIN_MS, block_ms=50)
    doc_a, doc_b = DocReplica(a, room), DocReplica(b, room)
    await a.start()
    await b.start()
    try:
        a.subscribe(room, doc_a)
        b.subscribe(room, doc_b)
        await a.catch_up(room)
        await b.catch_up(room)
        doc_a.type("before ")
        await wait_until(lambda: doc_b.text() == "before ", what="B to follow")
        stall, stalled = asyncio.Event(), asyncio.Event()
        original = b._reader.xread

        async def stalled_xread(*args, **kwargs):  # type: ignore[no-untyped-def]
            stalled.set()
            await stall.wait()
            return await original(*args, **kwargs)

        b._reader.xread = stalled_xread  # type: ignore[method-assign]
        await asyncio.wait_for(stalled.wait(), 10)  # B's read in flight returned; it waits now
        doc_a.type("while B was away")
        async with redis.asyncio.Redis.from_url(redis_url) as client:

            async def in_as_data_stream() -> bool:  # one entry, batched, in A's own stream
                newest = await client.xrevrange(data_key(a._me), count=1)
                return bool(newest) and b"while B was away" in newest[0][1][b"b"]

            await _eventually(in_as_data_stream, what="A's frame in its data stream")
            key = stream_key(room)
            assert await client.xlen(key) > 0  # the sync requests and their answers
            entry_ms = int(str(a.position(room)).split("-")[0])
            await wait_until(
                lambda: time.time() * 1000 - RETAIN_MS > entry_ms, what="the entry past retention"
            )
            a.persisted(room, a.position(room))  # stored, and older than the retention

            async def trimmed() -> bool:
                return await client.xlen(key) == 0

            await _eventually(trimmed, what="the stored entries trimmed")
        stall.set()
        await wait_until(lambda: doc_b.text() == "before while B was away", what="full exchange")
    finally:
        await a.close()
        await b.close()


async def _eventually(check, what: str, timeout: float = 10.0) -> None:
    """Poll the async ``check`` until it holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class DocReplica:
    """A Replica of a pycrdt Doc for bus-level tests."""

    def __init__(self, bus: RedisStreamBus, room: str) -> None:
        self.bus, self.room, self.doc = bus, room, Doc()

    def text(self) -> str:
        return _text(self.doc)

    def type(self, chunk: str) -> None:
        before = self.doc.get_state()
        code = self.doc.get("code", type=Text)
        code.insert(len(code), chunk)
        self.bus.publish(self.room, protocol.sync_update(self.doc.get_update(before)), None)

    def deliver(self, frame: bytes, origin: int | None) -> None:
        pass

    def apply_remote(self, frame: bytes, process: bytes = b"") -> None:
        message = protocol.decode_message(frame)
        if isinstance(message, protocol.SyncUpdate | protocol.SyncStep2):
            self.doc.apply_update(message.update)

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def drop_process(self, process: bytes) -> None:
        pass

    def became_persister(self) -> None:  # a test's replica takes a lease as a room would
        pass

    def stored_elsewhere(self, state_vector: bytes) -> None:
        pass

    def catch_up(self, state_vector: bytes) -> list[bytes]:
        return [protocol.sync_update(self.doc.get_update(state_vector))]


def _names(server, room: str) -> set[str]:  # type: ignore[no-untyped-def]
    live = server.services.registry.rooms.get(room)
    states = live.awareness.states.values() if live is not None else []
    return {state.get("user", {}).get("name") for state in states}


async def _present(websocket, name: str) -> None:  # type: ignore[no-untyped-def]
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": name}})
    await websocket.send(
        protocol.awareness(awareness.encode_awareness_update([awareness.client_id]))
    )


async def test_a_closed_sockets_presence_leaves_the_other_processes(tmp_path, redis_url, room):
    settings = _pair_settings(tmp_path, redis_url)
    async with live_server(settings) as a, live_server(settings) as b:
        async with synced_client(await b.member_url(room)):
            async with connect(await a.member_url(room), compression=None) as on_a:
                await _present(on_a, "Ada")
                await wait_until(lambda: "Ada" in _names(b, room), what="Ada on B")
            await wait_until(lambda: "Ada" not in _names(b, room), timeout=5, what="Ada gone")


async def test_a_dead_processs_presence_is_removed_within_seconds(tmp_path, redis_url, room):
    settings = _pair_settings(tmp_path, redis_url)
    async with live_server(settings) as b:
        a = ServerProcess(
            {
                "PAIRPILOT_DATA_DIR": str(tmp_path),
                "REDIS_URL": redis_url,
                "PAIRPILOT_LOG_LEVEL": "WARNING",
            }
        )
        a.start()
        try:
            async with synced_client(await b.member_url(room)):
                on_a = await connect(await a.member_url(room), compression=None)
                await _present(on_a, "Ada")
                await wait_until(lambda: "Ada" in _names(b, room), what="Ada on B")
                a.kill()
                started = time.monotonic()
                await wait_until(lambda: "Ada" not in _names(b, room), timeout=10, what="Ada gone")
                # The stock client's own timeout would be 30 s.
                assert time.monotonic() - started < 8
        finally:
            a.kill()
