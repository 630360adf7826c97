"""Coverage-guided fuzz targets (atheris, libFuzzer) for the wire code; run by test_coverage_fuzz.

Usage: python atheris_targets.py <frames|protocol> [libFuzzer flags] [corpus dirs]
(it writes ``<target>.dict``, its libFuzzer dictionary, to the working directory)

- ``frames``: a byte stream, cut into pieces, read by ``FrameReader`` + websockets the way
  ``web/ws.py`` reads it must give exactly what websockets alone reads (the same messages, the
  same failure and close code), and the reader never raises.
- ``protocol``: ``decode_message``, ``awareness_clocks``, ``decode_state_vector`` and
  ``decode_saved`` raise nothing but ProtocolError on any input, and what they accept holds
  together (a relayed frame is the input itself).

Only PairPilot's modules are instrumented: libFuzzer's coverage then measures our branches.
"""

import contextlib
import sys
from itertools import pairwise
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pairpilot.web.frames", "pairpilot.sync.protocol"]):
    from pairpilot.errors import ProtocolError
    from pairpilot.sync import protocol
    from pairpilot.web import frames as frame_module

from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State

# Small limits, so that short inputs reach every branch: frames gathered from pieces and frames
# too large to gather (GATHER_LIMIT, 64 KiB in production), and frames over the message limit.
frame_module.GATHER_LIMIT = 64
MAX_SIZE = 200


def _collect(wire: Protocol, messages: list[tuple[str, bytes]], fragments: list[bytes]) -> None:
    for event in wire.events_received():
        if event.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
            fragments.append(event.data)
            if event.fin:
                messages.append(("ws", b"".join(fragments)))
                fragments.clear()


def _outcome(wire: Protocol) -> tuple[str, int | None]:
    sent = wire.close_sent
    return type(wire.parser_exc).__name__, sent.code if sent is not None else None


def _websockets_alone(pieces: list[bytes]) -> tuple[list[bytes], tuple[str, int | None]]:
    wire = Protocol(Side.SERVER, max_size=MAX_SIZE)
    messages: list[tuple[str, bytes]] = []
    fragments: list[bytes] = []
    for piece in pieces:
        wire.receive_data(piece)
        _collect(wire, messages, fragments)
    return [data for _, data in messages], _outcome(wire)


def _with_reader(pieces: list[bytes]) -> tuple[list[bytes], tuple[str, int | None]]:
    """As ``CollabConnection.data_received`` does: fast messages, the rest to websockets."""
    wire = Protocol(Side.SERVER, max_size=MAX_SIZE)
    reader = frame_module.FrameReader(MAX_SIZE)
    messages: list[tuple[str, bytes]] = []
    fragments: list[bytes] = []
    for piece in pieces:
        if wire.state is not State.OPEN:
            wire.receive_data(reader.stop() + piece)
            _collect(wire, messages, fragments)
            continue
        for message, raw in reader.feed(piece):
            assert bytes(raw), "an empty piece"
            if message is not None and wire.state is State.OPEN:
                messages.append(("fast", bytes(message)))
            else:
                wire.receive_data(bytes(raw))
                _collect(wire, messages, fragments)
    # The reader holds back an incomplete header or small frame until more bytes come; at the
    # end of the stream, websockets must judge those bytes as it would have alone.
    wire.receive_data(reader.stop())
    _collect(wire, messages, fragments)
    return [data for _, data in messages], _outcome(wire)


def frames(data: bytes) -> None:
    """FrameReader + websockets read any stream, cut anywhere, as websockets alone does.

    The first byte says how many cut points (0-6) follow, one byte each; the rest is the stream.
    """
    count = data[0] % 7 if data else 0
    cuts, stream = data[1 : 1 + count], data[1 + count :]
    bounds = sorted({0, len(stream), *(cut for cut in cuts if cut < len(stream))})
    pieces = [stream[a:b] for a, b in pairwise(bounds)]
    assert _with_reader(pieces) == _websockets_alone(pieces)


def _decoded(frame: bytes) -> None:
    message = protocol.decode_message(frame)
    if isinstance(message, protocol.SyncUpdate | protocol.AwarenessUpdate):
        assert message.frame == frame  # relayed to peers as it came
    if isinstance(message, protocol.AwarenessUpdate):
        protocol.awareness_clocks(message.update)
    if isinstance(message, protocol.SyncStep1):
        protocol.decode_state_vector(message.state_vector)


def decoders(data: bytes) -> None:
    """Every decoder raises nothing but ProtocolError, whatever the bytes."""
    for decode in (
        _decoded,
        protocol.awareness_clocks,
        protocol.decode_state_vector,
        protocol.decode_saved,
    ):
        with contextlib.suppress(ProtocolError):
            decode(data)


def _frame_tokens() -> list[bytes]:
    """Frame heads around every length the reader decides on: mutation alone rarely hits one."""
    tokens = [bytes([first, 0x80]) for first in (0x82, 0x02, 0x80, 0x00, 0x81, 0x89, 0x88)]
    gather = frame_module.GATHER_LIMIT
    for length in {125, 126, 65535, 65536, gather - 1, gather, gather + 1, MAX_SIZE, MAX_SIZE + 1}:
        if length < 126:
            tokens.append(bytes([0x82, 0x80 | length]))
        elif length < 65536:
            tokens.append(bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big"))
        else:
            tokens.append(bytes([0x82, 0x80 | 127]) + length.to_bytes(8, "big"))
    return tokens


def _protocol_tokens() -> list[bytes]:
    """Message-type prefixes and varints at their edges (one byte, two, too long)."""
    prefixes = [b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x02\x01", b"\x02\x03", b"\x03"]
    return [*prefixes, b"\x7f", b"\x80\x01", b"\xff" * 9 + b"\x01", b"null"]


TARGETS = {"frames": (frames, _frame_tokens), "protocol": (decoders, _protocol_tokens)}


def _dictionary(name: str, tokens: list[bytes]) -> str:
    """A libFuzzer dictionary of ``tokens`` in the working directory (where crashes go too)."""
    path = Path(f"{name}.dict")
    escaped = ("".join(f"\\x{byte:02x}" for byte in token) for token in tokens)
    path.write_text("".join(f'"{token}"\n' for token in escaped))
    return str(path)


if __name__ == "__main__":
    name = sys.argv.pop(1)
    target, tokens = TARGETS[name]
    atheris.Setup([*sys.argv, f"-dict={_dictionary(name, tokens())}"], target)
    atheris.Fuzz()
