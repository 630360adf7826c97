"""Pure encode/decode of y-websocket frames (lib0 varint framing); no I/O here.

Incoming frames are decoded strictly: truncated varints, lengths past the end of the frame,
trailing bytes and unknown message types raise ProtocolError, so one bad peer can be closed
without touching the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pycrdt import (
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    write_var_uint,
)

from pairpilot.errors import ProtocolError

EMPTY_UPDATE = b"\x00\x00"
# The auth message's sub-types. y-protocols' readAuthMessage acts on 0 only, so stock clients
# read a "saved" message and ignore it without an error.
AUTH_PERMISSION_DENIED = 0
AUTH_SAVED = 1
AUTH_TOKEN_EXPIRING = 2  # server -> client: send a new token before the old one expires
AUTH_TOKEN = 3  # client -> server: a new token for the same user
AUTH_COMMENTS = 4  # server -> client: a room's comments changed (JSON; stock clients ignore it)


class MessageType(IntEnum):
    """Top-level y-websocket message types."""

    SYNC = YMessageType.SYNC
    AWARENESS = YMessageType.AWARENESS
    AUTH = 2
    QUERY_AWARENESS = 3


COMMENTS_PREFIX = bytes([MessageType.AUTH, AUTH_COMMENTS])


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


@dataclass(frozen=True, slots=True)
class TokenRenewal:
    """A peer presents a new token for its open connection (PairPilot's client only)."""

    token: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | TokenRenewal


def _varuint(data: bytes, pos: int) -> tuple[int, int]:
    """The lib0 unsigned varint at ``pos``, and the position after it."""
    value = shift = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varint too long")
    raise ProtocolError("truncated varint")


def _payload(data: bytes, pos: int) -> tuple[bytes, int]:
    """The length-prefixed byte string at ``pos``, and the position after it."""
    if pos >= len(data):
        raise ProtocolError("missing payload")
    size, pos = _varuint(data, pos)
    end = pos + size
    if end > len(data):
        raise ProtocolError("payload length past the end of the frame")
    return data[pos:end], end


def _token_renewal(frame: bytes, pos: int) -> tuple[TokenRenewal, int]:
    """The only auth message a client may send: a new token."""
    sub, pos = _varuint(frame, pos)
    if sub != AUTH_TOKEN:
        raise ProtocolError(f"unknown auth message type {sub} from a client")
    payload, pos = _payload(frame, pos)
    try:
        return TokenRenewal(payload.decode()), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("the token is not UTF-8") from exc


def decode_message(frame: bytes) -> Message:
    """Decode one incoming WebSocket frame, or raise ProtocolError.

    Hand-written over plain indexes: it runs for every frame, and pycrdt's ``Decoder`` is a
    Python class whose reads cost more than the rest of a relay.
    """
    kind, pos = _varuint(frame, 0)
    message: Message
    if kind == MessageType.SYNC:
        sub, pos = _varuint(frame, pos)
        payload, pos = _payload(frame, pos)
        if sub == YSyncMessageType.SYNC_STEP1:
            message = SyncStep1(payload)
        elif sub == YSyncMessageType.SYNC_STEP2:
            message = SyncStep2(payload)
        elif sub == YSyncMessageType.SYNC_UPDATE:
            message = SyncUpdate(payload, frame)
        else:
            raise ProtocolError(f"unknown sync message type {sub}")
    elif kind == MessageType.AWARENESS:
        payload, pos = _payload(frame, pos)
        message = AwarenessUpdate(payload, frame)
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MessageType.AUTH:
        message, pos = _token_renewal(frame, pos)
    else:
        raise ProtocolError(f"unknown message type {kind}")
    if pos != len(frame):
        raise ProtocolError("trailing bytes after the message")
    return message


def awareness_clocks(update: bytes) -> list[tuple[int, int, bool]]:
    """``(client id, clock, has a state)`` of each entry of an awareness update.

    Reads no JSON: enough to tell whether an update is news before paying for applying it.
    """
    count, pos = _varuint(update, 0)
    entries = []
    for _ in range(count):
        client, pos = _varuint(update, pos)
        clock, pos = _varuint(update, pos)
        try:
            state, pos = _payload(update, pos)
        except ProtocolError as exc:
            raise ProtocolError("awareness state past the end of the update") from exc
        entries.append((client, clock, state not in (b"", b"null")))
    if pos != len(update):
        raise ProtocolError("trailing bytes after the awareness update")
    return entries


def _message(prefix: bytes, payload: bytes) -> bytes:
    """``prefix``, then ``payload`` with its lib0 length: the frame in one copy of ``payload``.

    pycrdt's ``create_update_message`` and ``prefix + write_message(payload)`` copy it twice or
    more: 6-12 ms for an 8 MB upload's update on the event loop, against about 1 ms here.
    """
    return b"".join((prefix, write_var_uint(len(payload)), payload))


def sync_step1(state_vector: bytes) -> bytes:
    """Encode a sync step 1 carrying the server's state vector."""
    return _message(bytes([MessageType.SYNC, YSyncMessageType.SYNC_STEP1]), state_vector)


def sync_step2(update: bytes) -> bytes:
    """Encode a sync step 2 carrying what the peer lacked."""
    return _message(bytes([MessageType.SYNC, YSyncMessageType.SYNC_STEP2]), update)


def sync_update(update: bytes) -> bytes:
    """Encode a live document update."""
    return _message(bytes([MessageType.SYNC, YSyncMessageType.SYNC_UPDATE]), update)


def awareness(update: bytes) -> bytes:
    """Encode an awareness message around an encoded awareness update."""
    return create_awareness_message(update)


def permission_denied(reason: str) -> bytes:
    """Encode the auth message that tells a peer its write was refused."""
    # pycrdt's write_var_string counts characters, not bytes; lib0 counts bytes.
    return _message(bytes([MessageType.AUTH, AUTH_PERMISSION_DENIED]), reason.encode())


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    """A Yjs state vector (``Y.encodeStateVector``'s format) as ``{client id: clock}``."""
    count, pos = _varuint(state_vector, 0)
    clocks: dict[int, int] = {}
    for _ in range(count):
        client, pos = _varuint(state_vector, pos)
        clocks[client], pos = _varuint(state_vector, pos)
    return clocks


def encode_state_vector(clocks: dict[int, int]) -> bytes:
    """``{client id: clock}`` in ``Y.encodeStateVector``'s format."""
    parts = [write_var_uint(len(clocks))]
    for client, clock in clocks.items():
        parts += (write_var_uint(client), write_var_uint(clock))
    return b"".join(parts)


def saved(clocks: dict[int, int], clients: set[int]) -> bytes:
    """Encode the "saved" auth message: the stored state vector, for ``clients`` when given.

    A peer's edits are stored when the clock of its client id here reaches its own.
    """
    if clients:
        clocks = {client: clocks[client] for client in clients if client in clocks}
    return _message(bytes([MessageType.AUTH, AUTH_SAVED]), encode_state_vector(clocks))


def decode_saved(frame: bytes) -> dict[int, int] | None:
    """The clocks of a "saved" message, or None when ``frame`` is another message."""
    if frame[:2] != bytes([MessageType.AUTH, AUTH_SAVED]):
        return None
    payload, pos = _payload(frame, 2)
    if pos != len(frame):
        raise ProtocolError("trailing bytes after the saved message")
    return decode_state_vector(payload)


def token_expiring(reason: str) -> bytes:
    """Encode the auth message asking a peer for a new token (stock clients ignore it)."""
    return _message(bytes([MessageType.AUTH, AUTH_TOKEN_EXPIRING]), reason.encode())


def token_renewal(token: str) -> bytes:
    """Encode a client's new token (what PairPilot's client sends)."""
    return _message(bytes([MessageType.AUTH, AUTH_TOKEN]), token.encode())


def comments_changed(change: bytes) -> bytes:
    """Encode the auth message telling the room's pages a comment changed (``change``: JSON)."""
    return _message(COMMENTS_PREFIX, change)


def is_comments_changed(frame: bytes) -> bool:
    """Whether ``frame`` is a comments message (relayed by the bus, never sent by a client)."""
    return frame.startswith(COMMENTS_PREFIX)
