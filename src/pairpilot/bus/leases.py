"""Who persists a room: a lease in Redis, one holder at a time, fenced in the database.

``SET pairpilot:lease:{room} <value> NX PX ttl`` takes the lease; the holder renews it every
second (only while the value is still its own) and releases it when the room unloads. A holder
that dies stops renewing, and another process with the room live takes the lease within
``ttl`` plus a second. The fence written with every batch is the holder's acquisition time in
milliseconds: a later holder always has a larger one (as long as the processes' clocks agree
to within the lease's ttl), and the database refuses a batch whose fence is smaller than the
last one it took for the room, so a holder that lost its lease without knowing cannot write.

A room no other process has open ("quiet", see streams.py) has nobody to take its lease over
quickly: its lease lives ``SLOW_TTL_MS`` and is renewed every ``SLOW_RENEW_S`` (issue #23: one
command a second per room was most of an idle room's Redis bill). A newcomer that finds the
holder's process dead releases the lease itself (``release``; see streams.py's catch_up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Container, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

LEASE = "pairpilot:lease:"
TTL_MS = 5000
SLOW_TTL_MS = 60_000
SLOW_RENEW_S = 20.0
# Renew the lease if it is still ours; release it likewise. One round trip each.
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"  # noqa: E501


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: its value in Redis and the fence its writes carry."""

    value: bytes
    fence: int


class Leases:
    """The leases a process holds on its live rooms."""

    def __init__(self, redis: Redis, process: bytes, ttl_ms: int = TTL_MS) -> None:
        self._redis = redis
        self._process = process
        self._ttl_ms = ttl_ms
        self.held: dict[str, Lease] = {}
        # When each held lease was last set, and the ttl it was set with.
        self._renewed: dict[str, tuple[float, int]] = {}
        self._slow: Container[str] = ()  # rooms nobody else has open (slow_down)

    async def acquire(self, room_id: str) -> Lease | None:
        """Take the room's lease if nobody holds it; the new lease, or None."""
        fence = int(time.time() * 1000)
        value = self._process + b":" + os.urandom(6).hex().encode()
        if await self._redis.set(LEASE + room_id, value, nx=True, px=self._ttl_ms):
            lease = self.held[room_id] = Lease(value, fence)
            self._renewed[room_id] = (time.monotonic(), self._ttl_ms)
            return lease
        return None

    def slow_down(self, room_ids: Container[str]) -> None:
        """From the next ``keep`` on, hold these rooms' leases longer and renew them less often."""
        self._slow = room_ids

    async def keep(self, room_ids: Iterable[str]) -> list[str]:
        """Renew the held leases of ``room_ids`` and try to take the others, in one round trip.

        The rooms whose lease was taken now; a held lease that is no longer ours is forgotten.
        """
        slow = self._slow
        now = time.monotonic()
        fence = int(time.time() * 1000)
        values: dict[str, bytes] = {}
        ttls: dict[str, int] = {}  # the held leases renewed now
        rooms: list[str] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                lease = self.held.get(room_id)
                if lease is not None:
                    ttl = SLOW_TTL_MS if room_id in slow else self._ttl_ms
                    renewed_at, renewed_ttl = self._renewed.get(room_id, (0.0, 0))
                    if ttl == SLOW_TTL_MS == renewed_ttl and now - renewed_at < SLOW_RENEW_S:
                        continue
                    rooms.append(room_id)
                    ttls[room_id] = ttl
                    pipe.eval(_RENEW, 1, LEASE + room_id, lease.value, ttl)
                else:
                    rooms.append(room_id)
                    values[room_id] = self._process + b":" + os.urandom(6).hex().encode()
                    pipe.set(LEASE + room_id, values[room_id], nx=True, px=self._ttl_ms)
            answers = await pipe.execute() if rooms else []
        taken: list[str] = []
        for room_id, answer in zip(rooms, answers, strict=True):
            if room_id not in values:
                if answer:
                    self._renewed[room_id] = (now, ttls[room_id])
                else:
                    self.held.pop(room_id, None)
                    self._renewed.pop(room_id, None)
            elif answer:
                self.held[room_id] = Lease(values[room_id], fence)
                self._renewed[room_id] = (now, self._ttl_ms)
                taken.append(room_id)
        return taken

    async def release(self, room_id: str, value: bytes) -> None:
        """Give up the lease that had ``value`` (if it is still that one; anyone's value)."""
        held = self.held.get(room_id)
        if held is not None and held.value == value:
            del self.held[room_id]
            self._renewed.pop(room_id, None)
        await self._redis.eval(_RELEASE, 1, LEASE + room_id, value)

    async def holder(self, room_id: str) -> bytes | None:
        """The value of the room's lease (its holder's process id, ``:``, a nonce), or None."""
        value = await self._redis.get(LEASE + room_id)
        return value.encode() if isinstance(value, str) else value

    def forget(self, room_id: str) -> None:
        """The database refused this lease's fence: another process holds the room now."""
        self.held.pop(room_id, None)
        self._renewed.pop(room_id, None)
