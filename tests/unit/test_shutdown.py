"""Shutdown: nothing touches storage after the registry closed, and no edit is dropped.

The server closes the bus and disposes of the engine right after ``RoomRegistry.close``; a
connection opened after that is never closed (CI caught one as an unclosed-socket warning).
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pycrdt import Doc, Text
from tests.support import flusher_over, joined_editors

from pairpilot.bus.local import LocalBus
from pairpilot.errors import StorageError
from pairpilot.observability.metrics import Metrics
from pairpilot.storage.store import StoredRoom
from pairpilot.sync import protocol
from pairpilot.sync.flusher import Flusher
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.registry import RoomRegistry

pytestmark = pytest.mark.anyio

IDLE_MS = 20


class _Store:
    """An empty store that records its calls; appends wait while ``hold`` is clear and
    fail while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written: list[bytes] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.appending = asyncio.Event()
        self.failing = False

    async def load(self, room_id: str) -> StoredRoom:
        self.calls.append("load")
        return StoredRoom(snapshot=None, updates=[])

    async def append(
        self, batch: Sequence[tuple[str, bytes]], fences: Mapping[str, int] | None = None
    ) -> set[str]:
        self.calls.append("append")
        self.appending.set()
        await self.hold.wait()
        if self.failing:
            raise StorageError("appending updates failed")
        self.written.extend(update for _, update in batch)
        return set()

    async def compact(self, room_id: str, *, checkpoint: bool = False, size_hint: int = 0) -> int:
        self.calls.append("compact")
        return 0

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected store call: {name}")


def _services(store: _Store) -> tuple[Flusher, RoomRegistry]:
    flusher = flusher_over(store, flush_ms=5, retry_max_ms=10)  # type: ignore[arg-type]
    registry = RoomRegistry(
        store,  # type: ignore[arg-type]
        LocalBus(),
        flusher,
        idle_unload_ms=IDLE_MS,
        max_awareness_bytes=1 << 16,
        metrics=Metrics(),
    )
    return flusher, registry


def _edit(text: str) -> bytes:
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, text)
    return protocol.sync_update(doc.get_update())


async def test_a_session_that_leaves_after_close_starts_no_unload():
    store = _Store()
    _, registry = _services(store)
    room = await registry.acquire("r")
    [(session, _)] = joined_editors(room, 1)
    await registry.close()
    calls = list(store.calls)
    room.leave(session)
    registry.release(room)  # what the connection's clean-up does once its socket closed
    await asyncio.sleep(IDLE_MS * 5 / 1000)
    assert store.calls == calls  # before: the unload's flush ran on the closed store


async def test_an_unload_that_keeps_its_room_during_close_does_not_retry_after_it():
    store = _Store()
    _, registry = _services(store)
    room = await registry.acquire("r")
    [(session, _)] = joined_editors(room, 1)
    room.receive(session, decode_message(_edit("x")))
    room.leave(session)
    store.hold.clear()
    store.failing = True  # the unload's flush fails: it keeps the room and would retry
    registry.release(room)
    await store.appending.wait()
    closing = asyncio.create_task(registry.close())
    await asyncio.sleep(0)
    store.hold.set()
    with pytest.raises(StorageError):  # the last write fails as well: close says so
        await closing
    calls = len(store.calls)
    await asyncio.sleep(IDLE_MS * 5 / 1000)
    assert len(store.calls) == calls
    assert "r" in registry.rooms  # kept in memory, not dropped
    assert room.pending


async def test_a_write_in_flight_when_the_loop_stops_is_written_by_the_last_flush():
    store = _Store()
    flusher, registry = _services(store)
    room = await registry.acquire("r")
    [(session, _)] = joined_editors(room, 1)
    flusher.start()
    store.hold.clear()
    room.receive(session, decode_message(_edit("typed just before the shutdown")))
    await store.appending.wait()  # the loop's write waits for the database
    closing = asyncio.create_task(flusher.close())
    await asyncio.sleep(0.01)
    store.hold.set()
    await closing
    doc: Doc = Doc()
    for update in store.written:
        doc.apply_update(update)
    assert str(doc.get("code", type=Text)) == "typed just before the shutdown"
    assert not room.pending
