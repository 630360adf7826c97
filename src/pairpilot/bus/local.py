"""The in-process RoomBus: delivery is a direct call, with no copy and no task."""

from __future__ import annotations

from pairpilot.bus.base import Deliver


class LocalBus:
    """RoomBus for a single process."""

    def __init__(self) -> None:
        self._subscribers: dict[str, Deliver] = {}

    def subscribe(self, room_id: str, deliver: Deliver) -> None:
        """Route the room's frames to ``deliver``."""
        self._subscribers[room_id] = deliver

    def unsubscribe(self, room_id: str) -> None:
        """Forget the room."""
        self._subscribers.pop(room_id, None)

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Deliver the frame to the room's sockets now."""
        deliver = self._subscribers.get(room_id)
        if deliver is not None:
            deliver(frame, origin)
