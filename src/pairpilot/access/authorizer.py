"""The one seam where a connection is authorised: token -> user -> role -> rights."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from pairpilot.errors import InvalidRoomIdError

ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_room_id(room_id: str) -> str:
    """Return the room id, or raise InvalidRoomIdError."""
    if not ROOM_ID.fullmatch(room_id):
        raise InvalidRoomIdError("room ids match ^[A-Za-z0-9_-]{1,64}$")
    return room_id


@dataclass(frozen=True, slots=True)
class Grant:
    """What an authorised connection may do in one room."""

    user_id: str
    can_write: bool


class Authorizer(Protocol):
    """Decides whether a token may open a room (raises an AccessDeniedError otherwise)."""

    async def authorize(self, room_id: str, token: str | None) -> Grant:
        """Return the caller's rights in the room."""
        ...


class AllowEveryone:
    """Lets every connection edit; stands in until identity and roles exist."""

    async def authorize(self, room_id: str, token: str | None) -> Grant:  # noqa: ARG002
        """Grant write access to an anonymous user."""
        return Grant(user_id="anonymous", can_write=True)
