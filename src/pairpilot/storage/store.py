"""The RoomStore port: what the live rooms need from durable storage."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from pycrdt import merge_updates

T = TypeVar("T")


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC timestamps; make every timestamp aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StoredRoom:
    """A room as storage holds it: the compacted snapshot and the update log after it."""

    snapshot: bytes | None
    updates: list[bytes]
    updated_at: datetime | None = None
    versioned_at: datetime | None = None
    update_ids: tuple[int, ...] = ()

    @property
    def log_bytes(self) -> int:
        """Bytes in the update log."""
        return sum(len(update) for update in self.updates)

    def merged(self) -> bytes | None:
        """The whole document as one update, or None when the room has no content."""
        parts = ([self.snapshot] if self.snapshot else []) + self.updates
        return fold(parts) if parts else None


def fold(updates: Sequence[bytes]) -> bytes:
    """One update holding all of ``updates`` (at least one): itself when there is just one."""
    return updates[0] if len(updates) == 1 else merge_updates(*updates)


class RoomStore(Protocol):
    """Durable storage of room documents (snapshot + append-only update log)."""

    async def load(self, room_id: str) -> StoredRoom:
        """Read a room's snapshot and update log; an unknown room is empty."""
        ...

    async def append(
        self,
        batch: Sequence[tuple[str, bytes]],
        fences: Mapping[str, int] | None = None,
        *,
        windows: Collection[str] = (),
    ) -> set[str]:
        """Append ``(room_id, update)`` rows in one transaction; rooms whose fence was refused.

        Rooms in ``fences`` are written only while their fence is the newest the store took;
        rooms in ``windows`` get their pending ``room.updated`` row in the same transaction.
        """
        ...

    async def compact(self, room_id: str, *, checkpoint: bool = False, size_hint: int = 0) -> int:
        """Merge the room's log into its snapshot; return the snapshot's size in bytes.

        ``size_hint``: the room's stored bytes as the caller knows them (a big room is read
        off the event loop where the store can).

        With ``checkpoint`` the merged state also becomes an automatic version, in the same
        transaction, and the room's automatic versions are thinned by the retention rule.
        """
        ...

    async def measure(self, room_id: str, size_hint: int = 0) -> int:
        """The stored document's encoded length (``Y.encodeStateAsUpdate``), off the loop.

        ``size_hint`` as for ``compact``.

        StorageError when it cannot be read.
        """
        ...

    async def on_stored(
        self, room_id: str, job: Callable[[list[bytes]], T], size_hint: int = 0
    ) -> T:
        """``job(parts)`` of the stored room (its snapshot and log), off the loop when big.

        ``job`` runs in the merge worker (a module-level function: ``encoded_length``, an
        export); ``size_hint`` as for ``compact``. StorageError when it cannot be read.
        """
        ...

    async def ping(self) -> None:
        """Raise StorageError unless the database answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
