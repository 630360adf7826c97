"""What a webhook says: the event types and their payloads (names and ids, never content).

A payload follows the Standard Webhooks shape: ``{"type", "timestamp", "data"}``; ``data``
names the room and what changed, and a consumer fetches the content through the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROOM_UPDATED = "room.updated"
ROOM_CREATED = "room.created"
ROOM_DELETED = "room.deleted"
VERSION_CREATED = "version.created"
MEMBER_JOINED = "member.joined"
MEMBER_LEFT = "member.left"
EVENT_TYPES = (
    ROOM_UPDATED,
    ROOM_CREATED,
    ROOM_DELETED,
    VERSION_CREATED,
    MEMBER_JOINED,
    MEMBER_LEFT,
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a room; ``id`` is the ``webhook-id`` of every delivery of it."""

    type: str
    room_id: str
    data: dict[str, Any]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")

    def payload(self) -> str:
        """The JSON body every endpoint receives for this event."""
        body = {
            "type": self.type,
            "timestamp": self.at.isoformat().replace("+00:00", "Z"),
            "data": {"room_id": self.room_id, **self.data},
        }
        return json.dumps(body, separators=(",", ":"))


def room_updated(room_id: str) -> Event:
    """The room's document changed (debounced: see ``RoomUpdates``)."""
    return Event(ROOM_UPDATED, room_id, {})


def room_created(room_id: str, owner_id: str) -> Event:
    """A join created the room; ``owner_id`` owns it."""
    return Event(ROOM_CREATED, room_id, {"owner_id": owner_id})


def room_deleted(room_id: str, by: str) -> Event:
    """An owner (or the operator) deleted the room."""
    return Event(ROOM_DELETED, room_id, {"deleted_by": by})


def version_created(room_id: str, version_id: int, kind: str, author_id: str | None) -> Event:
    """A named version or a restore point was made."""
    return Event(
        VERSION_CREATED,
        room_id,
        {"version_id": version_id, "kind": kind, "author_id": author_id},
    )


def member_joined(room_id: str, user_id: str, role: str) -> Event:
    """Someone became a member (the creator of a new room too, as its owner)."""
    return Event(MEMBER_JOINED, room_id, {"user_id": user_id, "role": role})


def member_left(room_id: str, user_id: str) -> Event:
    """A member left or was removed."""
    return Event(MEMBER_LEFT, room_id, {"user_id": user_id})
