"""One connection: its identity, its bounded send queue and its message-rate budget."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import structlog

from pairpilot.access.authorizer import Grant
from pairpilot.errors import RateLimitedError
from pairpilot.observability.metrics import Metrics
from pairpilot.typing import Socket

_ids = itertools.count(1)
log = structlog.get_logger(__name__)

WRITER_IDLE_S = 2.0
OVERFLOW = "overflow"
SEND_FAILED = "send failed"


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

    ``send`` never blocks: frames go to a bounded queue drained by a writer task that exists
    only while there is something to send (it ends after ``WRITER_IDLE_S`` without traffic), and
    the connection's own task does the reading: an idle connection costs no task of its own.
    A peer that reads too slowly overflows the queue and is dropped, so it never slows the room;
    a failed send drops it too. Either way the reading task is cancelled with ``stop_reason``
    set. The queue is a bare deque with one wake-up future, and the class has slots: an idle
    server holds thousands of these.
    """

    __slots__ = (
        "_metrics",
        "_queue",
        "_queue_size",
        "_rate",
        "_reader",
        "_socket",
        "_wake",
        "_writer",
        "awareness_ids",
        "can_write",
        "id",
        "room_id",
        "stop_reason",
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
        self.stop_reason: str | None = None
        self._socket = socket
        self._queue: deque[bytes] = deque()
        self._queue_size = queue_size
        self._wake: asyncio.Future[None] | None = None
        self._rate = rate
        self._reader: asyncio.Task[object] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"

    @property
    def overflowed(self) -> bool:
        """True once the peer was dropped for reading too slowly."""
        return self.stop_reason == OVERFLOW

    def bind_reader(self, task: asyncio.Task[object]) -> None:
        """The task reading this peer: cancelled when the session must stop."""
        self._reader = task

    def send(self, frame: bytes) -> None:
        """Queue a frame for this peer; on overflow, stop the session."""
        if self.stop_reason is not None:
            return
        if len(self._queue) >= self._queue_size:
            self.stop(OVERFLOW)
            return
        self._queue.append(frame)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name=f"session-{self.id}-writer")
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def check_rate(self) -> None:
        """Raise RateLimitedError when the peer exceeds its message budget."""
        if not self._rate.take():
            raise RateLimitedError("too many messages per second")

    def stop(self, reason: str) -> None:
        """Stop writing and reading (the reader sees ``stop_reason`` set)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._queue.clear()
            if self._reader is not None and self._reader is not asyncio.current_task():
                self._reader.cancel()
        self.close()

    def close(self) -> None:
        """Stop the writer, if one runs (the connection is over)."""
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        self._writer = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        queue, metrics = self._queue, self._metrics
        try:
            while True:
                while queue:
                    frame = queue.popleft()
                    await self._socket.send_bytes(frame)
                    if metrics is not None:
                        metrics.count_out(frame)
                self._wake = loop.create_future()
                try:
                    async with asyncio.timeout(WRITER_IDLE_S):
                        await self._wake
                except TimeoutError:
                    if not queue:
                        self._writer = None
                        return
                finally:
                    self._wake = None
        except (OSError, RuntimeError) as exc:  # the peer is gone; uvicorn raises both kinds
            log.debug("send failed", session_id=self.id, error=repr(exc))
            self._writer = None
            self.stop(SEND_FAILED)
