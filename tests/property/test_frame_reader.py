"""FrameReader and websockets together read any client stream as websockets alone would."""

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from pairpilot.web.frames import GATHER_LIMIT, FrameReader

MAX_SIZE = 4 * GATHER_LIMIT


def _message_frames(payload: bytes, pieces: int) -> list[Frame]:
    """One binary message as ``pieces`` frames (a fragmented message when more than one)."""
    if pieces == 1:
        return [Frame(Opcode.BINARY, payload)]
    cut = [len(payload) * i // pieces for i in range(pieces + 1)]
    frames = [Frame(Opcode.CONT, payload[a:b], fin=False) for a, b in pairwise(cut)]
    frames[0] = Frame(Opcode.BINARY, frames[0].data, fin=False)
    frames[-1] = Frame(Opcode.CONT, frames[-1].data, fin=True)
    return frames


def _payloads():
    small = st.binary(min_size=0, max_size=300)
    large = st.integers(GATHER_LIMIT - 16, GATHER_LIMIT + 300).map(lambda n: bytes([n % 251]) * n)
    return st.one_of(small, small, small, large)


_stream = st.lists(
    st.tuples(_payloads(), st.sampled_from([1, 1, 1, 2, 3]), st.booleans()), min_size=1, max_size=12
)


def _read(stream: bytes, cuts: list[int]) -> list[bytes]:
    """Messages read from ``stream`` delivered in pieces cut at ``cuts``."""
    wire = Protocol(Side.SERVER, max_size=MAX_SIZE)
    reader = FrameReader(MAX_SIZE)
    messages: list[bytes] = []
    fragments: list[bytes] = []
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in pairwise(bounds):
        for message, raw in reader.feed(stream[a:b]):
            if message is not None:
                messages.append(message)
                continue
            wire.receive_data(bytes(raw))
            for event in wire.events_received():
                if event.opcode in (Opcode.BINARY, Opcode.CONT):
                    fragments.append(event.data)
                    if event.fin:
                        messages.append(b"".join(fragments))
                        fragments = []
    assert wire.parser_exc is None
    return messages


@settings(max_examples=300, deadline=None)
@given(_stream, st.data())
def test_any_split_of_any_stream_gives_every_message_in_order(messages, data):
    stream = b""
    for payload, pieces, ping_before in messages:
        if ping_before:
            stream += Frame(Opcode.PING, b"hi").serialize(mask=True)
        for frame in _message_frames(payload, pieces):
            stream += frame.serialize(mask=True)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    assert _read(stream, cuts) == [payload for payload, _, _ in messages]


def test_a_frame_fed_byte_by_byte_is_read_whole():
    stream = Frame(Opcode.BINARY, b"\x00\x02\x05hello").serialize(mask=True)
    assert _read(stream, list(range(len(stream)))) == [b"\x00\x02\x05hello"]


def test_an_unmasked_frame_goes_to_websockets_with_everything_after_it():
    reader = FrameReader(MAX_SIZE)
    unmasked = Frame(Opcode.BINARY, b"x").serialize(mask=False)
    then = Frame(Opcode.BINARY, b"y").serialize(mask=True)
    assert [(m, bytes(r)) for m, r in reader.feed(unmasked + then)] == [(None, unmasked + then)]
    assert reader.feed(then) == [(None, then)]


def test_a_frame_over_the_limit_goes_to_websockets_before_its_payload_arrives():
    reader = FrameReader(1024)
    header = Frame(Opcode.BINARY, b"x" * 4096).serialize(mask=True)[:8]
    assert [(m, bytes(r)) for m, r in reader.feed(header)] == [(None, header)]


def test_a_huge_announced_length_is_not_gathered():
    reader = FrameReader(MAX_SIZE)
    header = bytes([0x82, 0x80 | 127]) + (2**62).to_bytes(8, "big") + b"mask"
    assert reader.feed(header[:3]) == []
    assert [(m, bytes(r)) for m, r in reader.feed(header[3:])] == [(None, header)]


def test_a_whole_frame_inside_a_fragmented_message_goes_to_websockets():
    # It breaks the protocol: websockets must see it, and fail the connection with 1002.
    reader = FrameReader(MAX_SIZE)
    start = Frame(Opcode.BINARY, b"a", fin=False).serialize(mask=True)
    whole = Frame(Opcode.BINARY, b"b").serialize(mask=True)
    assert [m for m, _ in reader.feed(start + whole)] == [None, None]


def test_a_large_frame_in_pieces_is_passed_on_as_it_arrives():
    reader = FrameReader(MAX_SIZE)
    stream = Frame(Opcode.BINARY, b"z" * (GATHER_LIMIT + 1)).serialize(mask=True)
    first = reader.feed(stream[:1000])
    assert [(m, bytes(r)) for m, r in first] == [(None, stream[:1000])]
