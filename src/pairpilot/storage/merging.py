"""CRDT merges for compaction, the big ones in a worker process so the event loop keeps serving.

pycrdt 0.14 holds the GIL inside ``merge_updates``, ``Doc.apply_update`` and ``get_update``
(measured: a thread merging a 1.4 MB snapshot with its log stopped the main thread for the whole
merge, 90-200 ms), so a thread would not help: a merge at least ``offload_min_bytes`` big runs
in one worker process, started at the first such merge and kept for the next. Small documents
(the common case, and every room of a fan-out) never start it. The REST API's bulk work runs
there too (``Merger.run``: zip imports, uploads, exports, snapshot bodies; sync/transfer.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from pycrdt import Doc, get_update

from pairpilot.errors import StorageError
from pairpilot.storage.store import fold

# Below this many bytes of input a merge takes a few milliseconds: sending it to the worker
# would cost about as much as doing it here (bench/README.md, "Durability at 3,200 edits/s").
OFFLOAD_MIN_BYTES = 256 * 1024
# The worker runs at a lower priority than the server: on a shared core, the event loop comes
# first and the compaction takes what is left.
WORKER_NICE = 5
# A worker with no merge for this long is stopped: it holds about 30 MB (bench/README.md), and a
# room big enough to need it compacts every few seconds while people type into it.
IDLE_STOP_S = 60.0
# How often the worker checks that the server that started it is still its parent.
PARENT_POLL_S = 1.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Merged:
    """A compaction's result: the folded update and, for a checkpoint, the document's encoding."""

    update: bytes
    document: bytes | None = None


def merge(parts: Sequence[bytes], *, encode: bool = False) -> Merged:
    """Fold ``parts`` (a snapshot and the log after it) into one update, here and now.

    With ``encode`` the result is also re-encoded as a document writes it: a merge keeps every
    keystroke its own item, a document squashes a client's consecutive ones, which made
    measured checkpoints 1.5 times smaller (bench/versions.py).
    """
    update = fold(parts)
    return Merged(update, encode_document(update) if encode else None)


def encode_document(update: bytes) -> bytes:
    """``update`` re-encoded as a document would write it."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    encoded: bytes = doc.get_update()
    return encoded


def encoded_length(parts: Sequence[bytes]) -> int:
    """The length of ``parts`` (a snapshot and the log after it) encoded as a document.

    A document quota's measure (guardrails.DocumentQuota), made in the worker.
    """
    return len(encode_document(fold(parts))) if parts else len(Doc().get_update())


def missing_part(update: bytes, state_vector: bytes) -> bytes:
    """What of ``update`` a document at ``state_vector`` lacks (its delete set kept whole).

    ValueError when ``update`` is not a Yjs update.
    """
    part: bytes = get_update(update, state_vector)
    return part


def _start_worker(parent: int) -> None:
    """In the worker: a lower priority, and an exit as soon as the server is gone.

    A server killed with SIGKILL cannot stop its worker, and an idle worker waits for work
    forever: without the watch every ``kill -9`` left a 30-50 MB process behind.
    """
    if sys.platform != "linux":  # on Linux it was started at that priority (_lower_priority)
        os.nice(WORKER_NICE)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _lower_priority() -> None:
    """In the thread that starts the worker: the worker's priority, from its first instruction.

    On Linux a thread's nice value is its own and a process it starts inherits it: the worker's
    start-up (an interpreter and its imports) no longer takes the server's core at the server's
    priority, nor do the pool's threads this thread starts (they feed the worker its jobs).
    """
    if sys.platform == "linux":
        os.nice(WORKER_NICE)


def _ready() -> None:
    """The job a new pool starts its worker with (nothing: the start is the point)."""


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


class Merger:
    """Runs merges and other big jobs: small ones inline, big ones in a lazily started worker.

    A worker that dies (killed, out of memory) or fails surfaces as StorageError, like a
    database failure: the compaction is retried later and nothing is lost, since the rows it
    would have folded are still in the log; an upload is refused (503) with nothing applied.
    The next big job starts a new worker.
    """

    def __init__(
        self, *, offload_min_bytes: int = OFFLOAD_MIN_BYTES, idle_stop_s: float = IDLE_STOP_S
    ) -> None:
        self.offload_min_bytes = offload_min_bytes
        self.idle_stop_s = idle_stop_s
        self._pool: ProcessPoolExecutor | None = None
        # The current pool's first submit, which starts its process (from a thread: ~15 ms).
        self._launch: asyncio.Future[Any] | None = None
        self._in_flight = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self.offloaded = 0  # merges sent to the worker (for tests and the bench)

    @property
    def started(self) -> bool:
        """Whether the worker process pool exists."""
        return self._pool is not None

    async def merge(self, parts: Sequence[bytes], *, encode: bool = False) -> Merged:
        """``merge(parts, encode=...)``, off the event loop when the input is big."""
        if sum(len(part) for part in parts) < self.offload_min_bytes:
            return merge(parts, encode=encode)
        try:
            return await self.run(merge, list(parts), encode=encode)
        except StorageError:
            raise
        except Exception as exc:  # whatever the worker raised: the compaction is retried
            raise StorageError("the merge worker failed") from exc

    async def missing(self, update: bytes, state_vector: bytes) -> bytes:
        """``missing_part(update, state_vector)``, in the worker when ``update`` is big.

        A big update posted to a live room is cut to what the room lacks before it is applied
        on the event loop: the same snapshot posted again costs the loop nothing, and the
        quota counts only what is new. ValueError for bytes that are not an update;
        StorageError when the worker dies or fails otherwise.
        """
        if len(update) < self.offload_min_bytes:
            return update
        return await self.run(missing_part, update, state_vector)

    async def run(self, job: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # noqa: ANN401
        """``job(*args, **kwargs)`` in the worker process, started if need be.

        ``job`` must be a module-level function of a module the worker can import cheaply,
        taking and returning values that pickle cheaply (bytes, not megabytes of str).
        Whatever it raises is raised here; a worker that dies meanwhile is StorageError, and
        the next job starts a new one.
        """
        self.offloaded += 1
        self._in_flight += 1
        try:
            pool = await self._started_pool()
            return await asyncio.wrap_future(pool.submit(job, *args, **kwargs))
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise StorageError("the merge worker died") from exc
        finally:
            self._in_flight -= 1
            self._stop_when_idle()

    async def run_sized(
        self,
        size: int,
        job: Callable[..., T],
        *args: Any,  # noqa: ANN401
        **kwargs: Any,  # noqa: ANN401
    ) -> T:
        """``job(...)`` in the worker (:meth:`run`), or here for under ``offload_min_bytes``.

        ``size`` is the bytes of the job's input: small jobs take less than a hand-off.
        """
        if size < self.offload_min_bytes:
            return job(*args, **kwargs)
        return await self.run(job, *args, **kwargs)

    async def close(self) -> None:
        """Stop the worker (waiting for a merge in flight, off the loop); idempotent."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        pool, self._pool, self._launch = self._pool, None, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _stop_when_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.idle_stop_s, self._stop_idle)

    def _stop_idle(self) -> None:
        self._idle_timer = None
        if self._in_flight:  # a merge started since: it schedules the next check
            return
        pool, self._pool, self._launch = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False)  # its own thread joins the worker

    async def _started_pool(self) -> ProcessPoolExecutor:
        if self._pool is None or self._launch is None:
            # spawn, not fork: the server has threads (the database drivers'), and a fresh
            # interpreter holds only what a merge needs.
            pool = self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
            # Its first submit starts the process and the pool's threads: in a thread of its
            # own, since that held the event loop for ~15 ms (bench/README.md, "Off the event
            # loop"), at the worker's priority (_lower_priority).
            launcher = ThreadPoolExecutor(1, "merge-worker-start", initializer=_lower_priority)
            loop = asyncio.get_running_loop()
            self._launch = loop.run_in_executor(launcher, pool.submit, _ready)
            launcher.shutdown(wait=False)  # its one job still runs: then the thread ends
        pool, launch = self._pool, self._launch
        try:
            await asyncio.shield(launch)
        except Exception as exc:  # the process could not start: the next job tries a new one
            self._discard(pool)
            raise StorageError("the merge worker could not start") from exc
        return pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool, self._launch = None, None
        pool.shutdown(wait=False, cancel_futures=True)
