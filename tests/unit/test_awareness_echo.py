"""Echoes of relayed presence are dropped on sight, and nothing that is news is dropped."""

import json

import pytest
from pycrdt import Awareness, Doc
from tests.support import joined_editors, local_room

from pairpilot.sync import protocol
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import RELAYED_AWARENESS_KEPT, Room


def _presence(name: str) -> tuple[int, bytes]:
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": name}})
    update = awareness.encode_awareness_update([awareness.client_id])
    return awareness.client_id, protocol.awareness(update)


def _unreadable(*_: object) -> bool:
    raise AssertionError("an echo was read")


def test_an_echo_of_a_relayed_frame_is_dropped_without_being_read(
    monkeypatch: pytest.MonkeyPatch,
):
    room = local_room()
    (ada, ada_socket), (bob, bob_socket) = joined_editors(room, 2)
    client, frame = _presence("Ada")
    room.receive(ada, decode_message(frame))
    assert client in room.awareness.states
    writes = len(ada_socket.writes), len(bob_socket.writes)
    monkeypatch.setattr(Room, "_apply_awareness", _unreadable)
    room.receive(bob, decode_message(frame))  # what a stock client sends back
    assert (len(ada_socket.writes), len(bob_socket.writes)) == writes


def test_a_renewal_after_the_echo_is_still_news():
    room = local_room()
    (ada, _), (bob, bob_socket) = joined_editors(room, 2)
    _, first = _presence("Ada")
    room.receive(ada, decode_message(first))
    room.receive(bob, decode_message(first))
    before = len(bob_socket.writes)
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": "Ada"}})
    awareness.set_local_state({"user": {"name": "Ada", "cursor": 3}})
    renewal = protocol.awareness(awareness.encode_awareness_update([awareness.client_id]))
    room.receive(ada, decode_message(renewal))
    assert len(bob_socket.writes) == before + 1


def test_a_frame_seen_before_a_leave_does_not_bring_the_presence_back():
    room = local_room()
    (ada, _), (bob, _) = joined_editors(room, 2)
    client, frame = _presence("Ada")
    room.receive(ada, decode_message(frame))
    room.leave(ada)
    assert client not in room.awareness.states
    room.receive(bob, decode_message(frame))  # a late echo: same clock, not newer
    assert client not in room.awareness.states


def test_only_the_last_frames_are_remembered_and_older_ones_take_the_full_path():
    room = local_room()
    [(session, socket)] = joined_editors(room, 1)
    awareness = Awareness(Doc())  # one page renewing its presence (a socket owns its ids)
    frames = []
    for i in range(RELAYED_AWARENESS_KEPT + 1):
        awareness.set_local_state({"user": {"name": f"user{i}"}})
        frames.append(protocol.awareness(awareness.encode_awareness_update([awareness.client_id])))
    for frame in frames:
        room.receive(session, decode_message(frame))
    before = len(socket.writes)
    room.receive(session, decode_message(frames[0]))  # forgotten, read again: not news
    room.receive(session, decode_message(frames[-1]))  # remembered: dropped on sight
    assert len(socket.writes) == before
    states = {json.dumps(state, sort_keys=True) for state in room.awareness.states.values()}
    assert states == {json.dumps({"user": {"name": f"user{RELAYED_AWARENESS_KEPT}"}})}
