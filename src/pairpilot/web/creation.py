"""What creating a room asks of its creator: a room under their quota, and the creation rate.

``POST /api/rooms/{id}/join`` hands a ``RoomCreation`` to ``RoomDirectory.join``, which asks it
only when the join is about to create the room, with the rooms the caller owns counted in the
join's own transaction (joining an existing room is not creating one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pairpilot.errors import RefusedError
from pairpilot.guardrails import CREATE_RATE, ROOMS_OWNED

if TYPE_CHECKING:
    from pairpilot.access.identity import Identity
    from pairpilot.web.services import Services


def is_anonymous(identity: Identity) -> bool:
    """True for an anonymous account's token (PairPilot's own, or Supabase's anonymous users)."""
    return identity.claims.get("is_anonymous") is True


class RoomCreation:
    """The rooms quota (PAIRPILOT_ROOMS_PER_[ANONYMOUS_]USER), then the creation rate."""

    def __init__(self, services: Services, identity: Identity) -> None:
        self._services = services
        self._identity = identity

    async def admit(self, owned: int) -> None:
        """Refuse a room past the caller's quota (403) or over the creation rate (429)."""
        settings = self._services.settings
        if is_anonymous(self._identity):
            most, whose = settings.rooms_per_anonymous_user, "an anonymous account"
        else:
            most, whose = settings.rooms_per_user, "an account"
        if owned >= most:
            message = f"You already own {owned} rooms, the most {whose} may own: delete one first"
            raise RefusedError(ROOMS_OWNED, message)
        await self._services.throttle.hit(CREATE_RATE, self._identity.user_id)
