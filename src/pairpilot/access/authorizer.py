"""The one seam where a connection is authorised: token -> user -> role -> rights."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pairpilot.access.identity import Identities, Identity
from pairpilot.access.policy import can_edit
from pairpilot.errors import InvalidRoomIdError

if TYPE_CHECKING:
    from pairpilot.storage.directory import RoomDirectory

ROOM_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ROOM_ID = re.compile(ROOM_ID_PATTERN)


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
    expires_at: float = float("inf")  # the token's ``exp`` (epoch s): the socket must renew it
    auth_session: str | None = None  # the issuer's session id (Supabase's), for the logs


class Authorizer(Protocol):
    """Decides whether a token may open a room (raises an AccessDeniedError otherwise)."""

    async def authorize(self, room_id: str, token: str | None) -> Grant:
        """Return the caller's rights in the room."""
        ...

    async def can_write(self, room_id: str, user_id: str) -> bool:
        """Read the user's rights again (an open socket's): NotFoundError when no member."""
        ...


class MembershipAuthorizer:
    """A valid token (else UnauthenticatedError) of a member (else NotFoundError)."""

    def __init__(self, identities: Identities, directory: RoomDirectory) -> None:
        self._identities = identities
        self._directory = directory

    async def authorize(self, room_id: str, token: str | None) -> Grant:
        """The member's rights: editors and owners write, viewers read."""
        identity = await self._identities.authenticate(token)
        expires_at = float(identity.claims.get("exp", float("inf")))
        can_write = await self._can_write(room_id, identity)
        return Grant(identity.user_id, can_write, expires_at, identity.auth_session)

    async def can_write(self, room_id: str, user_id: str) -> bool:
        """The membership read as the user, as at connect (RLS sees only ``sub``)."""
        claims = {"sub": user_id, "role": "authenticated", "aud": "authenticated"}
        return await self._can_write(room_id, Identity(user_id, "", claims))

    async def _can_write(self, room_id: str, identity: Identity) -> bool:
        _, member = await self._directory.membership(room_id, identity)
        return can_edit(member.role)
