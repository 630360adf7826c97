"""The comments message: server to client only, relayed between processes as it is."""

import pytest
from tests.support import RecordingSocket, editor, local_room

from pairpilot.errors import ProtocolError
from pairpilot.sync.protocol import comments_changed, decode_message, is_comments_changed


def test_a_client_cannot_send_a_comments_message():
    with pytest.raises(ProtocolError):
        decode_message(comments_changed(b'{"event": "deleted"}'))


def test_a_comments_message_from_another_process_reaches_every_local_socket_unchanged():
    room = local_room()
    socket = RecordingSocket()
    room.join(editor(socket))
    frame = comments_changed(b'{"event": "thread"}')
    assert is_comments_changed(frame)
    room.apply_remote(frame, b"other-process")
    assert any(wire.endswith(frame) for wire in socket.writes)
