"""An upload's pieces are applied one at a time, the event loop running between them.

An 8 MB update applied at once held the loop for 10-20 ms: every other room's frames waited
(bench/README.md, "Off the event loop").
"""

import asyncio

import pytest
from pycrdt import Doc

from pairpilot.bus import LocalBus
from pairpilot.errors import RefusedError
from pairpilot.guardrails import ROOM_FULL, DocumentQuota
from pairpilot.sync.files import read_files
from pairpilot.sync.room import Room
from pairpilot.sync.transfer import files_updates

pytestmark = pytest.mark.anyio

FILES = [(f"f{n}.txt", str(n) * 100) for n in range(3)]


def _room(events: list[str]) -> Room:
    return Room(
        "r",
        Doc(),
        bus=LocalBus(),
        on_update=lambda *_: events.append("piece"),
        max_awareness_bytes=1024,
    )


async def test_other_work_runs_between_the_pieces_of_an_upload():
    events: list[str] = []
    room = _room(events)

    async def another_room() -> None:
        for _ in range(3):
            events.append("other")
            await asyncio.sleep(0)

    other = asyncio.create_task(another_room())
    await room.apply_pieces(files_updates(FILES, piece_bytes=100))
    await other
    assert events[:5] == ["piece", "other", "piece", "other", "piece"]
    assert read_files(room.doc) == dict(FILES)


async def test_an_upload_past_the_quota_is_refused_before_its_first_piece():
    events: list[str] = []
    room = _room(events)
    pieces = files_updates(FILES, piece_bytes=100)
    room.quota = DocumentQuota(sum(map(len, pieces)) - 1, 0, room.doc)
    with pytest.raises(RefusedError) as refused:
        await room.apply_pieces(pieces)
    assert refused.value.reason == ROOM_FULL
    assert (events, read_files(room.doc)) == ([], {})


async def test_an_upload_is_counted_whole_before_its_pieces_are_applied():
    """An edit between two pieces cannot take the room the later pieces were admitted into."""
    events: list[str] = []
    room = _room(events)
    pieces = files_updates(FILES, piece_bytes=100)
    sizes: list[int] = []
    room._on_update = lambda *_: sizes.append(room.quota.size)
    await room.apply_pieces(pieces)
    assert sizes == [sum(map(len, pieces))] * len(pieces)
