"""Base64 of whole room states, a piece at a time so the event loop runs in between.

Snapshots are stored and served as base64 (``snapshot_b64``). A full room's state is tens of
megabytes: one ``b64decode`` of a 44 MB stored snapshot held the event loop 154 ms and one
``b64encode`` plus its ASCII decode 82 ms (bench/README.md, "Off the event loop"), a pause in
every room's fan-out at each compaction and load of a big room. In pieces of a few hundred
kilobytes each call is about a millisecond, and the loop serves the other rooms between them.
"""

from __future__ import annotations

import asyncio
import binascii

# Raw bytes per piece when encoding (a multiple of 3: no padding inside the text) and base64
# characters per piece when decoding (a multiple of 4): about 1 ms of work each.
ENCODE_PIECE = 3 * 64 * 1024
DECODE_PIECE = 4 * 64 * 1024


async def b64encode(data: bytes) -> str:
    """``base64.b64encode(data).decode()``, yielding to the loop between pieces."""
    if len(data) <= ENCODE_PIECE:
        return binascii.b2a_base64(data, newline=False).decode("ascii")
    view = memoryview(data)
    pieces: list[str] = []
    for start in range(0, len(data), ENCODE_PIECE):
        piece = binascii.b2a_base64(view[start : start + ENCODE_PIECE], newline=False)
        pieces.append(piece.decode("ascii"))
        await asyncio.sleep(0)
    return "".join(pieces)


async def b64decode(text: str) -> bytes:
    """``base64.b64decode(text)`` of text as stored (no whitespace), yielding between pieces."""
    if len(text) <= DECODE_PIECE:
        return binascii.a2b_base64(text)
    pieces = []
    for start in range(0, len(text), DECODE_PIECE):
        pieces.append(binascii.a2b_base64(text[start : start + DECODE_PIECE]))
        await asyncio.sleep(0)
    return b"".join(pieces)


__all__ = ["b64decode", "b64encode"]
