"""The RoomBus port: rooms publish frames here and receive them back for delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Deliver = Callable[[bytes, int | None], None]
"""Callback ``(frame, origin_session_id)``: deliver a frame to a room's local sockets.

``origin_session_id`` is the session that sent it (it is skipped for document updates), or
None for frames every socket should get.
"""


class RoomBus(Protocol):
    """Relays a room's outgoing frames to every replica of that room."""

    def subscribe(self, room_id: str, deliver: Deliver) -> None:
        """Route the room's frames to ``deliver`` in this process."""
        ...

    def unsubscribe(self, room_id: str) -> None:
        """Stop routing frames of this room to this process."""
        ...

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Fan a frame out to every subscriber of the room; never blocks."""
        ...
