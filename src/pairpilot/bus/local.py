"""The in-process RoomBus: delivery is a direct call, with no copy and no task."""

from __future__ import annotations

from collections.abc import Callable

from pairpilot.bus.base import PERSIST_HERE, Persistence, Replica


class LocalBus:
    """RoomBus for a single process."""

    def __init__(self) -> None:
        self._replicas: dict[str, Replica] = {}

    def subscribe(self, room_id: str, replica: Replica) -> None:
        """Route the room's frames to its replica."""
        self._replicas[room_id] = replica

    def unsubscribe(self, room_id: str) -> None:
        """Forget the room."""
        self._replicas.pop(room_id, None)

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Deliver the frame to the room's sockets now."""
        replica = self._replicas.get(room_id)
        if replica is not None:
            replica.deliver(frame, origin)

    async def catch_up(self, room_id: str) -> None:
        """A single replica is always up to date."""

    def position(self, room_id: str) -> str | None:
        """No history is kept."""
        del room_id
        return None

    def persisted(self, room_id: str, position: str | None) -> None:
        """Nothing to forget."""

    def persistence(self, room_id: str) -> Persistence:
        """The only process writes every room, unfenced."""
        del room_id
        return PERSIST_HERE

    async def claim(self, room_id: str) -> bool:
        """Always this process."""
        del room_id
        return True

    def stored(self, room_id: str, state_vector: bytes) -> None:
        """No other replica to tell."""

    def fenced(self, room_id: str) -> None:
        """Never happens without fences."""

    def erase(self, room_id: str, moved_to: str | None = None) -> None:  # noqa: ARG002 - Protocol
        """No other process to tell."""
        self._replicas.pop(room_id, None)

    def backlogged(self) -> bool:
        """Frames are delivered at once: nothing waits."""
        return False

    def on_erased(self, callback: Callable[[str, str | None], None]) -> None:
        """No other process deletes rooms."""

    def access_changed(self, room_id: str, user_id: str | None) -> None:
        """No other process to tell."""

    def on_access(self, callback: Callable[[str, str | None], None]) -> None:
        """No other process changes rights."""

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""
