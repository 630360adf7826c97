"""Updates waiting for storage and frames waiting for Redis are bounded in bytes."""

import pytest
from pycrdt import Doc, Text
from tests.support import flusher_over, joined_editors, local_room

from pairpilot.bus.streams import FRAME, STORED, SYNC_REQUEST, RedisStreamBus
from pairpilot.errors import RefusedError
from pairpilot.guardrails import BACKLOG, refusal_of
from pairpilot.sync import protocol
from pairpilot.sync.protocol import decode_message

pytestmark = pytest.mark.anyio


def _edit(doc: Doc, text: str) -> bytes:
    before = doc.get_state()
    doc.get("code", type=Text).insert(0, text)
    return protocol.sync_update(doc.get_update(before))


async def test_a_room_refuses_edits_once_its_updates_waiting_for_storage_reach_the_bound():
    flusher = flusher_over(object())  # type: ignore[arg-type] - nothing is written here
    room = local_room("waiting", on_update=flusher.record)
    room.max_pending_bytes = 4096
    [(writer, _)] = joined_editors(room, 1)
    client: Doc = Doc()
    while room.pending_bytes < room.max_pending_bytes:
        room.receive(writer, decode_message(_edit(client, "x" * 1000)))
    applied = str(room.doc.get("code", type=Text))
    with pytest.raises(RefusedError) as refused:
        room.receive(writer, decode_message(_edit(client, "refused")))
    assert refused.value.reason == BACKLOG
    assert refusal_of(refused.value).close_code == 1013  # the page reconnects and resends
    assert str(room.doc.get("code", type=Text)) == applied  # nothing half-applied
    # A write takes the updates: edits are accepted again, and a failed write gives them back.
    updates, _, waiting = room.take_pending()
    assert room.pending_bytes == 0
    room.receive(writer, decode_message(_edit(client, "accepted")))
    room.return_pending(updates, waiting)
    assert room.pending_bytes >= room.max_pending_bytes


def _bus(max_outbox_bytes: int) -> RedisStreamBus:
    return RedisStreamBus("redis://127.0.0.1:1/0", max_outbox_bytes=max_outbox_bytes)


async def test_the_redis_outbox_is_bounded_in_bytes_and_keeps_every_edit():
    bus = _bus(10_000)
    edit = protocol.sync_update(b"\x00" * 6000)
    presence = protocol.awareness(b"\x00")
    bus._queue("r", FRAME, edit)
    bus._queue("r", FRAME, edit)  # past the bound, but an applied edit is never dropped
    assert bus.backlogged()
    assert bus.outbox_bytes >= 12_000
    bus._queue("r", FRAME, presence)  # presence is renewed by its clients: left out
    bus._queue("r", STORED, b"\x00")  # said again by the next write: left out
    assert [entry[1] for entry in bus._outbox] == [FRAME, FRAME]


async def test_during_an_outage_the_full_outbox_keeps_only_control_entries():
    bus = _bus(10_000)
    bus._queue("r", SYNC_REQUEST, b"\x00")
    bus._queue("r", FRAME, protocol.sync_update(b"\x00" * 6000))
    bus._queue("r", FRAME, protocol.sync_update(b"\x00" * 6000))
    bus.down = True  # the full state exchange after the outage brings the frames again
    bus._queue("r", FRAME, protocol.sync_update(b"\x00" * 100))
    assert [entry[1] for entry in bus._outbox] == [SYNC_REQUEST, FRAME]
    assert not bus.backlogged()
