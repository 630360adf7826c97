"""The collaboration WebSocket, served by PairPilot's own protocol inside uvicorn.

uvicorn parses HTTP; on a WebSocket upgrade it hands the connection to the protocol class it
was configured with (``ws=``, see ``server.make_server``). That class is ``CollabConnection``:
no ASGI, no task and no queue per connection. websockets' sans-I/O ``ServerProtocol`` does
the handshake, the closing handshake and every unusual frame; the small binary frames that
make up nearly all traffic are unmasked by ``frames.FrameReader``. Messages are handled
synchronously as they arrive;
outgoing frames are encoded once per broadcast (``Room.deliver``) and the same bytes are
written to every transport. The transport's own buffer is the send queue: a peer that keeps
its socket full for more than ``send_queue_messages`` frames is dropped (1013). Only the join
(authorise, load the room) runs as a short task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from pairpilot.access.authorizer import check_room_id
from pairpilot.errors import (
    ForbiddenError,
    InvalidRoomIdError,
    NotFoundError,
    PairPilotError,
    ProtocolError,
    RateLimitedError,
    RefusedError,
    RoomDeletedError,
    RoomMovedError,
    SlowConsumerError,
    StorageError,
    UnauthenticatedError,
)
from pairpilot.guardrails import refusal_of
from pairpilot.observability.sentry import report
from pairpilot.observability.tracing import span, tag
from pairpilot.sync.protocol import TokenRenewal, decode_message, token_expiring
from pairpilot.sync.session import Session, TokenBucket, next_session_id
from pairpilot.web.frames import FrameReader

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from pairpilot.access.identity import Identity
    from pairpilot.sync.room import Room
    from pairpilot.web.affinity import RoomAffinity
    from pairpilot.web.services import Services

PREFIX = "/collab/"
log = structlog.get_logger(__name__)
# websockets logs every handshake and close at INFO; PairPilot logs its own lines instead.
_wire_log = logging.getLogger("pairpilot.websockets")
_wire_log.setLevel(logging.WARNING)

CLOSE_CODES: dict[type[PairPilotError], int] = {
    InvalidRoomIdError: 4400,
    ProtocolError: 4400,
    UnauthenticatedError: 4401,
    ForbiddenError: 4403,
    NotFoundError: 4403,
    RateLimitedError: 4429,
    SlowConsumerError: 1013,
    StorageError: 1011,
    RoomDeletedError: 4410,
    RoomMovedError: 4301,  # the reason is the new room id (sync.registry.MOVED_CLOSE)
}
CLOSE_TIMEOUT_S = 1.0
# Once websockets is done with a connection, what the peer still sends is read and dropped
# (see ``_linger``) for at most this long and this many bytes (or 4 messages, if larger).
LINGER_S = 5.0
LINGER_MIN_BYTES = 64 * 1024 * 1024
# How long before its token expires a socket is asked for a new one.
TOKEN_WARNING_S = 60.0
SHUTDOWN_CODE = 1012  # service restart: clients reconnect
# Above this many unsent bytes the transport asks us to pause; frames sent while paused count
# against the peer's allowance (``send_queue_messages``).
WRITE_HIGH_WATER = 256 * 1024


def close_code(error: PairPilotError) -> int:
    """The WebSocket close code for a domain error (1011 for anything unexpected)."""
    if isinstance(error, RefusedError):
        return refusal_of(error).close_code
    for kind in type(error).__mro__:
        if kind in CLOSE_CODES:
            return CLOSE_CODES[kind]
    return 1011


class CollabConnection(asyncio.Protocol):
    """One ``/collab/{roomId}`` WebSocket, from the upgrade request to the closed socket.

    What it does with bad input: a failed handshake gets websockets' 400/426 answer; a path
    outside ``/collab/`` gets 404; a bad token, a stranger, an invalid room id, a malformed or
    text message, an oversized message (1009) and a flood of messages close this socket with
    the code in ``CLOSE_CODES``; none of them touches the room or any other socket.
    """

    __slots__ = (
        "_affinity",
        "_closing",
        "_connections",
        "_expiry",
        "_fragments",
        "_id",
        "_join",
        "_linger_left",
        "_pending",
        "_reader",
        "_replay",
        "_room",
        "_services",
        "_session",
        "_tasks",
        "_timer",
        "_transport",
        "_unsent",
        "_wire",
        "_write_paused",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        services: Services,
        affinity: RoomAffinity | None = None,
        replay: bytes = b"",
    ) -> None:
        del config, app_state, _loop  # uvicorn's signature; PairPilot's state is in services
        self._services = services
        # A connection another worker passed on (``replay``: what it read) is served here.
        self._affinity = None if replay else affinity
        self._replay = replay
        self._connections: set[Any] = server_state.connections
        # uvicorn waits for these before the app's shutdown closes storage.
        self._tasks: set[asyncio.Task[None]] = server_state.tasks
        self._id = next_session_id()
        max_size = services.settings.max_message_bytes
        self._wire = ServerProtocol(max_size=max_size, logger=_wire_log)
        self._reader = FrameReader(max_size)
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._room: Room | None = None
        self._join: asyncio.Task[None] | None = None
        self._pending: list[bytes] | None = None
        self._fragments: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The token's warning and its expiry (close 4401 unless a new token came).
        self._expiry: list[asyncio.TimerHandle] = []
        self._closing = False
        self._linger_left: int | None = None  # bytes still to drop; None until lingering
        self._write_paused = False
        self._unsent = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take over the upgraded connection from uvicorn."""
        transport = cast("asyncio.Transport", transport)  # a stream transport (maybe uvloop's)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._connections.add(self)
        if self._replay:  # before the transport reads: what the peer sent next comes after
            request, self._replay = self._replay, b""
            self.data_received(request)

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer: the upgrade request first, then frames."""
        if self._linger_left is not None:
            self._discard(len(data))
            return
        if self._pending is not None:  # still joining: keep the bytes, stop reading more
            self._pending.append(data)
            self._transport_or_fail().pause_reading()
            return
        if self._session is None:  # the upgrade request, or what follows a refused join
            self._parse(data)
        elif self._closing or self._wire.state is not State.OPEN:
            self._parse(self._reader.stop() + data)  # the closing handshake is websockets' job
        else:
            for message, raw in self._reader.feed(data):
                if message is not None and not self._closing:
                    self._message(message)
                else:
                    self._parse(bytes(raw))

    def _parse(self, data: bytes) -> None:
        """Let websockets read ``data`` (the handshake, and every frame the reader passes on)."""
        if self._linger_left is not None:  # a frame after the one that ended the connection
            self._discard(len(data))
            return
        self._wire.receive_data(data)
        # uvicorn hands over the upgrade request alone and whole, in one call (it keeps nothing
        # that followed it), as does a worker passing the socket on: ``data`` is then every
        # byte read from the socket, and no frame is parsed with the request, before the join.
        for event in self._wire.events_received():
            if isinstance(event, Request):
                self._handshake(event, data)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def pause_writing(self) -> None:
        """The peer's unsent bytes passed the high-water mark."""
        self._write_paused = True
        self._unsent = 0

    def resume_writing(self) -> None:
        """The peer caught up."""
        self._write_paused = False

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - not needed
        """The socket is gone: leave the room (once) and stop any timer."""
        self._closing = True
        self._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._unwatch_token()
        self._leave()

    # uvicorn's server calls this on every connection when it stops

    def shutdown(self) -> None:
        """The server is stopping: tell the peer to come back later."""
        if self._wire.state is State.OPEN:
            self._close(SHUTDOWN_CODE, "server restarting")
        elif self._transport is not None:
            self._transport.close()

    # Socket (what a Session writes to)

    def send_frame(self, wire: bytes) -> None:
        """Write an encoded frame; a peer that stays backed up is dropped (1013)."""
        if self._closing:
            return
        if self._write_paused:
            self._unsent += 1
            if self._unsent > self._services.settings.send_queue_messages:
                # Called from inside a broadcast: the room's session map must not change now.
                self._closing = True
                asyncio.get_running_loop().call_soon(self._drop_slow)
                return
        self._transport_or_fail().write(wire)

    # the WebSocket

    def _handshake(self, request: Request, received: bytes) -> None:
        """Answer the upgrade request (``received``: every byte read so far) and start the join."""
        target = urlsplit(request.path)
        if not target.path.startswith(PREFIX):
            self._wire.send_response(self._wire.reject(404, "Not Found\n"))
            return
        room_id = unquote(target.path[len(PREFIX) :])
        transport = self._transport_or_fail()
        if self._affinity is not None and self._affinity.pass_on(transport, received, room_id):
            # The room's home worker has the socket now: let go of this copy of it without a
            # byte or a FIN (no shutdown; the other process's descriptor keeps it open).
            self._closing = True
            transport.close()
            return
        response = self._wire.accept(request)
        self._wire.send_response(response)
        if response.status_code != 101:
            return
        # Accept first: only an accepted socket can tell a browser why it is being closed.
        token = parse_qs(target.query).get("token", [None])[0]
        self._pending = []
        join = self._join = asyncio.get_running_loop().create_task(
            self._enter(room_id, token), name=f"collab-{self._id}-join"
        )
        # A join still reading the database when the server stops must finish (or be cancelled)
        # before storage closes; otherwise it opens a connection on a disposed engine.
        self._tasks.add(join)
        join.add_done_callback(self._tasks.discard)

    async def _enter(self, room_id: str, token: str | None) -> None:
        services = self._services
        try:
            check_room_id(room_id)
            authorised_at = time.monotonic()
            with span("websocket.connect", room_id=room_id):
                try:
                    grant = await services.authorizer.authorize(room_id, token)
                    tag(user_id=grant.user_id)
                    room = await services.registry.acquire(room_id)
                except PairPilotError as exc:
                    tag(outcome="refused", close_code=close_code(exc))
                    raise
                tag(outcome="authorized")
        except PairPilotError as exc:
            self._log_refusal("connection refused", exc, room_id=room_id[:80])
            self._refuse(exc)
            return
        except Exception as exc:  # a bug must close this socket, and only it
            log.error("connection failed", exc_info=exc, connection_id=self._id)
            report(exc, room_id=room_id[:80])
            self._refuse(PairPilotError("internal error"))
            return
        finally:
            self._join = None
        if self._closing:  # the peer left while the room was loading
            services.registry.release(room)
            return
        try:
            services.connection_limits.enter(grant.user_id, len(room.sessions))
        except RefusedError as exc:
            services.registry.release(room)
            self._log_refusal("connection refused", exc, room_id=room_id, user_id=grant.user_id)
            self._refuse(exc)
            return
        settings = services.settings
        self._room = room
        self._session = Session(
            self,
            room_id=room_id,
            grant=grant,
            rate=TokenBucket(settings.messages_per_second, settings.message_burst),
            session_id=self._id,
        )
        room.join(self._session)
        # Rights changed while this join read them are read again (the change's re-check ran
        # before this socket was in the room).
        services.access.joined(room_id, grant.user_id, authorised_at)
        self._watch_token(grant.expires_at)
        where = self._where()
        log.info(
            "connection opened", can_write=grant.can_write, auth_session=grant.auth_session, **where
        )
        pending, self._pending = self._pending or [], None
        self._transport_or_fail().resume_reading()
        for data in pending:
            if self._closing:
                break
            self.data_received(data)

    def _refuse(self, error: PairPilotError) -> None:
        # Read again (and drop what came early): the peer's answer to the close must get through.
        self._pending = None
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()
        self._fail(error)

    def _frame(self, frame: Frame) -> None:
        if self._closing:
            return
        if frame.opcode is Opcode.CLOSE:
            self._closing = True  # websockets answered; the transport closes after the EOF
            self._leave()
            return
        if frame.opcode not in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
            return  # ping (answered by websockets) or pong
        if frame.opcode is Opcode.TEXT:
            self._fail(ProtocolError("text frames are not part of the y-websocket protocol"))
            return
        message = self._reassemble(frame)
        # websockets' parser keeps its last frame referenced until the next one arrives (a
        # suspended generator's local): a document handed over in a sync step was held a second
        # time per socket, for as long as the socket stayed quiet (bench/README.md, issue #23).
        frame.data = b""
        if message is not None:
            self._message(message)

    def _reassemble(self, frame: Frame) -> bytes | None:
        """Whole messages from frames (websockets checks the sequence and the total size)."""
        if frame.fin and self._fragments is None:
            return bytes(frame.data)
        fragments = self._fragments = self._fragments or []
        fragments.append(bytes(frame.data))
        if not frame.fin:
            return None
        self._fragments = None
        return b"".join(fragments)

    def _message(self, message: bytes) -> None:
        session, room = self._session, self._room
        assert session is not None  # noqa: S101 - joined before reading
        assert room is not None  # noqa: S101
        self._services.metrics.traffic.count_in(message)
        try:
            session.check_rate()
            decoded = decode_message(message)
            if isinstance(decoded, TokenRenewal):
                self._renew(session, decoded.token)
            else:
                room.receive(session, decoded)
        except PairPilotError as exc:
            self._log_refusal("connection closed", exc, **self._where())
            self._fail(exc)
        except Exception as exc:  # a bug must close this socket, and only it
            log.error("connection failed", exc_info=exc, **self._where())
            report(exc, room_id=session.room_id, user_id=session.user_id)
            self._fail(PairPilotError("internal error"))

    def close(self, code: int, reason: str) -> None:
        """Close this socket with ``code`` (a revoked member: 4403); the peer reads the code."""
        if not self._closing:
            log.info("connection closed", reason=reason, code=code, **self._where())
            self._close(code, reason)

    # the token: warned ahead of its expiry, renewed on the socket, or the socket closes (4401)

    def _watch_token(self, expires_at: float) -> None:
        self._unwatch_token()
        if expires_at == float("inf"):
            return
        loop = asyncio.get_running_loop()
        left = expires_at - time.time()
        # Half the token's remaining life at most: a short-lived token is not asked to renew
        # the moment it arrives (the client would renew in a loop).
        ahead = min(TOKEN_WARNING_S, left / 2)
        self._expiry = [
            loop.call_later(max(0.0, left - ahead), self._warn_expiry),
            loop.call_later(max(0.0, left), self._expire),
        ]

    def _unwatch_token(self) -> None:
        for timer in self._expiry:
            timer.cancel()
        self._expiry = []

    def _warn_expiry(self) -> None:
        if self._session is not None and not self._closing:
            self._session.send(token_expiring("token expires soon: send a new one"))

    def _expire(self) -> None:
        if not self._closing:
            log.info("connection closed", reason="token expired", code=4401, **self._where())
            self._fail(UnauthenticatedError("token expired"))

    def _log_refusal(self, event: str, error: PairPilotError, **where: object) -> None:
        """Log why the socket is refused or closed.

        A guardrail's refusal is counted instead, and logged once per address and reason: a
        client retrying in a loop is one line.
        """
        where.setdefault("connection_id", self._id)
        if isinstance(error, RefusedError):
            self._services.refusals.count(error, self._peer(), **where)
        elif event == "connection refused":
            log.info(event, reason=str(error), code=close_code(error), **where)
        else:
            log.warning(event, reason=str(error), code=close_code(error), **where)

    def _peer(self) -> str | None:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else None

    def _renew(self, session: Session, token: str) -> None:
        identities = self._services.identities
        if identities.needs_keys(token):
            # The issuer's key set is fetched first, off this frame's path; the socket goes on.
            renewal = asyncio.get_running_loop().create_task(
                self._renew_with_keys(session, token), name=f"collab-{self._id}-renew"
            )
            self._tasks.add(renewal)
            renewal.add_done_callback(self._tasks.discard)
            return
        self._renewed(session, identities.verify(token))  # UnauthenticatedError: 4401

    async def _renew_with_keys(self, session: Session, token: str) -> None:
        try:
            identity = await self._services.identities.authenticate(token)
            if self._session is session and not self._closing:
                self._renewed(session, identity)
        except UnauthenticatedError as exc:
            if self._session is session and not self._closing:
                self._log_refusal("connection closed", exc, **self._where())
                self._fail(exc)

    def _renewed(self, session: Session, identity: Identity) -> None:
        if identity.user_id != session.user_id:
            raise UnauthenticatedError("a renewed token must be the same user's")
        self._watch_token(float(identity.claims.get("exp", float("inf"))))
        # The membership is read again too (off this frame's path): a member removed
        # meanwhile is closed with 4403, a demoted editor becomes read-only.
        self._services.access.recheck(session.room_id, session.user_id)

    def _drop_slow(self) -> None:
        log.warning("slow consumer dropped", code=1013, **self._where())
        self._fail(SlowConsumerError("send queue overflowed"))

    def _fail(self, error: PairPilotError) -> None:
        reason = error.new_room_id if isinstance(error, RoomMovedError) else str(error)[:120]
        self._close(close_code(error), reason)

    def _close(self, code: int, reason: str) -> None:
        """Send a close frame, leave the room, and give the peer a bounded time to answer."""
        self._closing = True
        self._leave()
        self._services.metrics.closes.labels(str(code)).inc()
        transport = self._transport_or_fail()
        if transport.is_closing():
            return
        if self._wire.state is State.OPEN:
            self._wire.send_close(code, reason)
            self._flush()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        transport = self._transport_or_fail()
        if self._timer is None and not transport.is_closing():
            # A stuck peer never answers (nor drains its buffer): then the socket is cut.
            self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort)

    def _flush(self) -> None:
        transport = self._transport_or_fail()
        for data in self._wire.data_to_send():
            if transport.is_closing():
                break
            if data:
                transport.write(data)
            else:  # websockets is done with the connection (after a close or a refusal)
                self._linger(transport)
        if self._wire.state is State.CLOSING and not self._closing:
            # websockets failed the connection itself: an oversized or malformed frame.
            sent = self._wire.close_sent
            code = sent.code if sent is not None else 1002
            where = self._where()
            log.warning("connection closed", reason="websocket protocol", code=code, **where)
            self._services.metrics.closes.labels(str(code)).inc()
            self._closing = True
            self._leave()
            self._arm_close_timer()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close, then read and drop what the peer still sends until its EOF (bounded).

        Closing a socket whose peer is still sending (the rest of an oversized message, say)
        makes the kernel answer with a reset, which can destroy our close frame before the peer
        reads it: a stock client then reports 1006 instead of 1009. So, like a web server's
        lingering close, send the FIN after the close frame and drop the peer's bytes unparsed
        (never buffered) until its FIN, ``LINGER_S`` or the byte bound, whichever comes first.
        """
        if self._linger_left is not None:
            return
        max_size = self._services.settings.max_message_bytes
        self._linger_left = max(LINGER_MIN_BYTES, 4 * max_size)
        if not transport.can_write_eof():  # e.g. TLS: no half-close, close as websockets asks
            transport.close()
            return
        transport.write_eof()  # sent once the close frame before it has been written
        if self._timer is not None:  # the close handshake is over; the linger bound replaces it
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(LINGER_S, transport.abort)

    def _discard(self, size: int) -> None:
        assert self._linger_left is not None  # noqa: S101 - only called while lingering
        self._linger_left -= size
        if self._linger_left < 0:  # a peer that never stops sending is cut
            self._transport_or_fail().abort()

    def _leave(self) -> None:
        room, session = self._room, self._session
        if room is None or session is None:
            return
        self._room = None
        self._services.connection_limits.leave(session.user_id)
        room.leave(session)
        self._services.registry.release(room)

    def _where(self) -> dict[str, object]:
        session = self._session
        return {
            "room_id": session.room_id if session else None,
            "connection_id": self._id,
            "user_id": session.user_id if session else None,
        }

    def _transport_or_fail(self) -> asyncio.Transport:
        transport = self._transport
        assert transport is not None  # noqa: S101 - uvicorn calls connection_made first
        return transport
