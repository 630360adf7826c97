"""One connection: its identity, its bounded send queue and its message-rate budget."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

from pairpilot.access.authorizer import Grant
from pairpilot.errors import RateLimitedError
from pairpilot.observability.metrics import Metrics
from pairpilot.typing import Socket

_ids = itertools.count(1)


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
    """One peer in one room.

    ``send`` never blocks: frames go to a bounded queue drained by the session's writer task.
    A peer that reads too slowly overflows the queue and is dropped, so it never slows the room.
    The queue is a bare deque with one wake-up future (an asyncio.Queue costs three deques per
    connection, and an idle server holds thousands of connections); slots for the same reason.
    """

    __slots__ = (
        "_metrics",
        "_queue",
        "_queue_size",
        "_rate",
        "_socket",
        "_wake",
        "_writer",
        "awareness_ids",
        "can_write",
        "id",
        "overflowed",
        "room_id",
        "user_id",
    )

    def __init__(
        self,
        socket: Socket,
        *,
        room_id: str,
        grant: Grant,
        queue_size: int,
        rate: TokenBucket,
        metrics: Metrics | None = None,
        session_id: int | None = None,
    ) -> None:
        self.id = session_id if session_id is not None else next_session_id()
        self.room_id = room_id
        self.user_id = grant.user_id
        self.can_write = grant.can_write
        self.awareness_ids: set[int] = set()
        self.overflowed = False
        self._socket = socket
        self._queue: deque[bytes] = deque()
        self._queue_size = queue_size
        self._wake: asyncio.Future[None] | None = None
        self._rate = rate
        self._writer: asyncio.Task[None] | None = None
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"

    def send(self, frame: bytes) -> None:
        """Queue a frame for this peer; on overflow, mark the session and stop its writer."""
        if self.overflowed:
            return
        if len(self._queue) >= self._queue_size:
            self.overflowed = True
            self._queue.clear()
            if self._writer is not None:
                self._writer.cancel()
            return
        self._queue.append(frame)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def check_rate(self) -> None:
        """Raise RateLimitedError when the peer exceeds its message budget."""
        if not self._rate.take():
            raise RateLimitedError("too many messages per second")

    def start_writer(self) -> asyncio.Task[None]:
        """Start the task that drains the send queue into the socket."""
        self._writer = asyncio.create_task(self._drain(), name=f"session-{self.id}-writer")
        return self._writer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        queue, metrics = self._queue, self._metrics
        while True:
            while queue:
                frame = queue.popleft()
                await self._socket.send_bytes(frame)
                if metrics is not None:
                    metrics.count_out(frame)
            self._wake = loop.create_future()
            await self._wake
            self._wake = None
