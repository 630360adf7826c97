"""A flush of many rooms lets other callbacks (relayed frames) run while it marks them saved."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pycrdt import Doc, Text
from tests.support import flusher_over, joined_editors, local_room

from pairpilot.sync import protocol
from pairpilot.sync.flusher import MARK_ROOMS_PER_STEP
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import Room

pytestmark = pytest.mark.anyio


class _AcceptingStore:
    """A store whose appends succeed at once (no I/O, so no suspension of its own)."""

    async def append(
        self, batch: Sequence[tuple[str, bytes]], fences: Mapping[str, int] | None = None
    ) -> set[str]:
        return set()

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected store call: {name}")


async def test_marking_a_batch_saved_yields_to_the_loop_between_steps():
    flusher = flusher_over(_AcceptingStore())  # type: ignore[arg-type]
    rooms: list[Room] = []
    writers = []
    for index in range(MARK_ROOMS_PER_STEP * 2 + 1):
        room = local_room(f"room-{index}", on_update=flusher.record)
        [(writer, _)] = joined_editors(room, 1)
        doc: Doc = Doc()
        doc.get("code", type=Text).insert(0, "x")
        room.receive(writer, decode_message(protocol.sync_update(doc.get_update())))
        rooms.append(room)
        writers.append(writer)
    marked_when_others_ran: list[int] = []

    def another_callback() -> None:  # what a relayed frame's data_received would be
        marked_when_others_ran.append(sum(not room.writing for room in rooms))

    loop = asyncio.get_running_loop()
    loop.call_soon(another_callback)
    await flusher._write(rooms)
    assert marked_when_others_ran == [MARK_ROOMS_PER_STEP]  # ran after the first step
    assert all(not room.writing for room in rooms)
    assert all(not writer.unsaved for writer in writers)
