"""The RoomBus port: rooms publish frames here and receive them back for delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Persistence:
    """Whether this process writes a room's updates, and the fence its writes carry."""

    here: bool
    fence: int | None = None  # None: unfenced (one process, or Redis unreachable)


PERSIST_HERE = Persistence(here=True)
PERSIST_ELSEWHERE = Persistence(here=False)


class Replica(Protocol):
    """A room as the bus sees it: one replica of a room's document and presence."""

    def deliver(self, frame: bytes, origin: int | None) -> None:
        """Send a frame to the local sockets, skipping session ``origin`` (None: everyone)."""
        ...

    def apply_remote(self, frame: bytes, process: bytes = b"") -> None:
        """Apply a frame that another process's replica published, then deliver it."""
        ...

    def drop_process(self, process: bytes) -> None:
        """``process`` died: forget the presence that came from it."""
        ...

    def became_persister(self) -> None:
        """The room is now written here: store everything the replica has."""
        ...

    def stored_elsewhere(self, state_vector: bytes) -> None:
        """The room's persister stored the state up to ``state_vector``."""
        ...

    def state_vector(self) -> bytes:
        """The document's state vector (a new replica asks the others to catch it up with it)."""
        ...

    def catch_up(self, state_vector: bytes) -> list[bytes]:
        """Frames that bring a replica at ``state_vector`` up to this one (document, presence)."""
        ...


class RoomBus(Protocol):
    """Relays a room's outgoing frames to every replica of that room."""

    def subscribe(self, room_id: str, replica: Replica) -> None:
        """Route the room's frames to ``replica`` in this process."""
        ...

    def unsubscribe(self, room_id: str) -> None:
        """Stop routing frames of this room to this process."""
        ...

    def publish(self, room_id: str, frame: bytes, origin: int | None) -> None:
        """Deliver a frame to the local replica now and to the others soon; never blocks."""
        ...

    async def catch_up(self, room_id: str) -> None:
        """Bring a just-subscribed replica up to the others before it serves a client.

        RoomDeletedError when the room was deleted meanwhile.
        """
        ...

    def position(self, room_id: str) -> str | None:
        """Where the replica is in the room's relayed history (None: the bus keeps none)."""
        ...

    def persisted(self, room_id: str, position: str | None) -> None:
        """What the replica had at ``position`` is stored; the bus may forget it."""
        ...

    def persistence(self, room_id: str) -> Persistence:
        """Whether this process writes the room now."""
        ...

    async def claim(self, room_id: str) -> bool:
        """Become the room's persister now if nobody is (a room about to unload); whether it is."""
        ...

    def stored(self, room_id: str, state_vector: bytes) -> None:
        """The room is stored up to ``state_vector`` by this process: tell the other replicas."""
        ...

    def fenced(self, room_id: str) -> None:
        """The store refused this process's fence: another process persists the room now."""
        ...

    def erase(self, room_id: str, moved_to: str | None = None) -> None:
        """The room was deleted (moved to ``moved_to``) here: the others drop it; its keys go."""
        ...

    def backlogged(self) -> bool:
        """Whether frames waiting for the other processes reached their bound (refuse edits)."""
        ...

    def on_erased(self, callback: Callable[[str, str | None], None]) -> None:
        """Call ``callback(room_id, moved_to)`` when another process deleted (moved) a room."""
        ...

    def access_changed(self, room_id: str, user_id: str | None) -> None:
        """Rights in the room changed here (``user_id``'s; None: anyone's): tell the others."""
        ...

    def on_access(self, callback: Callable[[str, str | None], None]) -> None:
        """Call ``callback(room_id, user_id)`` when rights in a live room changed elsewhere.

        Also ``callback(room_id, None)`` for every live room when the bus is back from an
        outage: changes made meanwhile may never arrive.
        """
        ...

    async def start(self) -> None:
        """Begin relaying (connect, start background tasks)."""
        ...

    async def close(self) -> None:
        """Stop relaying and release connections."""
        ...
