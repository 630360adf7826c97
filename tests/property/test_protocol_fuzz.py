import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc

from pairpilot.access import Grant
from pairpilot.bus import LocalBus
from pairpilot.errors import ProtocolError
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import Room
from pairpilot.sync.session import Session, TokenBucket


class NullSocket:
    def send_frame(self, wire: bytes) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


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
    room = Room("fuzz", Doc(), bus=LocalBus(), on_update=lambda *_: None, max_awareness_bytes=1024)
    session = Session(
        NullSocket(),
        room_id="fuzz",
        grant=Grant(user_id="u", can_write=True),
        rate=TokenBucket(1e9, 1e9),
    )
    room.join(session)
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            room.receive(session, decode_message(frame))
    # The room still answers a sync step 1 after whatever it was fed.
    room.receive(session, decode_message(b"\x00\x00\x01\x00"))
    room.leave(session)
