import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text
from tests.support import RecordingSocket, editor, local_room

from pairpilot.errors import ProtocolError
from pairpilot.sync import protocol
from pairpilot.sync.protocol import SyncStep2, decode_message


def _frames():
    """Random bytes, and random bytes behind each valid message-type prefix."""
    prefixes = st.sampled_from(
        [b"", b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x02", b"\x02\x03", b"\x03"]
    )
    return st.builds(lambda p, b: p + b, prefixes, st.binary(max_size=64))


@settings(max_examples=2000)
@given(_frames())
def test_decoding_never_raises_anything_but_protocol_error(frame: bytes):
    with contextlib.suppress(ProtocolError):
        decode_message(frame)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_frames(), max_size=8))
def test_a_room_survives_any_frame_sequence(frames: list[bytes]):
    asyncio.run(_feed(frames))


async def _feed(frames: list[bytes]) -> None:
    room = local_room("fuzz")
    fuzzed_socket = RecordingSocket()
    fuzzed = editor(fuzzed_socket, "fuzz")
    room.join(fuzzed)
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            room.receive(fuzzed, decode_message(frame))
    # The room still answers the socket it was fed on: a sync step 2 with the whole document.
    sent = len(fuzzed_socket.writes)
    room.receive(fuzzed, decode_message(protocol.sync_step1(Doc().get_state())))
    assert _synced_doc(fuzzed_socket.writes[sent:]).get_state() == room.doc.get_state()
    # A fresh client syncs to the same document, and its edit is applied and reaches the other.
    fresh_socket = RecordingSocket()
    fresh = editor(fresh_socket, "fuzz")
    room.join(fresh)
    room.receive(fresh, decode_message(protocol.sync_step1(Doc().get_state())))
    fresh_doc = _synced_doc(fresh_socket.writes)
    assert fresh_doc.get_state() == room.doc.get_state()
    sent = len(fuzzed_socket.writes)
    before = fresh_doc.get_state()
    fresh_doc.get("probe", type=Text).insert(0, "still answering")
    update = protocol.sync_update(fresh_doc.get_update(before))
    room.receive(fresh, decode_message(update))
    assert str(room.doc.get("probe", type=Text)) == "still answering"
    assert update in _messages(fuzzed_socket.writes[sent:])
    room.leave(fresh)
    room.leave(fuzzed)


def _messages(writes: list[bytes]) -> list[bytes]:
    """The messages in a socket's writes (each write one or more unmasked binary frames)."""
    messages = []
    for wire in writes:
        at = 0
        while at < len(wire):
            size, at = wire[at + 1], at + 2
            if size == 126:
                size, at = int.from_bytes(wire[at : at + 2], "big"), at + 2
            elif size == 127:
                size, at = int.from_bytes(wire[at : at + 8], "big"), at + 8
            messages.append(wire[at : at + size])
            at += size
    return messages


def _synced_doc(writes: list[bytes]) -> Doc:
    """A new document with the sync step 2 found in ``writes`` applied (exactly one)."""
    answers = [
        message
        for message in map(decode_message, _messages(writes))
        if isinstance(message, SyncStep2)
    ]
    assert len(answers) == 1
    doc: Doc = Doc()
    doc.apply_update(answers[0].update)
    return doc
