"""One connection: its identity, its bounded send queue and its message-rate budget."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from pairpilot.errors import RateLimitedError
from pairpilot.observability.metrics import Metrics
from pairpilot.typing import Socket

_ids = itertools.count(1)


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
    """

    def __init__(
        self,
        socket: Socket,
        *,
        room_id: str,
        user_id: str,
        can_write: bool,
        queue_size: int,
        rate: TokenBucket,
        metrics: Metrics | None = None,
    ) -> None:
        self.id = next(_ids)
        self.room_id = room_id
        self.user_id = user_id
        self.can_write = can_write
        self.awareness_ids: set[int] = set()
        self.overflowed = False
        self._socket = socket
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self._rate = rate
        self._writer: asyncio.Task[None] | None = None
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"<Session {self.id} user={self.user_id}>"

    def send(self, frame: bytes) -> None:
        """Queue a frame for this peer; on overflow, mark the session and stop its writer."""
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            if self._writer is not None:
                self._writer.cancel()

    def check_rate(self) -> None:
        """Raise RateLimitedError when the peer exceeds its message budget."""
        if not self._rate.take():
            raise RateLimitedError("too many messages per second")

    def start_writer(self) -> asyncio.Task[None]:
        """Start the task that drains the send queue into the socket."""
        self._writer = asyncio.create_task(self._drain(), name=f"session-{self.id}-writer")
        return self._writer

    async def _drain(self) -> None:
        metrics = self._metrics
        while True:
            frame = await self._queue.get()
            await self._socket.send_bytes(frame)
            if metrics is not None:
                metrics.count_out(frame)
