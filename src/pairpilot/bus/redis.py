"""RoomBus across processes: Redis pub/sub, one channel per live room.

Every process keeps a full replica of each room it serves. A frame published by a local
session is delivered to local sockets at once and queued for Redis; a publisher task sends the
queue in pipelined batches. Frames from other processes are applied to the local replica (CRDT
updates and awareness are idempotent) and delivered to its sockets. A replica that subscribes,
or resubscribes after a Redis outage, publishes its state vector; every other replica answers
with what it lacks (document and presence), so a room opened on a second process converges even
with edits that are not in storage yet. Each process persists what it applies, so a crashed
process's unflushed edits are still written by the others (writes are idempotent merges).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from pairpilot.bus.base import Replica

log = structlog.get_logger(__name__)

FRAME = b"F"
SYNC_REQUEST = b"S"
PREFIX = "pairpilot:room:"
RETRY_MAX_S = 5.0
CLOSE_TIMEOUT_S = 2.0


class RedisBus:
    """RoomBus on Redis pub/sub."""

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        self._me = os.urandom(8)
        self._replicas: dict[str, Replica] = {}
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._changes: deque[tuple[str, bool]] = deque()
        self._wake = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.down = False
        self._closed = False

    def subscribe(self, room_id: str, replica: Replica) -> None:
        """Start relaying the room; its replica will ask the others to catch it up."""
        self._replicas[room_id] = replica
        self._changes.append((room_id, True))
        self._wake.set()

    def unsubscribe(self, room_id: str) -> None:
        """Stop relaying the room."""
        self._replicas.pop(room_id, None)
        self._changes.append((room_id, False))
        self._wake.set()

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Deliver locally now; queue the frame for the other processes."""
        replica = self._replicas.get(room_id)
        if replica is not None:
            replica.deliver(frame, origin)
        self._outbox.append((room_id, FRAME + self._me + frame))
        self._wake.set()

    async def start(self) -> None:
        """Start the publisher and the subscriber tasks."""
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="redis-bus-publish"),
            asyncio.create_task(self._listen_loop(), name="redis-bus-listen"),
        ]

    async def close(self) -> None:
        """Stop both tasks and close the connections, within a bounded time."""
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        # redis-py can swallow a cancellation inside a command; never let that hang shutdown.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            if stuck:
                log.warning("redis bus tasks did not stop in time", tasks=len(stuck))
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if self._pubsub is not None:
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # no hint
                await self._redis.aclose()

    async def _publish_loop(self) -> None:
        delay = 0.05
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply_subscriptions()
                await self._flush_outbox()
            except (RedisError, OSError) as exc:
                self._outage(exc)
                self._wake.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                delay = 0.05

    async def _apply_subscriptions(self) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # the listener subscribes everything when it (re)connects
        while self._changes:
            room_id, wanted = self._changes[0]
            if wanted and room_id in self._replicas:
                await pubsub.subscribe(PREFIX + room_id)
                await self._ask_to_catch_up(room_id)
            elif not wanted and room_id not in self._replicas:
                await pubsub.unsubscribe(PREFIX + room_id)
            self._changes.popleft()

    async def _ask_to_catch_up(self, room_id: str) -> None:
        replica = self._replicas.get(room_id)
        if replica is not None:
            message = SYNC_REQUEST + self._me + replica.state_vector()
            await self._redis.publish(PREFIX + room_id, message)

    async def _flush_outbox(self) -> None:
        while self._outbox:
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 512))]
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id, message in batch:
                    pipe.publish(PREFIX + room_id, message)
                # On failure the batch is dropped, not retried: replicas catch up through the
                # sync request sent when the connection comes back.
                await pipe.execute()

    async def _listen_loop(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self._outage(exc)
                self._pubsub = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                delay = 0.05

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # Every live room is subscribed below; changes after this line stay queued for the
        # publisher, which applies them once the connection is set.
        self._changes.clear()
        rooms = list(self._replicas)
        # A channel of our own keeps the connection subscribed when no room is live.
        await pubsub.subscribe(PREFIX + "\x00" + self._me.hex())
        if rooms:
            await pubsub.subscribe(*(PREFIX + room_id for room_id in rooms))
        self._pubsub = pubsub
        self._wake.set()
        if self.down:
            self.down = False
            log.info("redis bus reconnected; asking the other replicas to catch up")
        for room_id in rooms:
            await self._ask_to_catch_up(room_id)
        async for message in pubsub.listen():
            if message.get("type") == "message":
                self._receive(message["channel"].decode()[len(PREFIX) :], message["data"])

    def _receive(self, room_id: str, data: bytes) -> None:
        kind, sender, body = data[:1], data[1:9], data[9:]
        replica = self._replicas.get(room_id)
        if sender == self._me or replica is None:
            return
        if kind == FRAME:
            replica.apply_remote(body)
        elif kind == SYNC_REQUEST:
            for frame in replica.catch_up(body):
                self._outbox.append((room_id, FRAME + self._me + frame))
            self._wake.set()

    def _outage(self, error: BaseException) -> None:
        if not self.down:
            self.down = True
            log.warning(
                "redis bus unreachable; rooms keep working within this process", error=repr(error)
            )
