import pytest
from pycrdt import (
    Awareness,
    Doc,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    write_message,
)

from pairpilot.errors import ProtocolError
from pairpilot.sync import protocol
from pairpilot.sync.protocol import (
    AwarenessUpdate,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
)


def _doc_with(text: str) -> Doc:
    doc: Doc = Doc()
    doc["f"] = Text(text)
    return doc


def test_sync_step1_from_pycrdt_decodes_to_its_state_vector():
    doc = _doc_with("hello")
    message = decode_message(create_sync_message(doc))
    assert message == SyncStep1(doc.get_state())


def test_step2_and_update_carry_the_update_and_the_update_keeps_its_frame():
    update = _doc_with("x").get_update()
    assert decode_message(protocol.sync_step2(update)) == SyncStep2(update)
    frame = protocol.sync_update(update)
    assert decode_message(frame) == SyncUpdate(update, frame)


def test_an_update_longer_than_one_length_byte_round_trips():
    update = _doc_with("y" * 20000).get_update()  # its length takes a three-byte varint
    frame = protocol.sync_update(update)
    assert decode_message(frame) == SyncUpdate(update, frame)


def test_awareness_frame_round_trips():
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": "Ada"}})
    update = awareness.encode_awareness_update([awareness.client_id])
    frame = create_awareness_message(update)
    assert decode_message(frame) == AwarenessUpdate(update, frame)


def test_query_awareness_is_a_single_byte():
    assert decode_message(b"\x03") == QueryAwareness()


def test_permission_denied_counts_utf8_bytes():
    frame = protocol.permission_denied("lecture seule é")
    assert frame[:2] == b"\x02\x00"
    assert frame[2] == len("lecture seule é".encode())
    assert frame[3:].decode() == "lecture seule é"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "truncated varint"),
        (b"\x80", "truncated varint"),
        (b"\x00", "truncated varint"),
        (b"\x00\x00", "missing payload"),
        (b"\x00\x02\x05ab", "past the end"),
        (b"\x00\x07\x00", "unknown sync message type"),
        (b"\x09", "unknown message type"),
        (b"\x01", "missing payload"),
        (b"\x03\x00", "trailing bytes"),
        (b"\x00\x02\x00\x00", "trailing bytes"),
        (b"\xff" * 10 + b"\x01", "varint too long"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes, reason: str):
    with pytest.raises(ProtocolError, match=reason):
        decode_message(frame)


def test_awareness_clocks_reads_ids_clocks_and_presence_without_json():
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": "Ada"}})
    awareness.set_local_state({"user": {"name": "Ada", "cursor": 3}})
    present = awareness.encode_awareness_update([awareness.client_id])
    assert protocol.awareness_clocks(present) == [(awareness.client_id, 2, True)]
    awareness.set_local_state(None)
    gone = awareness.encode_awareness_update([awareness.client_id])
    assert protocol.awareness_clocks(gone) == [(awareness.client_id, 3, False)]


@pytest.mark.parametrize("update", [b"\x01\x05", b"\x01\x05\x01\x09ab", b"\x00\x00"])
def test_awareness_clocks_rejects_truncated_or_trailing_bytes(update: bytes):
    with pytest.raises(ProtocolError):
        protocol.awareness_clocks(update)


def test_a_saved_message_carries_a_state_vector_yjs_can_read():
    clocks = {1: 5, 4_294_967_295: 300, 7: 0}
    frame = protocol.saved(clocks, set())
    assert frame[:2] == bytes([2, 1])
    assert protocol.decode_saved(frame) == clocks
    assert protocol.decode_saved(protocol.saved(clocks, {7, 99})) == {7: 0}


def test_the_saved_state_vector_is_encoded_as_pycrdt_encodes_one():
    doc = Doc()
    doc.get("t", type=Text).insert(0, "abc")
    clocks = protocol.decode_state_vector(doc.get_state())
    assert clocks == {doc.client_id: 3}
    assert protocol.encode_state_vector(clocks) == doc.get_state()


def test_other_messages_are_not_saved_messages():
    assert protocol.decode_saved(protocol.permission_denied("no")) is None
    assert protocol.decode_saved(protocol.sync_step1(b"\x00")) is None


@pytest.mark.parametrize("length", [0, 1, 127, 128, 16_383, 16_384, 2_097_152, 8_300_000])
def test_frames_are_byte_for_byte_pycrdts_at_every_length_size(length: int):
    """The frames are written in one copy of their payload (an 8 MB upload's update took
    pycrdt's helpers 6-12 ms on the loop); they must stay exactly what pycrdt writes."""
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert protocol.sync_update(payload) == create_update_message(payload)
    assert protocol.sync_step2(payload) == bytes([0, 1]) + write_message(payload)
    assert protocol.comments_changed(payload) == protocol.COMMENTS_PREFIX + write_message(payload)
