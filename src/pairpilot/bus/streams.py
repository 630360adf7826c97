"""RoomBus across processes on Redis: a control stream per room, a data stream per process.

Every process keeps a full replica of each room it serves. A frame published by a local session
is delivered to local sockets at once and, if another process has the room live, queued. A
publisher task appends the queue at most once every ``batch_ms``: the frames of all rooms
(and "stored" and "interest" records) go into one entry of this process's data stream
(``pairpilot:data:{process}``, one ``XADD`` whatever the number of frames and rooms), the rare
control entries (sync requests and their answers, deletions, changes of rights, released
leases, frames of a room not live here such as a comment made through the API) into their
room's stream. One reader task reads, with one blocking ``XREAD``, every
live room's stream and the data streams of the processes it shares rooms with, each from the
last id it has seen: a reader that was slow or cut off catches up exactly from where it
stopped. No process reads its own data stream back (issue #23: frames were one ``XADD`` each
and read back by their writer, 2.35 Redis commands per keystroke with two processes).

- A room that opens here reads its room stream first and appends a ``SYNC_REQUEST`` with its
  state vector (``catch_up``, awaited by the registry before the room answers its first
  client). Every process with the room live answers in the room stream with what the newcomer
  lacks, then ``ANSWERED``; the catch-up waits (at most ``CATCH_UP_WAIT_S``) for the lease
  holder's answer, so the first client here gets the holder's unflushed edits. The newcomer
  reads each answering process's data stream from its request's id on: what that process
  published after its answer is there, what it published before is in the answer.
- Any entry of another process in a room stream makes this process read that process's data
  stream from (just before) that entry's id; a process whose data stream named no live room of
  this one for ``SHARED_FOR_S`` is no longer read, one judged dead neither.
- Room streams are trimmed only once stored (``persisted``: ``XTRIM MINID``) and at least
  ``retain_ms`` old; data streams are capped at ``max_entries`` and expire once their process
  stopped writing. A replica that lags by less than the retention never misses an entry.
- After an outage (Redis unreachable, or this process's reader stalled past the retention) a
  replica cannot know what it missed: it falls back to a full state exchange, appending its
  whole state and a sync request to the room stream, which every other replica answers with
  what it lacks.
- Frames that cannot be appended during an outage are kept and sent when Redis is back. The
  outbox is bounded in bytes (``max_outbox_bytes``, each entry counted with its overhead, so
  many small entries are bounded too): past the bound during an outage the queued document
  frames, presence and "stored" entries are dropped (the full exchange after it covers them,
  and meanwhile every process stores what it applies); past it while Redis is merely slow,
  presence and "stored" entries are dropped and the bus is ``backlogged``: rooms refuse edits
  (close 1013) until it drains. Control entries (a sync request, a deletion, a change of
  rights) are never dropped.
- Every Redis call has a connect and a read timeout: a Redis that hangs is an outage like one
  that is closed (the reader's blocking read has its own connection, whose read timeout is its
  block plus the timeout). The background loops run under the process's ``Supervisor``; an
  exception the reader did not expect makes it start again with a full state exchange.
- A deleted room's stream gets an ``ERASED`` entry (``erase``): every process with the room
  live drops it unwritten and closes its sockets; the stream expires ``ERASED_TTL_MS`` later
  (time for the others to read it) and the lease key is deleted at once.
- A change of a member's rights gets an ``ACCESS`` entry naming the user (``access_changed``):
  every process re-reads that membership for its sockets. Back from an outage, every live room
  re-checks all its sockets (``on_access`` with no user), since entries may have been lost.

Quiet rooms. A room whose lease this process holds and that no other process has shown
interest in for ``SHARED_FOR_S`` is *quiet*: its frames and "stored" records are not appended
at all (its sockets are all here; storage is written here). Any record or entry of another
process about a room makes it shared here for ``SHARED_FOR_S``; a process with a shared room
appends an ``INTEREST`` record whenever it sent nothing for it for ``INTEREST_S``. A quiet room
that withheld frames and stops being quiet without a request to answer (its lease lost or
fenced, another process's frame) appends its whole state first.

Housekeeping (one pipelined round trip at most every ``HEARTBEAT_S``, whatever the number of
rooms, none without a live room): this process's key (``pairpilot:alive:{process}``, renewed
every second while a room is shared or held elsewhere, every ``QUIET_HEARTBEAT_S`` otherwise),
the keys of the processes it shares rooms with (one judged dead loses its sockets' presence
here and its leases are taken over), and the leases due (leases.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pairpilot.bus.base import PERSIST_ELSEWHERE, PERSIST_HERE, Persistence, Replica
from pairpilot.bus.leases import LEASE, Leases, process_of
from pairpilot.errors import RoomDeletedError, RoomMovedError
from pairpilot.supervisor import Supervisor

log = structlog.get_logger(__name__)

FRAME = b"F"
SYNC_REQUEST = b"S"
STORED = b"P"  # the persister stored the room up to this state vector
ERASED = b"D"  # the room was deleted (or moved: the body is its new id): drop it, close sockets
ACCESS = b"A"  # a member's rights changed (body: the user id; empty: anyone's): re-check them
INTEREST = b"I"  # this process has the room live and shared (when it sent nothing else lately)
ANSWERED = b"R"  # a process answered a SYNC_REQUEST (a newcomer's catch-up waits for the holder's)
RELEASED = b"L"  # the lease holder released the lease (body: its value): the others try for it
RELAYED = b"T"  # a frame from a process without the room live (a comment made through the API)
# Records and entries that say their sender has the room live (ERASED and ACCESS come from anyone).
SHARING = (FRAME, SYNC_REQUEST, STORED, INTEREST, ANSWERED)
# A deleted room's stream outlives its ERASED entry this long, for the other processes to read.
ERASED_TTL_MS = 10_000
PREFIX = "pairpilot:stream:"
DATA = "pairpilot:data:"  # a process's data stream: its frames of shared rooms, batched
WAKE = "pairpilot:wake:"  # a process's reader watches this too: an entry makes it read anew
WAKE_TTL_MS = 3_600_000
ALIVE = "pairpilot:alive:"
# While a room is shared (or held by another process) each process renews its key every
# HEARTBEAT_S; a peer whose key has been gone for DEAD_AFTER_S is dead: the presence of its
# sockets is removed (stock clients would wait 30 s for their own timeout) and the leases it
# held are taken over. With no room shared, nobody watches the key but a newcomer that got no
# answer (see _announce): it is renewed this seldom, for this long.
HEARTBEAT_S = 1.0
ALIVE_TTL_MS = 3000
QUIET_HEARTBEAT_S = 10.0
QUIET_ALIVE_TTL_MS = 30_000
DEAD_AFTER_S = 2.0
DEAD_FORGOTTEN_S = 600.0
RETRY_MAX_S = 5.0
CLOSE_TIMEOUT_S = 2.0
START = "0-0"
# A room another process showed interest in within SHARED_FOR_S is shared; a process with a
# shared room says it is there at least every INTEREST_S (< SHARED_FOR_S).
SHARED_FOR_S = 60.0
INTEREST_S = 20.0
# A read that brought fewer than GATHER_BELOW entries waits GATHER_S before the next one.
GATHER_BELOW = 32
GATHER_S = 0.002
# The publisher appends at most once every BATCH_MS (bench/README.md, "The Redis bill"); the
# reader blocks this long (any entry it watches wakes it at once).
BATCH_MS = 16
READ_BLOCK_MS = 10_000
ROOMS_EVERY_S = 0.1
TRIM_EVERY_S = 5.0
EXPIRE_EVERY_S = 20.0
CATCH_UP_WAIT_S = 1.5
# What one outbox entry costs beside its frame (the tuple, the deque's slot), for its bound.
OUTBOX_ENTRY_BYTES = 100
# At most this many records go into one data stream entry.
MAX_RECORDS = 4096
AWARENESS = b"\x01"  # a y-websocket awareness message's first byte
_HEAD = struct.Struct(">HcI")  # a data record: room id length, kind, frame length


Entry = tuple[str, dict[bytes, bytes]]
Queued = tuple[str, bytes, bytes, bool]  # room, kind, frame, whether it goes to the data stream


def _entries(raw: Any) -> list[Entry]:  # noqa: ANN401 - redis-py types stream replies loosely
    """Stream entries as ``(id, fields)``."""
    return [(entry_id.decode(), fields) for entry_id, fields in raw or []]


def stream_key(room_id: str) -> str:
    """The Redis key of a room's stream."""
    return PREFIX + room_id


def data_key(process: bytes) -> str:
    """The Redis key of a process's data stream."""
    return DATA + process.decode()


def encode_records(records: list[tuple[str, bytes, bytes]]) -> bytes:
    """Data records (room id, kind, frame) as one entry's body."""
    parts: list[bytes] = []
    for room_id, kind, frame in records:
        room = room_id.encode()
        parts += (_HEAD.pack(len(room), kind, len(frame)), room, frame)
    return b"".join(parts)


def decode_records(body: bytes) -> Iterator[tuple[str, bytes, bytes]]:
    """The records of a data stream entry's body."""
    view, offset, end = memoryview(body), 0, len(body)
    while offset < end:
        room_len, kind, frame_len = _HEAD.unpack_from(view, offset)
        offset += _HEAD.size
        room_id = bytes(view[offset : offset + room_len]).decode()
        offset += room_len
        yield room_id, kind, bytes(view[offset : offset + frame_len])
        offset += frame_len


def _just_before(entry_id: str) -> str:
    """A position from which a read returns every entry of ``entry_id``'s millisecond on."""
    ms = int(entry_id.split("-", 1)[0])
    return f"{max(ms - 1, 0)}-0"


def expire_erased(pipe: Any, room_id: str) -> None:  # noqa: ANN401 - redis-py's Pipeline is untyped
    """Queue the commands that remove a deleted room's keys (its ERASED entry is appended)."""
    pipe.pexpire(stream_key(room_id), ERASED_TTL_MS)
    pipe.delete(LEASE + room_id)


async def erase_room(redis: Redis, room_id: str) -> None:
    """Tell every process serving a deleted room to drop it, from outside a server (the CLI)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(stream_key(room_id), {"p": b"operator", "k": ERASED, "f": b""})
        expire_erased(pipe, room_id)
        await pipe.execute()


class RedisStreamBus:
    """RoomBus on Redis Streams."""

    def __init__(  # noqa: PLR0913 - keyword-only tuning, each with its default
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        block_ms: int = READ_BLOCK_MS,
        batch_ms: int = BATCH_MS,
        max_entries: int = 50_000,
        retain_ms: int = 60_000,
        max_outbox_bytes: int = 128 * 1024 * 1024,
        supervisor: Supervisor | None = None,
    ) -> None:
        # A hung Redis (one that accepts connections and never answers) must be an outage as a
        # closed one is. The read timeout covers every reply; it is longer than a pipelined
        # append of large frames needs, and than the catch-up's blocking read. The reader's
        # blocking read has a connection of its own, whose timeout is longer than its block.
        self._redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=2 * timeout_s,
            health_check_interval=30,
        )
        self._reader: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=block_ms / 1000 + timeout_s,
            health_check_interval=30,
        )
        self._supervisor = supervisor if supervisor is not None else Supervisor()
        self._max_outbox_bytes = max_outbox_bytes
        self._outbox_bytes = 0
        self._me = os.urandom(8).hex().encode()
        self._block_ms = block_ms
        self._batch_s = batch_ms / 1000
        self._wait_block_ms = max(1, int(timeout_s * 1000))
        self._max_entries = max_entries
        self._retain_ms = retain_ms
        self._replicas: dict[str, Replica] = {}
        # The last room stream id read per room; None until the room's catch-up has run.
        self._positions: dict[str, str | None] = {}
        # The last data stream id read per process read, and when it last named a live room.
        self._reading: dict[bytes, str] = {}
        self._relevant_at: dict[bytes, float] = {}
        self._wake_position = START
        self._in_read = False  # the reader is inside its blocking read
        self._rooms_read_at = 0.0  # when the reader next names the room streams
        self._outbox: deque[Queued] = deque()
        self._passed_at = 0.0  # when the publisher last appended
        self._expired_at = 0.0  # when this process's data stream's expiry was last set
        self._trims: dict[str, str] = {}
        self._trimmed: dict[str, str] = {}  # the last position trimmed per room
        self._trimmed_at: dict[str, float] = {}
        # Entries younger than the retention are kept anyway: trimming a room more often than
        # this cost one XTRIM per room per flush and freed nothing more (issue #23).
        self._trim_every_s = min(TRIM_EVERY_S, retain_ms / 1000)
        self._silent: set[str] = set()  # quiet rooms whose frames were not appended
        self._sent_at: dict[str, float] = {}  # when an entry of this process's was last queued
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._read_at = time.monotonic()
        self._shared: dict[str, float] = {}  # until when each room counts as shared
        # Other processes seen: None while alive, else when their key was first found missing;
        # and the ones judged dead (their leases are taken over), with when.
        self._peers: dict[bytes, float | None] = {}
        self._dead: dict[bytes, float] = {}
        self._beat_at = -QUIET_HEARTBEAT_S  # when this process's key was last set
        self._leases = Leases(self._redis, self._me)
        self._stopping = asyncio.Event()
        self._releases: list[tuple[str, bytes, bool]] = []  # room, value, whether to say so
        self._erasures: list[str] = []  # deleted rooms whose keys are still to go
        self._on_erased: Callable[[str, str | None], None] | None = None
        self._on_access: Callable[[str, str | None], None] | None = None
        self.down = False
        self._closed = False

    # RoomBus

    def subscribe(self, room_id: str, replica: Replica) -> None:
        """Relay the room; its room stream is read once ``catch_up`` has read it."""
        self._replicas[room_id] = replica
        self._positions[room_id] = None

    def unsubscribe(self, room_id: str, *, say: bool = True) -> None:
        """Stop relaying the room; give its lease up (``say``: tell the others, if shared)."""
        shared = say and self._shared.pop(room_id, 0.0) > time.monotonic()
        self._shared.pop(room_id, None)
        self._replicas.pop(room_id, None)
        self._positions.pop(room_id, None)
        self._trimmed.pop(room_id, None)
        self._trimmed_at.pop(room_id, None)
        self._silent.discard(room_id)
        self._sent_at.pop(room_id, None)
        self._leases.drop(room_id)
        lease = self._leases.held.pop(room_id, None)
        if lease is not None:
            self._releases.append((room_id, lease.value, shared))
            self._wake.set()

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Deliver locally now; queue the frame for the data stream unless the room is quiet.

        A room not live here (a change made through the API, a comment say) has its frame
        appended to the room's stream, which every process with the room live reads.
        """
        replica = self._replicas.get(room_id)
        if replica is None:
            self._queue(room_id, RELAYED, frame)
            return
        replica.deliver(frame, origin)
        if self.quiet(room_id):
            self._silent.add(room_id)
            return
        self._queue(room_id, FRAME, frame, data=True)

    def quiet(self, room_id: str) -> bool:
        """Whether the room stays here: its lease is ours and no other process showed interest."""
        return (
            not self.down
            and room_id in self._leases.held
            and self._shared.get(room_id, 0.0) <= time.monotonic()
        )

    async def catch_up(self, room_id: str) -> None:
        """Apply what the room's stream holds, and every other replica's answer to a request.

        If Redis does not answer, the room starts from storage alone and does a full state
        exchange once Redis is back; during a known outage it does not wait for Redis at all.
        """
        replica = self._replicas.get(room_id)
        if replica is None or self.down:  # the reader's recovery catches it up
            return
        position = START
        try:
            while True:
                entries = _entries(
                    await self._redis.xrange(
                        stream_key(room_id),
                        min=f"({position}" if position != START else "-",
                        count=1000,
                    )
                )
                for entry_id, fields in entries:  # history: who has the room now answers
                    position = entry_id
                    self._catch_up_entry(room_id, replica, fields)
                if len(entries) < 1000:
                    break
            # The reader starts from before this process's request: a request another
            # process appended meanwhile is answered (entries read twice are applied twice,
            # which changes nothing).
            taken = await self._announce(room_id, replica)
        except (RedisError, OSError) as exc:
            self._outage(exc)
            return
        if self._replicas.get(room_id) is replica:
            self._positions[room_id] = position
            if taken:
                replica.became_persister()
            await self._wake_reader()

    async def _announce(self, room_id: str, replica: Replica) -> bool:
        """Say the room is live here; with another process holding it, await its answer.

        With nobody holding it, take its lease now (its edits are then never appended while
        nobody else has it); whether this process took it.
        """
        holder = await self._holder_or_mine(room_id)
        request = await self._redis.xadd(
            stream_key(room_id),
            {"p": self._me, "k": SYNC_REQUEST, "f": replica.state_vector()},
            maxlen=self._max_entries,
            approximate=True,
        )
        self._sent_at[room_id] = time.monotonic()
        position = request.decode() if isinstance(request, bytes) else str(request)
        asked = _just_before(position)
        process = process_of(holder) if holder else self._me
        if process != self._me:
            self._peers.setdefault(process, None)
        if holder is None or process == self._me:
            return room_id in self._leases.held
        deadline = time.monotonic() + CATCH_UP_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            block = max(1, min(int(left * 1000), self._wait_block_ms))
            answer: Any = await self._redis.xread(
                {stream_key(room_id): position},
                count=1000,
                block=block,
            )
            for _key, raw in answer or []:
                for entry_id, fields in _entries(raw):
                    position = entry_id
                    sender = fields.get(b"p", b"")
                    if sender != self._me and self._replicas.get(room_id) is replica:
                        self._shared[room_id] = time.monotonic() + SHARED_FOR_S
                        self._learn(sender, asked)
                    self._catch_up_entry(room_id, replica, fields)
                    if sender == process and fields.get(b"k") == ANSWERED:
                        return False
        # No answer: if the holder's process is gone, free its lease now (not in a minute).
        if not await self._redis.exists(ALIVE + process.decode()):
            await self._leases.release(room_id, holder)
            self._leases.released(room_id, holder)
        return False

    async def _holder_or_mine(self, room_id: str) -> bytes | None:
        """The room's lease holder's value, taking the lease first if nobody holds it."""
        holder = await self._leases.holder(room_id)
        if holder is not None:
            return holder
        lease = await self._leases.acquire(room_id)
        if lease is not None:
            return lease.value
        return await self._leases.holder(room_id)  # another process took it meanwhile

    def _catch_up_entry(self, room_id: str, replica: Replica, fields: dict[bytes, bytes]) -> None:
        kind = fields.get(b"k")
        if kind == FRAME:
            replica.apply_remote(fields[b"f"], fields.get(b"p", b""))
        elif kind == ERASED:
            self.unsubscribe(room_id, say=False)  # its stream is going: append nothing to it
            moved_to = fields.get(b"f", b"").decode()
            if moved_to:
                raise RoomMovedError(room_id, moved_to)
            raise RoomDeletedError(f"room {room_id} was deleted")
        elif kind == ACCESS:  # a join authorised before the change re-checks (LiveAccess)
            self._access(room_id, fields.get(b"f", b""))

    def _learn(self, process: bytes, position: str) -> None:
        """``process`` has a room live here: read its data stream from ``position`` on."""
        if not process or process in (self._me, b"operator"):
            return
        self._peers.setdefault(process, None)
        self._dead.pop(process, None)
        self._relevant_at[process] = time.monotonic()
        self._reading.setdefault(process, position)

    async def _wake_reader(self) -> None:
        """The rooms or processes read changed: make a reader inside its blocking read read anew."""
        if not self._in_read:
            return  # its next read names them
        async with self._redis.pipeline(transaction=False) as pipe:
            key = WAKE + self._me.decode()
            pipe.xadd(key, {"w": b""}, maxlen=1, approximate=False)
            pipe.pexpire(key, WAKE_TTL_MS)
            await pipe.execute()

    def position(self, room_id: str) -> str | None:
        """The last room stream id applied to the room's replica (None before its catch-up)."""
        return self._positions.get(room_id)

    def persisted(self, room_id: str, position: str | None) -> None:
        """Everything up to ``position`` is stored: those entries may be trimmed."""
        if position is None or position == START or self._trimmed.get(room_id) == position:
            return
        now = time.monotonic()
        if now - self._trimmed_at.get(room_id, -self._trim_every_s) >= self._trim_every_s:
            self._trimmed_at[room_id] = now
            self._trims[room_id] = position
            self._wake.set()

    def persistence(self, room_id: str) -> Persistence:
        """Here with the lease's fence; anywhere (unfenced) while Redis is unreachable."""
        if self.down:
            return PERSIST_HERE
        lease = self._leases.held.get(room_id)
        return Persistence(here=True, fence=lease.fence) if lease else PERSIST_ELSEWHERE

    async def claim(self, room_id: str) -> bool:
        """Hold the room's lease now if it is free (True too while Redis is unreachable)."""
        if self.down or room_id in self._leases.held:
            return True
        replica = self._replicas.get(room_id)
        try:
            lease = await self._leases.acquire(room_id)
        except (RedisError, OSError) as exc:
            self._outage(exc)
            return True
        if lease is not None and replica is not None:
            replica.became_persister()
        return lease is not None

    def stored(self, room_id: str, state_vector: bytes) -> None:
        """Tell the other replicas (their sockets get "saved"; idle ones may unload)."""
        if not self.quiet(room_id):
            self._queue(room_id, STORED, state_vector, data=True)

    def fenced(self, room_id: str) -> None:
        """Another process took the lease: stop writing the room."""
        self._leases.forget(room_id)
        self._speak(room_id)
        log.warning("persister fence refused; another process writes the room", room_id=room_id)

    def erase(self, room_id: str, moved_to: str | None = None) -> None:
        """Append the room's ERASED entry, then let its stream expire and delete its lease.

        The entry's body is the id a moved room went to (empty for a deleted room).
        """
        self.unsubscribe(room_id, say=False)  # its stream is going: append nothing to it
        self._drop_queued(room_id)
        self._queue(room_id, ERASED, (moved_to or "").encode())
        self._erasures.append(room_id)

    def on_erased(self, callback: Callable[[str, str | None], None]) -> None:
        """Call ``callback(room_id, moved_to)`` when another process deleted (moved) a live room."""
        self._on_erased = callback

    def access_changed(self, room_id: str, user_id: str | None) -> None:
        """Append an ACCESS entry: every process re-checks that user's sockets in the room."""
        self._queue(room_id, ACCESS, (user_id or "").encode())

    def on_access(self, callback: Callable[[str, str | None], None]) -> None:
        """Call ``callback(room_id, user_id)`` for another process's ACCESS entries.

        And ``callback(room_id, None)`` for every live room when Redis is back after an outage.
        """
        self._on_access = callback

    def _access(self, room_id: str, body: bytes) -> None:
        if self._on_access is not None:
            self._on_access(room_id, body.decode() or None)

    def _erased(self, room_id: str, body: bytes = b"") -> None:
        """Another process deleted (moved) the room: drop it here, and what it still had to send."""
        if self._on_erased is not None:
            self._on_erased(room_id, body.decode() or None)
        self.unsubscribe(room_id, say=False)  # its stream is going: append nothing to it
        self._drop_queued(room_id)

    def _speak(self, room_id: str) -> None:
        """A room that withheld frames is no longer quiet: append everything it has."""
        replica = self._replicas.get(room_id)
        if room_id not in self._silent or replica is None:
            return
        self._silent.discard(room_id)
        for frame in replica.catch_up(b"\x00"):
            self._queue(room_id, FRAME, frame)

    def _drop_queued(self, room_id: str) -> None:
        self._keep_queued(lambda entry: entry[0] != room_id)
        self._trims.pop(room_id, None)

    def _keep_queued(self, keep: Callable[[Queued], bool]) -> None:
        self._outbox = deque(entry for entry in self._outbox if keep(entry))
        self._outbox_bytes = sum(len(entry[2]) + OUTBOX_ENTRY_BYTES for entry in self._outbox)

    def backlogged(self) -> bool:
        """Whether the outbox is at its bound (rooms refuse edits until it drains)."""
        return self._outbox_bytes >= self._max_outbox_bytes

    @property
    def outbox_bytes(self) -> int:
        """The bytes waiting for Redis (frames and their entries' cost)."""
        return self._outbox_bytes

    async def start(self) -> None:
        """Start the publisher, the reader and the housekeeping tasks."""
        supervised = self._supervisor.start
        self._tasks = [
            supervised("stream-publisher", self._publish_loop),
            supervised("stream-reader", self._read_loop),
            supervised("lease-renewer", self._keep_loop),
        ]

    async def close(self) -> None:
        """Stop the loops, send what is queued and give leases up (bounded), disconnect."""
        self._closed = True
        self._stopping.set()
        self._wake.set()
        now = time.monotonic()
        for room_id, lease in list(self._leases.held.items()):  # others take over at once
            self._releases.append((room_id, lease.value, self._shared.get(room_id, 0.0) > now))
        self._leases.held.clear()
        # The loops see _closed and end (the reader once its blocking read returns, which the
        # wake entry makes it do): a task cancelled inside a redis-py command can leave that
        # command's connection unclosed.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._wake_reader()
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in running:
                task.cancel()
            if running:
                _, stuck = await asyncio.wait(running, timeout=CLOSE_TIMEOUT_S)
                if stuck:
                    log.warning("redis stream tasks did not stop in time", tasks=len(stuck))
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._append_outbox()
                await self._apply_erasures()
                await self._apply_releases()
        for client in (self._redis, self._reader):
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await client.aclose()

    # the publisher: appends, trims

    def _queue(self, room_id: str, kind: bytes, frame: bytes, *, data: bool = False) -> None:
        if self.backlogged():
            if self.down:
                # The full exchange after the outage brings every replica's whole state, and
                # meanwhile each process stores what it applies: keep only the control entries.
                self._keep_queued(lambda entry: entry[1] not in (FRAME, STORED, INTEREST))
                log.warning("redis outbox at its bound during an outage; frames left out")
            if self.backlogged() and (
                kind in (STORED, INTEREST) or (kind == FRAME and frame[:1] == AWARENESS)
            ):
                return  # presence is renewed and "stored" is said again; edits are refused
        self._outbox.append((room_id, kind, frame, data))
        self._outbox_bytes += len(frame) + OUTBOX_ENTRY_BYTES
        self._sent_at[room_id] = time.monotonic()
        self._wake.set()

    async def _publish_loop(self) -> None:
        delay = 0.05
        while not self._closed:
            await self._wake.wait()
            # At most one append every batch_ms: what arrives meanwhile goes with it, in one
            # data stream entry (issue #23: one XADD per frame was most of the Redis bill).
            wait = self._passed_at + self._batch_s - time.monotonic()
            if wait > 0:
                await self._pause(wait)
            self._wake.clear()
            self._passed_at = time.monotonic()
            try:
                await self._append_outbox()
                await self._apply_erasures()
                await self._apply_trims()
                await self._apply_releases()
            except (RedisError, OSError) as exc:
                self._outage(exc)
                self._wake.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                delay = 0.05

    async def _append_outbox(self) -> None:
        """Append what is queued now (frames queued meanwhile wait for the next pass)."""
        left = len(self._outbox)
        while left and self._outbox:
            batch = [self._outbox[index] for index in range(min(left, MAX_RECORDS))]
            left -= len(batch)
            records = [(room_id, kind, frame) for room_id, kind, frame, data in batch if data]
            async with self._redis.pipeline(transaction=False) as pipe:
                # Control entries first: a newcomer reads a data stream from (just before) the
                # answer it got, so the frames published after an answer must not precede it.
                for room_id, kind, frame, data in batch:
                    if not data:
                        pipe.xadd(
                            stream_key(room_id),
                            {"p": self._me, "k": kind, "f": frame},
                            maxlen=self._max_entries,
                            approximate=True,
                        )
                if records:
                    key = data_key(self._me)
                    pipe.xadd(
                        key,
                        {"b": encode_records(records)},
                        maxlen=self._max_entries,
                        approximate=True,
                    )
                    now = time.monotonic()
                    if now - self._expired_at >= EXPIRE_EVERY_S:
                        # A stopped process's data stream goes once nobody can still need it.
                        pipe.pexpire(key, max(2 * self._retain_ms, 120_000))
                        self._expired_at = now
                await pipe.execute()
            for _ in batch:  # only once Redis has them: a failed batch is sent again
                self._outbox_bytes -= len(self._outbox.popleft()[2]) + OUTBOX_ENTRY_BYTES

    async def _apply_erasures(self) -> None:
        while self._erasures:  # after _append_outbox: the ERASED entries are in the streams
            async with self._redis.pipeline(transaction=False) as pipe:
                expire_erased(pipe, self._erasures[0])
                await pipe.execute()
            self._erasures.pop(0)

    async def _apply_releases(self) -> None:
        """Release the leases given up, in one round trip; say so where others may want them."""
        if not self._releases:
            return
        releases = list(self._releases)
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id, value, say in releases:
                self._leases.queue_release(pipe, room_id, value)
                if say:  # after the release: the others try for it as they read this
                    pipe.xadd(
                        stream_key(room_id),
                        {"p": self._me, "k": RELEASED, "f": value},
                        maxlen=self._max_entries,
                        approximate=True,
                    )
            await pipe.execute()
        del self._releases[: len(releases)]

    async def _apply_trims(self) -> None:
        trims, self._trims = self._trims, {}
        if not trims:
            return
        oldest_kept = int(time.time() * 1000) - self._retain_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for room_id, position in trims.items():
                stored_ms, sequence = (int(part) for part in position.split("-", 1))
                # Entries below MINID go: the stored ones, but none younger than the retention.
                minid = f"{stored_ms}-{sequence + 1}" if stored_ms <= oldest_kept else oldest_kept
                pipe.xtrim(stream_key(room_id), minid=minid, approximate=False)
            await pipe.execute()
        self._trimmed.update(trims)

    # the reader

    async def _read_loop(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                if self.down:
                    await self._recover()
                await self._read_once()
            except (RedisError, OSError) as exc:
                self._outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception:
                # A bug, not an outage: entries being read may not have been applied. The
                # supervisor starts the reader again, and it exchanges state in full first.
                self.down = True
                raise
            else:
                delay = 0.05

    async def _read_once(self) -> None:
        if (time.monotonic() - self._read_at) * 1000 > self._retain_ms:
            # This process stalled past the retention: entries may have been trimmed unread.
            self._outage(TimeoutError("the stream reader stalled"))
            return
        # Every live room's stream (control entries: rare) and the data streams of the
        # processes this one shares rooms with, in one blocking read that any of them wakes.
        # While data streams keep the reader busy, the room streams are named at most every
        # ROOMS_EVERY_S: naming a hundred keys in each of ~80 reads a second cost CPU for
        # entries that come a few times a minute.
        issued = time.monotonic()
        rooms = not self._reading or issued >= self._rooms_read_at
        streams = {
            stream_key(room_id): position
            for room_id, position in self._positions.items()
            if position is not None and rooms
        }
        if rooms and not streams:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.05)
            self._read_at = time.monotonic()
            return
        block = self._block_ms
        if rooms:
            self._rooms_read_at = issued + ROOMS_EVERY_S
        else:
            block = max(1, min(block, int((self._rooms_read_at - issued) * 1000)))
        for process, position in self._reading.items():
            streams[data_key(process)] = position
        wake = WAKE + self._me.decode()
        streams[wake] = self._wake_position
        self._in_read = True
        try:
            answer: Any = await self._reader.xread(
                streams,  # type: ignore[arg-type]
                count=1000,
                block=block,
            )
        finally:
            self._in_read = False
        self._read_at = time.monotonic()
        if (self._read_at - issued) * 1000 > self._retain_ms:
            # The answer came back after the retention (this process was stopped, say): what
            # was appended meanwhile may be trimmed unread. Read this, then exchange in full.
            self._outage(TimeoutError("the stream reader was held past the retention"))
        entries = self._dispatch(answer)
        if 0 < entries < GATHER_BELOW:
            # Let a few more entries arrive before the next call: one XREAD per entry or two
            # made the reads most of the bus's cost, for a delay of a few ms across processes.
            await asyncio.sleep(GATHER_S)

    def _dispatch(self, answer: Any) -> int:  # noqa: ANN401 - redis-py's XREAD reply
        """Hand each entry read to its stream's kind; how many there were."""
        entries = 0
        for raw_key, raw in answer or []:
            key = raw_key.decode()
            for entry_id, fields in _entries(raw):
                entries += 1
                if key.startswith(PREFIX):
                    self._receive(key[len(PREFIX) :], entry_id, fields)
                elif key.startswith(DATA):
                    self._receive_data(key[len(DATA) :].encode(), entry_id, fields)
                else:
                    self._wake_position = entry_id
        return entries

    def _receive_data(self, process: bytes, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """Apply another process's data stream entry to the live rooms it names."""
        if process not in self._reading:  # no longer read (judged dead meanwhile)
            return
        self._reading[process] = entry_id
        now = time.monotonic()
        for room_id, kind, body in decode_records(fields.get(b"b", b"")):
            # A replica still catching up applies them too: the answers it waits for hold
            # only what their senders had before they read its request.
            replica = self._replicas.get(room_id)
            if replica is None:
                continue
            self._relevant_at[process] = now
            self._shared[room_id] = now + SHARED_FOR_S
            self._speak(room_id)
            if kind == FRAME:
                replica.apply_remote(body, process)
            elif kind == STORED:
                replica.stored_elsewhere(body)

    def _receive(self, room_id: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        replica = self._replicas.get(room_id)
        if replica is None or self._positions.get(room_id) is None:
            return
        self._positions[room_id] = entry_id
        sender = fields.get(b"p", b"")
        if sender == self._me:
            return
        kind, body = fields.get(b"k"), fields.get(b"f", b"")
        if kind in SHARING:
            self._learn(sender, _just_before(entry_id))
            self._shared[room_id] = time.monotonic() + SHARED_FOR_S
            if kind != SYNC_REQUEST:  # a request gets what it lacks (below)
                self._speak(room_id)
        if kind in (FRAME, RELAYED):
            replica.apply_remote(body, sender)
        elif kind == SYNC_REQUEST:
            self._answer(room_id, replica, body)
        elif kind == RELEASED:
            self._leases.released(room_id, body)
        elif kind == ERASED:
            self._erased(room_id, body)
        elif kind == ACCESS:
            self._access(room_id, body)

    def _answer(self, room_id: str, replica: Replica, state_vector: bytes) -> None:
        """Send a replica at ``state_vector`` what it lacks, then say this process answered."""
        for frame in replica.catch_up(state_vector):
            self._queue(room_id, FRAME, frame)
        self._silent.discard(room_id)  # the only other replica has everything now
        self._queue(room_id, ANSWERED, b"")

    async def _recover(self) -> None:
        """Back from an outage: every live room does a full state exchange, then reads on."""
        await self._redis.ping()
        self.down = False
        self._read_at = time.monotonic()
        log.info("redis streams reachable again; full state exchange for live rooms")
        for room_id, replica in list(self._replicas.items()):
            for frame in replica.catch_up(b"\x00"):  # everything this replica has
                self._queue(room_id, FRAME, frame)
            self._queue(room_id, SYNC_REQUEST, replica.state_vector())
            if self._positions.get(room_id) is None:
                try:
                    await self.catch_up(room_id)
                except RoomMovedError as moved:  # moved during the outage: the same, with its id
                    self._erased(room_id, moved.new_room_id.encode())
                except RoomDeletedError:  # deleted during the outage: drop it here too
                    self._erased(room_id)
        # Rights changed during the outage may never arrive (an outbox past its bound, a Redis
        # that lost its streams): every live room re-checks its sockets against the database.
        for room_id in list(self._replicas):
            self._access(room_id, b"")

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake as soon as the bus closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # housekeeping: this process's key, the others', the leases

    async def _keep_loop(self) -> None:
        while not self._closed:
            try:
                await self._keep()
            except (RedisError, OSError) as exc:
                self._outage(exc)
                # Nobody's key can be read meanwhile: judge no one dead for it.
                self._peers = dict.fromkeys(self._peers)
            await self._pause(HEARTBEAT_S)

    async def _keep(self) -> None:
        """One round: renew this process's key, look at the others', keep the leases."""
        if not self._replicas:  # no live room: nobody needs to know this process is alive
            return
        # Rooms not caught up with their stream must not write yet.
        live = [room for room, position in self._positions.items() if position is not None]
        now = time.monotonic()
        self._forget_stale(now)
        held = self._leases.held
        watching = any(until > now for until in self._shared.values()) or any(
            room not in held for room in live
        )
        interval = HEARTBEAT_S if watching else QUIET_HEARTBEAT_S
        beat = now - self._beat_at >= interval * 0.9
        peers = [peer for peer in self._peers if peer != self._me] if beat and watching else []

        def also(pipe: Any) -> int:  # noqa: ANN401 - redis-py's Pipeline is untyped
            if not beat:
                return 0
            ttl = ALIVE_TTL_MS if watching else QUIET_ALIVE_TTL_MS
            pipe.set(ALIVE + self._me.decode(), b"1", px=ttl)
            for peer in peers:
                pipe.exists(ALIVE + peer.decode())
            return 1 + len(peers)

        taken, answers = await self._leases.keep(live, self._dead, also)
        for value in self._leases.holders.values():  # whose death would hand a lease over
            if process_of(value) not in self._dead:
                self._peers.setdefault(process_of(value), None)
        if beat:
            self._beat_at = now
            self._judge(peers, answers[1:])
        self._say_interest(live, now)
        for room_id in taken:
            replica = self._replicas.get(room_id)
            if replica is None:  # unloaded while the leases were out: give this one up
                lease = held.pop(room_id)
                self._releases.append((room_id, lease.value, True))
                self._wake.set()
                continue
            log.info("took the room's persister lease", room_id=room_id)
            replica.became_persister()

    def _forget_stale(self, now: float) -> None:
        """Forget long-dead processes, and stop reading data streams that name no room here."""
        for process, at in list(self._dead.items()):
            if now - at > DEAD_FORGOTTEN_S:
                del self._dead[process]
        for process, at in list(self._relevant_at.items()):
            if now - at > SHARED_FOR_S:
                del self._relevant_at[process]
                self._reading.pop(process, None)

    def _say_interest(self, live: list[str], now: float) -> None:
        """Quiet rooms whose lease was lost speak; shared rooms silent for long say so."""
        for room_id in live:
            if room_id not in self._leases.held:
                self._speak(room_id)  # a quiet room whose lease was lost
            if self.down or self.quiet(room_id):
                continue
            if now - self._sent_at.get(room_id, 0.0) >= INTEREST_S:
                self._queue(room_id, INTEREST, b"", data=True)  # keep the others streaming

    def _judge(self, peers: list[bytes], alive: list[Any]) -> None:
        """Processes whose key has been gone for DEAD_AFTER_S died: forget their presence."""
        now = time.monotonic()
        for peer, present in zip(peers, alive, strict=True):
            if present:
                self._peers[peer] = None
                continue
            missing_since = self._peers.get(peer) or now
            self._peers[peer] = missing_since
            if now - missing_since >= DEAD_AFTER_S:
                log.info(
                    "a server process died; removing its sockets' presence", peer=peer.decode()
                )
                del self._peers[peer]
                self._reading.pop(peer, None)
                self._relevant_at.pop(peer, None)
                self._dead[peer] = now  # its leases are taken over in the next round
                for replica in list(self._replicas.values()):
                    replica.drop_process(peer)

    def _outage(self, error: BaseException) -> None:
        if not self.down:
            self.down = True
            log.warning(
                "redis streams unreachable; rooms keep working within this process",
                error=repr(error),
            )
