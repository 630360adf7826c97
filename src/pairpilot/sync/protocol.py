"""Pure encode/decode of y-websocket frames (lib0 varint framing); no I/O here.

Incoming frames are decoded strictly: truncated varints, lengths past the end of the frame,
trailing bytes and unknown message types raise ProtocolError, so one bad peer can be closed
without touching the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pycrdt import (
    Decoder,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_update_message,
    write_message,
)

from pairpilot.errors import ProtocolError

EMPTY_UPDATE = b"\x00\x00"


class MessageType(IntEnum):
    """Top-level y-websocket message types."""

    SYNC = YMessageType.SYNC
    AWARENESS = YMessageType.AWARENESS
    AUTH = 2
    QUERY_AWARENESS = 3


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """A peer's state vector: it asks for everything it lacks."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The answer to a step 1: an update holding what the asker lacked."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """A live document update; ``frame`` is the whole frame, relayed to peers as it is."""

    update: bytes
    frame: bytes


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    """An awareness (presence) update; ``frame`` is relayed to peers as it is."""

    update: bytes
    frame: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """A peer asks for every awareness state."""


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness


class _StrictDecoder(Decoder):
    """pycrdt's decoder with bounds checks: it never reads past the frame."""

    def read_var_uint(self) -> int:
        try:
            return super().read_var_uint()
        except (IndexError, RuntimeError) as exc:
            raise ProtocolError("truncated varint") from exc

    def read_payload(self) -> bytes:
        """Read one length-prefixed byte string, or raise ProtocolError."""
        if self.length <= 0:
            raise ProtocolError("missing payload")
        payload = self.read_message()
        if payload is None or self.length < 0:
            raise ProtocolError("payload length past the end of the frame")
        return payload

    def expect_end(self) -> None:
        """Raise ProtocolError if bytes remain after the message."""
        if self.length != 0:
            raise ProtocolError("trailing bytes after the message")


def decode_message(frame: bytes) -> Message:
    """Decode one incoming WebSocket frame, or raise ProtocolError."""
    decoder = _StrictDecoder(frame)
    kind = decoder.read_var_uint()
    message: Message
    if kind == MessageType.SYNC:
        sub = decoder.read_var_uint()
        payload = decoder.read_payload()
        if sub == YSyncMessageType.SYNC_STEP1:
            message = SyncStep1(payload)
        elif sub == YSyncMessageType.SYNC_STEP2:
            message = SyncStep2(payload)
        elif sub == YSyncMessageType.SYNC_UPDATE:
            message = SyncUpdate(payload, frame)
        else:
            raise ProtocolError(f"unknown sync message type {sub}")
    elif kind == MessageType.AWARENESS:
        message = AwarenessUpdate(decoder.read_payload(), frame)
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        raise ProtocolError(f"unknown message type {kind}")
    decoder.expect_end()
    return message


def awareness_clocks(update: bytes) -> list[tuple[int, int, bool]]:
    """``(client id, clock, has a state)`` of each entry of an awareness update.

    Reads no JSON: enough to tell whether an update is news before paying for applying it.
    """
    decoder = _StrictDecoder(update)
    entries = []
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        state = decoder.read_message()
        if state is None or decoder.length < 0:
            raise ProtocolError("awareness state past the end of the update")
        entries.append((client, clock, state not in (b"", b"null")))
    decoder.expect_end()
    return entries


def sync_step1(state_vector: bytes) -> bytes:
    """Encode a sync step 1 carrying the server's state vector."""
    return bytes([MessageType.SYNC, YSyncMessageType.SYNC_STEP1]) + write_message(state_vector)


def sync_step2(update: bytes) -> bytes:
    """Encode a sync step 2 carrying what the peer lacked."""
    return bytes([MessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)


def sync_update(update: bytes) -> bytes:
    """Encode a live document update."""
    return create_update_message(update)


def awareness(update: bytes) -> bytes:
    """Encode an awareness message around an encoded awareness update."""
    return create_awareness_message(update)


def permission_denied(reason: str) -> bytes:
    """Encode the auth message that tells a peer its write was refused."""
    # pycrdt's write_var_string counts characters, not bytes; lib0 counts bytes.
    return bytes([MessageType.AUTH, 0]) + write_message(reason.encode())
