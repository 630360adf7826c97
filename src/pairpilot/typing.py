"""Protocols that name PairPilot's seams."""

from __future__ import annotations

from typing import Protocol


class Socket(Protocol):
    """The narrow WebSocket surface a Session needs (Starlette's WebSocket fits it)."""

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame."""
        ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close with a code the peer can read."""
        ...
