"""The common case of reading a client's WebSocket frames, without websockets' general parser.

Nearly every frame a y-websocket client sends is small, whole, masked, binary and final: one
keystroke's update, or an awareness renewal (and its echoes, one per member of the room).
websockets' sans-I/O reader takes each frame apart through a chain of generators, which costs
more Python per frame than everything PairPilot then does with the message. ``FrameReader``
unmasks such frames itself and hands every other byte, frame-aligned, to websockets: control
frames, text, fragments, large frames, and anything malformed, which websockets then judges
with its own close codes (1002, 1009). websockets therefore always sees whole frames or the
rest of the stream, so its state stays consistent with what the peer sent.
"""

from __future__ import annotations

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

FAST_HEAD = 0x82  # FIN, no reserved bits, binary
MASKED = 0x80
# A fast frame that arrives in pieces is gathered here; a larger one goes to websockets.
GATHER_LIMIT = 64 * 1024

Piece = tuple[bytes | None, bytes | memoryview]
"""``(message, raw)``: a fast frame's unmasked payload and its bytes, or ``(None, bytes)``
for websockets to parse."""


def frame_head(data: bytes | bytearray, offset: int) -> tuple[int, int, int] | None:
    """``(first byte, header length, payload length)`` of the frame at ``offset``.

    None while the header is incomplete. The header length includes the mask, if any.
    """
    available = len(data) - offset
    if available < 2:
        return None
    second = data[offset + 1]
    length = second & 0x7F
    extended = 0 if length < 126 else 2 if length == 126 else 8
    header = 2 + extended + (4 if second & MASKED else 0)
    if available < header:
        return None
    if extended:
        length = int.from_bytes(data[offset + 2 : offset + 2 + extended], "big")
    return data[offset], header, length


def _gather_until(head: tuple[int, int, int]) -> int:
    """How many bytes to gather before splitting: a whole fast frame, else just its header."""
    first, header, length = head
    if first == FAST_HEAD and header + length <= GATHER_LIMIT:
        return header + length
    return header


class FrameReader:
    """Splits a client's byte stream into fast messages and frame-aligned bytes for websockets.

    ``max_size`` is the message limit: a frame that announces more goes to websockets, which
    fails the connection with 1009. After ``stop`` every byte goes to websockets.
    """

    __slots__ = ("_continuing", "_gathered", "_max_size", "_owed", "_stopped")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._gathered = bytearray()
        self._owed = 0  # bytes of the current frame that websockets still has to see
        self._continuing = False  # a fragmented message is in progress
        self._stopped = False

    def stop(self) -> bytes:
        """Hand everything over to websockets from now on; returns what was gathered."""
        self._stopped = True
        rest = bytes(self._gathered)
        self._gathered.clear()
        return rest

    def feed(self, data: bytes) -> list[Piece]:
        """The pieces ``data`` completes, in the order the peer sent them."""
        if self._stopped:
            return [(None, data)]
        if self._gathered:
            gathered = self._gathered
            gathered += data
            head = frame_head(gathered, 0)
            if head is None or len(gathered) < _gather_until(head):
                return []  # still incomplete: no copy until the frame is whole
            data = bytes(gathered)
            gathered.clear()
        return self._split(data)

    def _split(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        view = memoryview(data)
        offset, end = 0, len(data)
        while offset < end:
            if self._owed:
                take = min(self._owed, end - offset)
                pieces.append((None, view[offset : offset + take]))
                self._owed -= take
                offset += take
                continue
            head = frame_head(data, offset)
            if head is None:
                self._gathered += view[offset:]
                break
            first, header, length = head
            total = header + length
            masked = data[offset + 1] & MASKED
            if not masked or length > self._max_size:
                # websockets fails the connection (1002, 1009); it reads everything from here.
                self._stopped = True
                pieces.append((None, view[offset:]))
                break
            if first == FAST_HEAD and not self._continuing:
                if end - offset >= total:
                    mask = data[offset + header - 4 : offset + header]
                    message = apply_mask(view[offset + header : offset + total], mask)
                    pieces.append((message, view[offset : offset + total]))
                    offset += total
                    continue
                if total <= GATHER_LIMIT:
                    self._gathered += view[offset:]
                    break
            elif first & 0x0F in (0x0, 0x1, 0x2):  # continuation, text, binary
                self._continuing = not first & 0x80
            self._owed = total
        return pieces
