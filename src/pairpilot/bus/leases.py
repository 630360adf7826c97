"""Who persists a room: a lease in Redis, one holder at a time, fenced in the database.

``SET pairpilot:lease:{room} <value> NX PX ttl`` takes the lease (value: the holder's process id,
``:``, a nonce); the holder renews it every ``RENEW_S`` (only while the value is still its own)
and releases it when the room unloads. The fence written with every batch is the holder's
acquisition time in milliseconds: a later holder always has a larger one (as long as the
processes' clocks agree to within the lease's ttl), and the database refuses a batch whose fence
is smaller than the last one it took for the room, so a holder that lost its lease without
knowing cannot write.

Issue #23 (Redis bills per command): a lease lives ``TTL_MS`` (a minute and a half) and is
renewed every ``RENEW_S``, whatever the room; what makes a takeover quick is not the lease's
ttl but the holder's process key (streams.py's heartbeat). A process with the room live that
does not hold its lease does not try for it every second: it tries when it knows of no holder
(none found, or the holder said it released the lease), when the holder's process is judged
dead (then it replaces exactly that holder's value), and otherwise only every ``RETRY_S``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

LEASE = "pairpilot:lease:"
TTL_MS = 90_000
RENEW_S = 30.0
RETRY_S = 20.0
# Renew the lease if it is still ours; release it likewise. One round trip each.
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"  # noqa: E501
# Take the lease if nobody holds it, or if it still has the value of a holder known to be gone
# (ARGV[3]; empty: none); the value it has afterwards either way.
_TAKE = "local v = redis.call('GET', KEYS[1]) if v == false or (ARGV[3] ~= '' and v == ARGV[3]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end return v"  # noqa: E501


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: its value in Redis and the fence its writes carry."""

    value: bytes
    fence: int


def process_of(value: bytes) -> bytes:
    """The process id a lease value names."""
    return value.split(b":", 1)[0]


def _bytes(value: Any) -> bytes | None:  # noqa: ANN401 - redis-py answers str or bytes
    return value.encode() if isinstance(value, str) else value


class Leases:
    """The leases a process holds on its live rooms, and who holds the others."""

    def __init__(self, redis: Redis, process: bytes, ttl_ms: int = TTL_MS) -> None:
        self._redis = redis
        self._process = process
        self._ttl_ms = ttl_ms
        self.held: dict[str, Lease] = {}
        # Other processes' lease values, as last seen, for the live rooms not held here.
        self.holders: dict[str, bytes] = {}
        self._renewed: dict[str, float] = {}  # when each held lease was last set
        self._tried: dict[str, float] = {}  # when each room not held was last tried

    def _value(self) -> bytes:
        return self._process + b":" + os.urandom(6).hex().encode()

    async def acquire(self, room_id: str) -> Lease | None:
        """Take the room's lease if nobody holds it; the new lease, or None."""
        fence = int(time.time() * 1000)
        value = self._value()
        if await self._redis.set(LEASE + room_id, value, nx=True, px=self._ttl_ms):
            lease = self.held[room_id] = Lease(value, fence)
            self._renewed[room_id] = time.monotonic()
            self.holders.pop(room_id, None)
            return lease
        return None

    async def keep(
        self,
        room_ids: Iterable[str],
        dead: Container[bytes] = (),
        also: Callable[[Any], int] | None = None,
    ) -> tuple[list[str], list[Any]]:
        """Renew, try, and ``also``'s commands, in one round trip (none if nothing is due).

        Renews the held leases of ``room_ids`` due for it and tries for the others whose holder
        is unknown, in ``dead`` (processes judged dead) or not tried for ``RETRY_S``. ``also``
        queues commands first on the pipeline and says how many. Returns the rooms whose lease
        was taken now, and ``also``'s answers. A held lease that is no longer ours is forgotten.
        """
        now = time.monotonic()
        fence = int(time.time() * 1000)
        tried: dict[str, bytes] = {}  # room -> the value tried; renewals are not in it
        rooms: list[str] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            extra = also(pipe) if also is not None else 0
            for room_id in room_ids:
                lease = self.held.get(room_id)
                if lease is not None:
                    if now - self._renewed.get(room_id, 0.0) < RENEW_S:
                        continue
                    rooms.append(room_id)
                    pipe.eval(_RENEW, 1, LEASE + room_id, lease.value, self._ttl_ms)
                    continue
                replaced = self._replaceable(room_id, dead, now)
                if replaced is None:
                    continue
                rooms.append(room_id)
                tried[room_id] = self._value()
                pipe.eval(_TAKE, 1, LEASE + room_id, tried[room_id], self._ttl_ms, replaced)
            answers = await pipe.execute() if rooms or extra else []
        taken: list[str] = []
        for room_id, answer in zip(rooms, answers[extra:], strict=True):
            if room_id not in tried:
                if answer:
                    self._renewed[room_id] = now
                else:  # no longer ours: who holds it is found out by trying
                    self.forget(room_id)
                continue
            self._tried[room_id] = now
            value = _bytes(answer)
            if value == tried[room_id]:
                self.held[room_id] = Lease(value, fence)
                self._renewed[room_id] = now
                self.holders.pop(room_id, None)
                taken.append(room_id)
            elif value is not None:
                self.holders[room_id] = value
        return taken, list(answers[:extra])

    def _replaceable(self, room_id: str, dead: Container[bytes], now: float) -> bytes | None:
        """What a try for a room not held here may replace (b"": a free lease), None: no try.

        No try while the holder is alive, but every ``RETRY_S`` (in case it is no longer).
        """
        holder = self.holders.get(room_id)
        if holder is None:
            return b""
        if process_of(holder) in dead or process_of(holder) == self._process:
            return holder
        tried = self._tried.setdefault(room_id, now)
        return b"" if now - tried >= RETRY_S else None

    async def release(self, room_id: str, value: bytes) -> None:
        """Give up the lease that had ``value`` (if it is still that one; anyone's value)."""
        held = self.held.get(room_id)
        if held is not None and held.value == value:
            del self.held[room_id]
            self._renewed.pop(room_id, None)
        await self._redis.eval(_RELEASE, 1, LEASE + room_id, value)

    def queue_release(self, pipe: Any, room_id: str, value: bytes) -> None:  # noqa: ANN401 - redis-py's Pipeline
        """Queue giving up the lease that had ``value`` on ``pipe``."""
        held = self.held.get(room_id)
        if held is not None and held.value == value:
            del self.held[room_id]
            self._renewed.pop(room_id, None)
        pipe.eval(_RELEASE, 1, LEASE + room_id, value)

    async def holder(self, room_id: str) -> bytes | None:
        """The value of the room's lease (its holder's process id, ``:``, a nonce), or None."""
        value = _bytes(await self._redis.get(LEASE + room_id))
        if value is not None and room_id not in self.held:
            self.holders[room_id] = value
        return value

    def released(self, room_id: str, value: bytes) -> None:
        """The holder that had ``value`` said it released the lease: try for it next round."""
        if self.holders.get(room_id) == value:
            del self.holders[room_id]
            self._tried.pop(room_id, None)

    def forget(self, room_id: str) -> None:
        """The lease is not ours (the database refused its fence, or its renewal failed)."""
        self.held.pop(room_id, None)
        self._renewed.pop(room_id, None)
        self.holders.pop(room_id, None)
        self._tried.pop(room_id, None)

    def drop(self, room_id: str) -> None:
        """The room is no longer live here: forget what is known of its lease's holder."""
        self.holders.pop(room_id, None)
        self._tried.pop(room_id, None)
