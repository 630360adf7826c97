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
