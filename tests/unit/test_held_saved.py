"""A "saved" message rides with the next frame a socket is sent, or goes alone shortly after."""

import asyncio

import pytest
from pycrdt import Doc, Text
from tests.support import RecordingSocket, editor, joined_editors, local_room

from pairpilot.sync import protocol
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.session import SAVED_HOLD_S, SavedHolds, encode_frame

pytestmark = pytest.mark.anyio


def test_a_held_message_goes_out_in_the_same_write_as_the_next_frame():
    socket = RecordingSocket()
    session = editor(socket)
    saved = protocol.saved({1: 3}, set())
    session.hold(saved)
    assert socket.writes == []
    update = protocol.sync_update(b"\x00\x00")
    session.send_encoded(encode_frame(update))
    assert socket.writes == [encode_frame(saved) + encode_frame(update)]
    session.release()  # nothing is left to send
    assert len(socket.writes) == 1


def test_a_newer_held_message_replaces_the_older_one():
    socket = RecordingSocket()
    session = editor(socket)
    session.hold(protocol.saved({1: 3}, set()))
    session.hold(protocol.saved({1: 5}, set()))
    session.release()
    assert socket.writes == [encode_frame(protocol.saved({1: 5}, set()))]


async def test_a_saved_message_with_nothing_to_ride_with_is_sent_after_the_hold():
    room = local_room()
    (alice, writer), _ = joined_editors(room, 2)
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, "hi")
    room.receive(alice, decode_message(protocol.sync_update(doc.get_update())))
    before = len(writer.writes)
    room.mark_saved(doc.get_state(), [alice])  # what the flusher does after the write
    assert len(writer.writes) == before  # held, not sent yet
    await asyncio.sleep(SAVED_HOLD_S * 2)
    assert len(writer.writes) == before + 1
    assert protocol.decode_saved(writer.writes[-1][2:]) is not None
    room.close()


async def test_a_saved_message_rides_with_an_update_relayed_to_its_socket():
    room = local_room()
    (alice, writer), (bob, _) = joined_editors(room, 2)
    room.mark_saved(Doc().get_state(), [alice])
    before = len(writer.writes)
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, "from bob")
    update = protocol.sync_update(doc.get_update())
    room.receive(bob, decode_message(update))
    assert len(writer.writes) == before + 1  # one write: the saved message, then the update
    assert writer.writes[-1].endswith(encode_frame(update))
    assert protocol.decode_saved(writer.writes[-1][2 : -len(encode_frame(update))]) is not None
    await asyncio.sleep(SAVED_HOLD_S * 2)
    assert len(writer.writes) == before + 1  # nothing more: it went with the update
    room.close()


async def test_each_held_message_waits_its_own_hold_not_the_rooms_first():
    # Timers fire in deadline order, so the checks below hold however late the loop runs.
    room = local_room()
    (alice, alice_socket), (bob, bob_socket) = joined_editors(room, 2)
    alice_before, bob_before = len(alice_socket.writes), len(bob_socket.writes)
    room.mark_saved(Doc().get_state(), [alice])
    await asyncio.sleep(SAVED_HOLD_S * 0.6)
    room.mark_saved(Doc().get_state(), [bob])  # held 0.6 holds after alice's
    await asyncio.sleep(SAVED_HOLD_S * 0.6)
    assert len(alice_socket.writes) == alice_before + 1  # alice's hold is over
    assert len(bob_socket.writes) == bob_before  # bob's is not: not sent early
    await asyncio.sleep(SAVED_HOLD_S * 0.8)
    assert len(bob_socket.writes) == bob_before + 1
    assert protocol.decode_saved(bob_socket.writes[-1][2:]) is not None
    room.close()


async def test_closing_the_holds_sends_what_they_held():
    socket = RecordingSocket()
    session = editor(socket)
    holds = SavedHolds()
    saved = protocol.saved({1: 3}, set())
    holds.hold(session, saved)
    assert socket.writes == []
    holds.close()
    assert socket.writes == [encode_frame(saved)]
    await asyncio.sleep(SAVED_HOLD_S * 2)  # and the timer is gone: nothing twice
    assert socket.writes == [encode_frame(saved)]
