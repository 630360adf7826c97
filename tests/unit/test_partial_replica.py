"""A replica that dropped updates another process was to write writes the whole document next."""

from pycrdt import Doc, Text
from tests.support import RecordingSocket, editor, local_room

from pairpilot.sync import protocol
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import Room
from pairpilot.sync.session import Session


def _typed(room: Room, session: Session, doc: Doc, text: str) -> None:
    before = doc.get_state()
    doc.get("code", type=Text).insert(len(str(doc.get("code", type=Text))), text)
    room.receive(session, decode_message(protocol.sync_update(doc.get_update(before))))


def _text(update: bytes) -> str:
    doc: Doc = Doc()
    doc.apply_update(update)
    return str(doc.get("code", type=Text))


def test_after_dropping_updates_the_next_write_is_the_whole_document():
    room = local_room(on_update=lambda room, update: room.pending.append(update))
    session = editor(RecordingSocket())
    room.join(session)
    client: Doc = Doc()
    _typed(room, session, client, "dropped ")  # another process's lease: not written here
    room.drop_pending()
    _typed(room, session, client, "kept")  # then this process writes (a Redis outage, say)
    updates, state_vector, _ = room.take_pending()
    # The state vector the "saved" message will carry covers the dropped edit: so must the write.
    assert state_vector == room.doc.get_state()
    assert [_text(update) for update in updates] == ["dropped kept"]
    # Once written in full, the next writes are the new updates alone again.
    _typed(room, session, client, "!")
    updates, _, _ = room.take_pending()
    assert len(updates) == 1
    assert updates[0] != room.doc.get_update()  # the keystroke's update, not the document
