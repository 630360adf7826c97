"""The live rooms of this process: load once, unload when idle."""

from __future__ import annotations

import asyncio
import contextvars
from functools import partial
from typing import Any

import structlog
from pycrdt import Doc

from pairpilot.bus import RoomBus
from pairpilot.errors import PairPilotError, StorageError
from pairpilot.guardrails import DocumentQuota
from pairpilot.observability.metrics import Metrics
from pairpilot.observability.sentry import report
from pairpilot.observability.tracing import span, tag
from pairpilot.storage import RoomStore
from pairpilot.sync.files import text_bytes
from pairpilot.sync.flusher import Flusher
from pairpilot.sync.protocol import EMPTY_UPDATE
from pairpilot.sync.room import UNLIMITED, Room
from pairpilot.sync.session import SavedHolds

log = structlog.get_logger(__name__)
# The close code of a deleted room's sockets (web/ws.py maps RoomDeletedError to it too).
DELETED_CLOSE = 4410
DELETED_REASON = "This room was deleted"
# The close code of a moved room's sockets; the reason is the id it moved to (the page goes
# there). web/ws.py maps RoomMovedError to it too.
MOVED_CLOSE = 4301


class RoomRegistry:
    """Holds one Room per live room id.

    Concurrent first connects share one load. A room whose last session left is flushed,
    compacted and dropped after ``idle_unload_ms``; if storage fails it stays in memory and
    the unload is retried later, so nothing is lost.
    """

    def __init__(  # noqa: PLR0913 - keyword-only configuration (pyproject.toml's max-args note)
        self,
        store: RoomStore,
        bus: RoomBus,
        flusher: Flusher,
        *,
        idle_unload_ms: int,
        max_awareness_bytes: int,
        metrics: Metrics,
        max_room_bytes: int = UNLIMITED,
        max_pending_bytes: int = UNLIMITED,
    ) -> None:
        self.rooms: dict[str, Room] = {}
        self._max_pending_bytes = max_pending_bytes
        self._store = store
        self._bus = bus
        self._flusher = flusher
        self._idle_s = idle_unload_ms / 1000
        self._max_awareness_bytes = max_awareness_bytes
        self._max_room_bytes = max_room_bytes
        self._metrics = metrics
        self._holds = SavedHolds()  # every room's held "saved" messages, one timer
        metrics.watch_rooms(
            lambda: len(self.rooms), lambda: sum(len(r.sessions) for r in self.rooms.values())
        )
        self._loading: dict[str, asyncio.Task[Room]] = {}
        self._idle: dict[str, asyncio.TimerHandle] = {}
        self._unloads: set[asyncio.Task[None]] = set()
        self._unloading: set[Room] = set()  # rooms with an unload in flight (one each at most)
        self._closed = False  # shutting down: no more idle timers or unloads
        bus.on_erased(self._deleted_elsewhere)  # another process deleted (moved) a room
        self._carrying: set[asyncio.Task[None]] = set()

    async def acquire(self, room_id: str) -> Room:
        """The live room, loading it from storage first if needed (StorageError if that fails)."""
        timer = self._idle.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        room = self.rooms.get(room_id)
        if room is None:
            task = self._loading.get(room_id)
            if task is None:
                task = asyncio.create_task(self._load(room_id), name=f"load-{room_id}")
                self._loading[room_id] = task
                task.add_done_callback(lambda _: self._loading.pop(room_id, None))
            room = await asyncio.shield(task)
        room.borrowers += 1  # until release: an unload in flight now keeps the room
        return room

    def release(self, room: Room) -> None:
        """The caller is done with the room it acquired: idle once nobody holds it."""
        room.borrowers = max(0, room.borrowers - 1)
        self._idle_later(room)

    def _idle_later(self, room: Room) -> None:
        """Schedule the idle unload once nobody holds the room (not once closing)."""
        if (
            not room.borrowers
            and not room.sessions
            and room.id not in self._idle
            and not self._closed
        ):
            loop = asyncio.get_running_loop()
            # A fresh context: the unload must not log under the last connection's ids.
            self._idle[room.id] = loop.call_later(
                self._idle_s, self._start_unload, room, context=contextvars.Context()
            )

    async def close(self) -> None:
        """Stop timers, let loads and unloads in flight finish, write everything pending.

        Storage and the bus close right after this (server shutdown): a load or an unload
        still running then would hold a database or Redis connection across their closing,
        and leave it unclosed. So nothing schedules a new unload once this has begun (an
        unload that ends by retrying, or a session that leaves, used to start a timer that
        fired after the engine was disposed), and the flusher's loop stops before the last
        write (``Flusher.close``).
        """
        self._closed = True
        for timer in self._idle.values():
            timer.cancel()
        self._idle.clear()
        await asyncio.gather(
            *self._loading.values(), *self._unloads, *self._carrying, return_exceptions=True
        )
        await self._flusher.close()
        self._holds.close()

    async def delete(self, room_id: str) -> int:
        """The room's rows are deleted: drop it unwritten, close its sockets (4410).

        The other processes are told through the bus and do the same; returns how many
        sockets were closed here.
        """
        loading = self._loading.get(room_id)
        if loading is not None:  # a load that began before the delete ends first
            await asyncio.gather(loading, return_exceptions=True)
        closed = self._drop_deleted(room_id)
        self._bus.erase(room_id)
        return closed

    async def move(self, room_id: str, new_id: str) -> int:
        """The room's rows moved to ``new_id``: drop it unwritten, close its sockets (4301).

        What its live document held that storage may not have yet goes into the room at
        ``new_id`` (a CRDT merge), so nothing acknowledged is lost and nothing is written
        under the old id; the other processes do the same. Returns the sockets closed here.
        """
        loading = self._loading.get(room_id)
        if loading is not None:
            await asyncio.gather(loading, return_exceptions=True)
        room = self.rooms.get(room_id)
        closed = self._drop_deleted(room_id, new_id)
        self._bus.erase(room_id, new_id)
        if room is not None:
            await self._carry_over(room.doc, new_id)
        return closed

    def _deleted_elsewhere(self, room_id: str, moved_to: str | None) -> None:
        room = self.rooms.get(room_id)
        self._drop_deleted(room_id, moved_to)
        if room is not None and moved_to is not None:
            task = asyncio.create_task(self._carry_over(room.doc, moved_to), name=f"move-{room_id}")
            self._carrying.add(task)
            task.add_done_callback(self._carrying.discard)

    async def _carry_over(self, doc: Doc[Any], new_id: str) -> None:
        """Merge what a moved room's document has and the room at ``new_id`` lacks into it."""
        try:
            room = await self.acquire(new_id)
        except PairPilotError as exc:
            log.error("a moved room's live edits were not carried over", room_id=new_id)
            report(exc, task="move", room_id=new_id)
            return
        try:
            missing = doc.get_update(room.doc.get_state())
            if missing != EMPTY_UPDATE:
                room.apply_update(missing)
        except PairPilotError as exc:
            log.error("a moved room's live edits were refused", room_id=new_id, error=str(exc))
            report(exc, task="move", room_id=new_id)
        finally:
            self.release(room)

    def _drop_deleted(self, room_id: str, moved_to: str | None = None) -> int:
        """Drop a deleted (moved) room from memory without writing it, closing its sockets."""
        timer = self._idle.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        room = self.rooms.pop(room_id, None)
        if room is None:
            return 0
        if moved_to is None:
            closed = room.delete(DELETED_CLOSE, DELETED_REASON)
        else:
            closed = room.delete(MOVED_CLOSE, moved_to)
        room.close()
        log.info("room deleted", room_id=room_id, sockets=closed, moved_to=moved_to)
        return closed

    async def _load(self, room_id: str) -> Room:
        with span("room.load", room_id=room_id):
            stored = await self._store.load(room_id)
            tag(bytes=len(stored.snapshot or b"") + stored.log_bytes)
            doc: Doc[Any] = Doc()
            content = stored.merged()
            if content is not None:
                doc.apply_update(content)
        room = Room(
            room_id,
            doc,
            bus=self._bus,
            on_update=self._flusher.record,
            max_awareness_bytes=self._max_awareness_bytes,
            metrics=self._metrics,
            holds=self._holds,
        )
        # The stored update's length: an upper bound of the encoded document (the quota
        # measures it exactly when it matters) without encoding the document at load.
        size = len(content) if content is not None else len(EMPTY_UPDATE)
        room.quota = DocumentQuota(self._max_room_bytes, size, doc, partial(text_bytes, doc))
        # REST writes measure it off the loop when they must (stored, then encoded in the worker).
        room.quota.measurer = partial(self._flusher.measure, room)
        room.quota.on_measure = self._count_measure
        room.max_pending_bytes = self._max_pending_bytes
        room.snapshot_bytes = len(stored.snapshot or b"")
        room.log_bytes = stored.log_bytes
        room.log_count = len(stored.updates)
        room.updated_at = stored.updated_at.timestamp() if stored.updated_at else None
        if stored.versioned_at is not None:
            room.versioned_at = stored.versioned_at.timestamp()
        # Other processes' replicas may hold edits storage has not seen yet: take them first.
        await self._bus.catch_up(room_id)
        self.rooms[room_id] = room
        log.info("room loaded", room_id=room_id, bytes=room.snapshot_bytes + room.log_bytes)
        return room

    def _count_measure(self, place: str) -> None:
        self._metrics.quota_measures.labels(place).inc()

    def _start_unload(self, room: Room) -> None:
        self._idle.pop(room.id, None)
        # One unload per room at a time; it looks at the room again when it is done (below).
        # Starting one per idle timer let a room that people kept leaving while its unload
        # waited for storage pile up one waiting unload per visit, each compacting the room
        # again (bench/soak.py found thousands in flight for a hundred rooms).
        if room in self._unloading or self.rooms.get(room.id) is not room:
            return
        self._unloading.add(room)
        task = asyncio.create_task(self._unload(room), name=f"unload-{room.id}")
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)
        task.add_done_callback(lambda _: self._unloading.discard(room))

    def backlogged(self) -> list[str]:
        """The live rooms whose updates waiting for storage are at their bound."""
        return [r.id for r in self.rooms.values() if r.pending_bytes >= r.max_pending_bytes]

    async def _unload(self, room: Room) -> None:
        """Store and drop an idle room; on any failure it stays and is tried again later."""
        try:
            await self._unload_once(room)
        except StorageError:
            self._idle_later(room)  # said by _store_for_unload
        except Exception as exc:  # noqa: BLE001 - a bug: said once, the room kept, tried again
            self._flusher.supervisor.failed("unload", exc, room_id=room.id)
            self._idle_later(room)
        else:
            self._flusher.supervisor.succeeded("unload")

    async def _unload_once(self, room: Room) -> None:
        if not await self._bus.claim(room.id):
            # Another process persists the room: drop it once storage holds what it has.
            room.drop_pending()
            if not room.stored_covers_doc():
                log.info("unload waits for the persister to store the room", room_id=room.id)
                self._idle_later(room)
                return
        else:
            await self._store_for_unload(room)
        # Only now, with nothing awaited in between, is the room checked and dropped.
        if room.sessions or room.borrowers or self.rooms.get(room.id) is not room:
            return  # someone came back (their release schedules the next try)
        if room.pending:  # edits came in while it was being stored: an idle timer it skipped
            self._idle_later(room)  # (see _start_unload) would have retried, so retry now
            return
        del self.rooms[room.id]
        room.close()
        log.info("room unloaded", room_id=room.id)

    async def _store_for_unload(self, room: Room) -> None:
        """Flush and compact (a checkpoint); StorageError if the flush failed."""
        try:
            await self._flusher.flush_room(room)
        except StorageError as exc:
            log.error("unload flush failed; keeping the room", room_id=room.id, error=str(exc))
            report(exc, task="unload", room_id=room.id)
            raise
        if room.log_count or room.unversioned:
            try:
                await self._flusher.compact(room, unloading=True)
            except StorageError as exc:
                log.error("unload compaction failed", room_id=room.id, error=str(exc))
