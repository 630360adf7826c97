import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support import RecordingSocket, editor, local_room

from pairpilot.errors import ProtocolError
from pairpilot.sync.protocol import decode_message


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
    session = editor(RecordingSocket(), "fuzz")
    room.join(session)
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            room.receive(session, decode_message(frame))
    # The room still answers a sync step 1 after whatever it was fed.
    room.receive(session, decode_message(b"\x00\x00\x01\x00"))
    room.leave(session)
