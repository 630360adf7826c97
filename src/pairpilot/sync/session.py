"""One connection as a room sees it: its identity, its rights and its message-rate budget."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from pairpilot.access.authorizer import Grant
from pairpilot.errors import RateLimitedError
from pairpilot.typing import Socket

_ids = itertools.count(1)
# A held "saved" message waits at most this long for a frame to ride with (Session.hold),
# give or take the timer's slack (uvloop's clock counts whole milliseconds).
SAVED_HOLD_S = 0.25
HOLD_SLACK_S = 0.005


def encode_frame(message: bytes) -> bytes:
    """The unmasked binary WebSocket frame carrying ``message``, as a server writes it.

    RFC 6455's header written directly: once per broadcast, where websockets' general
    ``Frame.serialize`` cost more than the rest of the broadcast's Python.
    """
    size = len(message)
    if size < 126:
        return bytes((0x82, size)) + message
    if size < 1 << 16:
        return b"\x82\x7e" + size.to_bytes(2, "big") + message
    return b"\x82\x7f" + size.to_bytes(8, "big") + message


def next_session_id() -> int:
    """A process-unique id for a connection (its ``connection_id`` in logs)."""
    return next(_ids)


@dataclass(slots=True)
class TokenBucket:
    """Messages-per-second budget of one connection.

    Hand-written on purpose: it runs once per incoming frame, where a general limiter's
    storage round trip would cost more than the message itself.
    """

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the budget is exhausted."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Session:
    """One peer in one room: who it is, what it may do, and where its frames go.

    A session owns no task and no queue. ``send`` encodes a frame and hands it to the socket;
    ``send_encoded`` hands over bytes a broadcast already encoded once for every recipient.
    Flow control (dropping a peer that reads too slowly) is the socket's business. The class
    has slots: an idle server holds thousands of these.
    """

    __slots__ = (
        "_held",
        "_held_at",
        "_rate",
        "_socket",
        "awareness_ids",
        "can_write",
        "id",
        "named_all",
        "restored_ids",
        "room_id",
        "unsaved",
        "user_id",
    )

    def __init__(
        self,
        socket: Socket,
        *,
        room_id: str,
        grant: Grant,
        rate: TokenBucket,
        session_id: int | None = None,
    ) -> None:
        self.id = session_id if session_id is not None else next_session_id()
        self.room_id = room_id
        self.user_id = grant.user_id
        self.can_write = grant.can_write
        self.awareness_ids: set[int] = set()
        # Other client ids whose edits its sync step 2 brought first (a page's copy kept on its
        # device, made by an earlier page): its "saved" messages name them too.
        self.restored_ids: set[int] = set()
        # Whether a "saved" message named every client's clock yet (the first one does: a page
        # may wait for edits that reached the room through another socket, e.g. another tab's).
        self.named_all = False
        # It sent document updates that no "saved" message has acknowledged yet.
        self.unsaved = False
        self._socket = socket
        self._rate = rate
        # An encoded "saved" message that rides with the next frame sent (see ``hold``), and
        # when the first message still waiting was held (the event loop's clock).
        self._held: bytes | None = None
        self._held_at = 0.0

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"

    def send(self, frame: bytes) -> None:
        """Send one y-websocket message to this peer."""
        self.send_encoded(encode_frame(frame))

    def send_encoded(self, wire: bytes) -> None:
        """Send a message already encoded by ``encode_frame`` (one encoding per broadcast)."""
        if self._held is not None:  # one write for both frames
            wire, self._held = self._held + wire, None
        self._socket.send_frame(wire)

    def hold(self, message: bytes, now: float = 0.0) -> None:
        """Send ``message`` with the next frame, or at ``release``; a newer one replaces it.

        For "saved" messages: in a busy room nearly every one rides in the same write as a
        relayed update instead of costing a write (a system call) of its own. ``now`` (the
        event loop's clock) starts the wait; a replacement does not restart it.
        """
        if self._held is None:
            self._held_at = now
        self._held = encode_frame(message)

    def release(self, held_before: float = float("inf")) -> float | None:
        """Send the held message now if it was held before ``held_before`` (default: any).

        Returns when the message still held was held, or None when nothing is left.
        """
        if self._held is None:
            return None
        if self._held_at >= held_before:
            return self._held_at
        wire, self._held = self._held, None
        self._socket.send_frame(wire)
        return None

    def close(self, code: int, reason: str) -> None:
        """Close this peer's connection with ``code``."""
        self._socket.close(code, reason)

    def check_rate(self) -> None:
        """Raise RateLimitedError when the peer exceeds its message budget."""
        if not self._rate.take():
            raise RateLimitedError("too many messages per second")


class SavedHolds:
    """The sessions holding a "saved" message, and one timer that sends what waited too long.

    One per process (the registry's), shared by its rooms: a flush holds a message for the
    writers of every room it wrote, and a timer per room cost a timer and a wake-up of the
    event loop per room and flush. Each message waits ``SAVED_HOLD_S`` from its own hold.
    """

    def __init__(self) -> None:
        self._sessions: dict[Session, None] = {}  # insertion-ordered: the oldest holds first
        self._timer: asyncio.TimerHandle | None = None
        # The event loop, looked up once: asyncio.get_running_loop() makes a getpid() system
        # call, and a flush holds a message for every room it wrote.
        self._loop: asyncio.AbstractEventLoop | None = None

    def hold(self, session: Session, message: bytes) -> None:
        """Hold ``message`` for ``session`` (see ``Session.hold``); call it on the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        session.hold(message, loop.time())
        self._sessions[session] = None
        if self._timer is None:
            self._timer = loop.call_later(SAVED_HOLD_S, self._release, loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        due = loop.time() - SAVED_HOLD_S + HOLD_SLACK_S
        waiting: dict[Session, None] = {}
        oldest: float | None = None
        for session in self._sessions:
            held_at = session.release(due)
            if held_at is not None:
                waiting[session] = None
                oldest = held_at if oldest is None else min(oldest, held_at)
        self._sessions = waiting
        if oldest is not None:
            self._timer = loop.call_at(oldest + SAVED_HOLD_S, self._release, loop)

    def close(self) -> None:
        """Send every held message now and stop the timer (the server is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for session in self._sessions:
            session.release()
        self._sessions.clear()
