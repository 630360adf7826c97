"""Batched, retried persistence of applied updates, and the compaction policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import TypeVar

import structlog

from pairpilot.errors import StorageError
from pairpilot.observability.memory import HeapTrimmer
from pairpilot.observability.metrics import Metrics
from pairpilot.observability.sentry import report
from pairpilot.observability.tracing import span, tag
from pairpilot.storage import RoomStore
from pairpilot.storage.merging import encoded_length
from pairpilot.storage.store import fold
from pairpilot.supervisor import Supervisor
from pairpilot.sync.room import Room
from pairpilot.sync.session import Session
from pairpilot.typing import WriteWatcher

T = TypeVar("T")

log = structlog.get_logger(__name__)
# A room's updates taken for a write: them, the state they bring it to, the sessions to tell.
Taken = tuple[Room, list[bytes], bytes, list[Session]]
# Rooms marked saved after a write before the flusher lets the event loop run other callbacks
# (relayed frames): marking is ~10 us a room, and one step for a whole batch was a stall that
# reached the fan-out's p99.
MARK_ROOMS_PER_STEP = 25
# A flush span names this many of its rooms (``pairpilot.rooms`` counts them all).
MAX_TRACED_ROOMS = 100
# Updates at least this big get log rows of their own instead of being folded with the room's
# others on the event loop: merging two 8 MB uploads of one flush held it 90-140 ms. The next
# compaction folds them, in the merge worker (storage/merging.py's threshold).
FOLD_MAX_BYTES = 256 * 1024
# A room's log rows of one write: its updates, folded into one row unless big (``rows_of``).
Batch = list[tuple[str, list[bytes]]]


def rows_of(updates: list[bytes]) -> list[bytes]:
    """The log rows that store ``updates``: one folded row, and each big update as it is."""
    if len(updates) == 1:
        return updates
    big = [update for update in updates if len(update) >= FOLD_MAX_BYTES]
    if not big:
        return [fold(updates)]
    small = [update for update in updates if len(update) < FOLD_MAX_BYTES]
    return [fold(small), *big] if small else big


class Flusher:
    """Writes rooms' pending updates to the log within ``flush_ms``, in one batch for all rooms.

    A failed write keeps the updates in memory and is retried with capped exponential
    backoff; edits keep flowing meanwhile. Any other exception gives the updates it took back
    to their rooms, and ends the loop for its supervisor to start again. Writes are serialised,
    so a room that is being unloaded never races a batch that is still in flight. Compactions
    run beside the writes (one at a time per room) and never hold them up.
    """

    def __init__(
        self,
        store: RoomStore,
        *,
        flush_ms: int,
        retry_max_ms: int,
        compact_min_bytes: int,
        compact_max_updates: int,
        version_min_s: int,
        metrics: Metrics,
    ) -> None:
        self._store = store
        # Runs the loop, and hears of compactions that fail unexpectedly (``start`` sets it).
        self.supervisor = Supervisor()
        self._interval = flush_ms / 1000
        self._retry_max = retry_max_ms / 1000
        self._compact_min_bytes = compact_min_bytes
        self._compact_max_updates = compact_max_updates
        self._version_min_s = version_min_s
        self._dirty: dict[str, Room] = {}
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self.failures = 0
        self._metrics = metrics
        # Told of each write (webhooks' room.updated); must not block.
        self.watcher: WriteWatcher | None = None
        self._failing = False
        self._compacting: dict[str, asyncio.Task[None]] = {}  # one compaction per room
        self._task: asyncio.Task[None] | None = None  # the loop, once started
        # Written batches and compactions let big buffers go: their pages back to the OS.
        self.trimmer = HeapTrimmer()

    def record(self, room: Room, update: bytes) -> None:
        """Queue an applied update for storage (Room's on_update hook)."""
        room.pending.append(update)
        room.pending_bytes += len(update)
        room.unversioned = True
        self._dirty[room.id] = room
        self._wake.set()

    def start(self, supervisor: Supervisor | None = None) -> asyncio.Task[None]:
        """Run the flush loop in a task under ``supervisor`` (``close`` stops it)."""
        if supervisor is not None:
            self.supervisor = supervisor
        self._task = self.supervisor.start("flusher", self.run)
        return self._task

    async def close(self) -> None:
        """Stop the loop, write every pending update and let compactions end (shutdown).

        A write the loop had in flight gives its updates back when it is cancelled, so the
        last write takes them. StorageError if that write fails.
        """
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.flush_all()
        self.trimmer.cancel()

    async def run(self) -> None:
        """Flush forever: a batch at most ``flush_ms`` after its first update."""
        delay = self._interval
        if self._dirty:  # started again after a failure: what it gave back is due
            self._wake.set()
        while True:
            await self._wake.wait()
            await asyncio.sleep(delay)
            self._wake.clear()
            try:
                await self._write(list(self._dirty.values()))
            except StorageError as exc:
                self.failures += 1
                self._metrics.flush_failures.inc()
                delay = min(max(delay * 2, self._interval), self._retry_max)
                self._wake.set()
                log.error("flush failed; retrying", retry_s=delay, error=str(exc.__cause__ or exc))
                if not self._failing:  # one report per outage, not one per retry
                    self._failing = True
                    report(exc, task="flush", room_id=",".join(sorted(self._dirty))[:200])
            else:
                delay = self._interval
                self._failing = False

    async def flush_room(self, room: Room) -> None:
        """Write this room's pending updates now; StorageError if that fails."""
        await self._write([room])

    async def measure(self, room: Room) -> int | None:
        """The room's encoded size, measured off the loop; None when storage cannot tell it."""
        return await self.on_stored(room, encoded_length, "quota measure")

    async def on_stored(self, room: Room, job: Callable[[list[bytes]], T], what: str) -> T | None:
        """``job(parts)`` of the room's stored document, off the loop; None if it cannot be.

        The room's updates are written first, so the stored document holds every update the
        room applied before the call (a quota's measure, an export of a big live room). None
        when another process writes the room (its updates may not be stored yet) or the write
        or the read fails (logged as ``what``): the caller then does without it.
        """
        if not room.persistence().here:
            return None
        try:
            await self.flush_room(room)
            if room.partial or not room.persistence().here:
                return None  # fenced meanwhile: what it applied may not be stored
            return await self._store.on_stored(room.id, job, size_hint=room.quota.size)
        except StorageError as exc:
            error = str(exc.__cause__ or exc)
            log.warning("stored read failed", purpose=what, room_id=room.id, error=error)
            return None

    async def flush_all(self) -> None:
        """Write every pending update now and let compactions in flight end (shutdown).

        StorageError if the write fails.
        """
        try:
            await self._write(list(self._dirty.values()))
        finally:
            await asyncio.gather(*self._compacting.values(), return_exceptions=True)

    async def compact(self, room: Room, *, unloading: bool = False) -> None:
        """Fold the room's log into its snapshot; StorageError if that fails.

        The result is also an automatic version when the room changed since its last one and
        it is unloading or its last version is ``version_min_s`` old. A compaction of the room
        already running is waited for first (one at a time per room).
        """
        while (running := self._compacting.get(room.id)) is not None and not running.done():
            await asyncio.wait({running})
        checkpoint = room.unversioned and (unloading or self._version_due(room))
        await self._start_compaction(room, self._compact(room, checkpoint=checkpoint))
        # Flushes go on during a compaction: let a batch that took this room's updates end, so
        # the caller (an unload) sees them either stored or back in ``pending``.
        async with self._write_lock:
            pass

    def _start_background(self, room: Room) -> None:
        checkpoint = room.unversioned and self._version_due(room)
        self._start_compaction(room, self._compact_in_background(room, checkpoint=checkpoint))

    def _start_compaction(
        self, room: Room, compaction: Coroutine[None, None, None]
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(compaction, name=f"compact-{room.id}")
        self._compacting[room.id] = task
        task.add_done_callback(lambda done: self._compaction_ended(room.id, done))
        return task

    def _compaction_ended(self, room_id: str, task: asyncio.Task[None]) -> None:
        if self._compacting.get(room_id) is task:
            del self._compacting[room_id]

    async def _compact(self, room: Room, *, checkpoint: bool) -> None:
        # Flushes go on meanwhile, so only the log as it was at the start is surely folded in;
        # rows written since stay counted (a later compaction folds them).
        log_bytes, log_count = room.log_bytes, room.log_count
        if checkpoint:  # updates not yet in the log when it reads it are not in the version
            room.unversioned = bool(room.pending) or room.writing
        try:
            with span("compaction", room_id=room.id, checkpoint=checkpoint, log_bytes=log_bytes):
                room.snapshot_bytes = await self._store.compact(
                    room.id, checkpoint=checkpoint, size_hint=room.snapshot_bytes + log_bytes
                )
                tag(bytes=room.snapshot_bytes)
        except Exception:
            self._metrics.compactions.labels("failed").inc()
            if checkpoint:
                room.unversioned = True
            raise
        room.log_bytes = max(0, room.log_bytes - log_bytes)
        room.log_count = max(0, room.log_count - log_count)
        self.trimmer.freed(room.snapshot_bytes + log_bytes)
        if checkpoint:
            room.versioned_at = time.time()
        self._metrics.compactions.labels("done").inc()

    async def _compact_in_background(self, room: Room, *, checkpoint: bool) -> None:
        """A compaction the flusher decided on; a failure is logged, and retried after a flush."""
        try:
            await self._compact(room, checkpoint=checkpoint)
        except StorageError as exc:
            log.error("compaction failed", room_id=room.id, error=str(exc.__cause__ or exc))
            report(exc, task="compaction", room_id=room.id)
        except Exception as exc:  # noqa: BLE001 - a bug: said once, and the next flush tries again
            self.supervisor.failed("compaction", exc, room_id=room.id)
        else:
            self.supervisor.succeeded("compaction")

    async def _write(self, rooms: list[Room]) -> None:
        async with self._write_lock:
            taken: list[Taken] = []
            try:
                batch, fences = self._take(rooms, taken)
                windows = self._windows(batch)
                started = time.perf_counter()
                with span(
                    "flush",
                    rooms=len(batch),
                    room_ids=[room_id for room_id, _ in batch[:MAX_TRACED_ROOMS]],
                    updates=sum(len(updates) for _, updates, _, _ in taken),
                    bytes=sum(len(row) for _, rows in batch for row in rows),
                ):
                    refused = await self._append(batch, fences, windows)
                self._metrics.flush_seconds.observe(time.perf_counter() - started)
            except BaseException:
                # Whatever failed (storage, a fold, a cancellation at shutdown), the updates go
                # back to their rooms: rows that were committed anyway are written twice, which
                # is harmless (an update applies once); dropped would be edits lost.
                self._give_back(taken)
                raise
            written: list[Room] = []
            for index, ((room, _, state_vector, waiting), (_, rows)) in enumerate(
                zip(taken, batch, strict=True)
            ):
                try:
                    if index and not index % MARK_ROOMS_PER_STEP:
                        await asyncio.sleep(0)  # let frames through: 1,000s of rooms a batch
                    if room.id in (refused or ()):
                        room.return_pending([], waiting)  # the new persister writes them
                        room.fenced()
                        continue
                    room.log_bytes += sum(len(row) for row in rows)
                    room.log_count += len(rows)
                    room.mark_saved(state_vector, waiting)
                except BaseException:
                    self._give_back(taken[index:])  # stored, but not yet marked: written again
                    raise
                written.append(room)
            self.trimmer.freed(sum(len(row) for _, rows in batch for row in rows))
        if self.watcher is not None and written:
            self.watcher.written([room.id for room in written], windows)
        # Compactions run beside the flushes (their merge in a worker process when it is
        # big): a flush never waits for one, so the log keeps up with the edits.
        for room in written:
            if room.id not in self._compacting and self._needs_compaction(room):
                self._start_background(room)

    def _windows(self, batch: Batch) -> list[str]:
        """The rooms of ``batch`` whose write also stores a pending ``room.updated`` row."""
        if self.watcher is None or not batch:
            return []
        return self.watcher.windows([room_id for room_id, _ in batch])

    async def _append(self, batch: Batch, fences: dict[str, int], windows: list[str]) -> set[str]:
        logged = [(room_id, row) for room_id, rows in batch for row in rows]
        # Only what is there is passed: most writes have neither.
        if windows:
            return await self._store.append(logged, fences or None, windows=windows)
        if fences:
            return await self._store.append(logged, fences)
        return await self._store.append(logged)

    def _give_back(self, taken: list[Taken]) -> None:
        for room, updates, _, waiting in taken:
            room.return_pending(updates, waiting)
            self._dirty[room.id] = room

    def _take(self, rooms: list[Room], taken: list[Taken]) -> tuple[Batch, dict[str, int]]:
        """The rooms' pending updates this process writes, as a batch, and their fences.

        Each room's updates are added to ``taken`` as soon as they leave the room, so a caller
        whose take fails half way gives back every one of them.
        """
        batch: Batch = []
        fences: dict[str, int] = {}
        for room in rooms:
            self._dirty.pop(room.id, None)
            if not room.pending:
                continue
            persistence = room.persistence()
            if not persistence.here:  # another process's lease: it writes these
                self.trimmer.freed(room.pending_bytes)  # let go here all the same
                room.drop_pending()
                continue
            updates, state_vector, waiting = room.take_pending()
            taken.append((room, updates, state_vector, waiting))
            batch.append((room.id, rows_of(updates)))
            if persistence.fence is not None:
                fences[room.id] = persistence.fence
        return batch, fences

    def _needs_compaction(self, room: Room) -> bool:
        # Compacting once the log reaches half the snapshot keeps storage written per edit
        # proportional to the edit (amortised), not to the document.
        threshold = max(self._compact_min_bytes, room.snapshot_bytes // 2)
        return (
            room.log_bytes >= threshold
            or room.log_count >= self._compact_max_updates
            or (room.unversioned and self._version_due(room))
        )

    def _version_due(self, room: Room) -> bool:
        return time.time() - room.versioned_at >= self._version_min_s
