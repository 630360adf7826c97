"""Protocols that name PairPilot's seams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class Socket(Protocol):
    """The narrow surface a Session writes to (the collaboration connection fits it)."""

    def send_frame(self, wire: bytes) -> None:
        """Write one already-encoded WebSocket frame; never blocks.

        A peer that reads too slowly is dropped here, so the room is never slowed by it.
        """
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code (the peer can read it)."""
        ...


class CreationGuard(Protocol):
    """Asked before a join creates a room, inside the join's transaction (see RoomDirectory.join).

    It refuses by raising ``RefusedError`` (too many rooms owned, rooms created too fast), so
    nothing is created.
    """

    async def admit(self, owned: int) -> None:
        """Allow the caller, who owns ``owned`` rooms now, to create one more; or refuse."""
        ...


class RoomChanges(Protocol):
    """Told of a room's changes inside the transaction that makes them (the webhook events).

    Each call writes in ``conn``'s transaction, so the change and what is told of it commit
    (or roll back) together; ``committed`` follows once that transaction committed.
    """

    async def joined(self, conn: AsyncConnection, room_id: str, user_id: str, role: str) -> None:
        """A membership was made (an ``owner``'s by a join: the join created the room)."""
        ...

    async def left(self, conn: AsyncConnection, room_id: str, user_id: str) -> None:
        """A member left or was removed."""
        ...

    async def deleted(self, conn: AsyncConnection, room_id: str, by: str) -> None:
        """The room was deleted by ``by``."""
        ...

    async def version_made(
        self,
        conn: AsyncConnection,
        room_id: str,
        version_id: int,
        kind: str,
        author_id: str | None,
    ) -> None:
        """A version (named, restore point or automatic checkpoint) was written."""
        ...

    def committed(self) -> None:
        """A transaction that told of changes committed: their events may be sent now."""
        ...


class WriteWatcher(Protocol):
    """Told of the flusher's writes (webhooks' ``room.updated``); it must never block."""

    def windows(self, room_ids: list[str]) -> list[str]:
        """Of the rooms about to be written, those whose write must store a pending row."""
        ...

    def written(self, room_ids: list[str], windows: list[str]) -> None:
        """The rooms' edits are stored, and the pending rows of ``windows`` with them."""
        ...
