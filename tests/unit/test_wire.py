"""The WebSocket frames PairPilot writes itself are the ones websockets would write."""

import pytest
from websockets.frames import Frame, Opcode

from pairpilot.sync.session import encode_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_encode_frame_matches_websockets_at_every_length_boundary(size: int):
    message = bytes(i % 251 for i in range(size))
    assert encode_frame(message) == Frame(Opcode.BINARY, message).serialize(mask=False)
