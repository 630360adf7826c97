"""Protocols that name PairPilot's seams."""

from __future__ import annotations

from typing import Protocol


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
