"""Invite links: a signed, expiring token that grants one role in one room, until revoked.

The token is a JWT signed with the server's secret (HS256, like the access tokens) for its own
audience, ``pairpilot-invite``, so an invite is never an access token nor an access token an
invite. Claims: ``room``, ``role``, ``jti`` (the invite's id: its row in ``room_invites``),
``iat``, ``exp``. The signature shows that this server made it for this room; the row, which
keeps the token's sha256 (never the token), says whether an owner revoked it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from pairpilot.access.identity import Identities
from pairpilot.access.policy import Role
from pairpilot.errors import InvalidInviteError

AUDIENCE = "pairpilot-invite"
DEFAULT_TTL_S = 7 * 24 * 3600
MIN_TTL_S = 60
MAX_TTL_S = 30 * 24 * 3600


def token_hash(token: str) -> str:
    """The sha256 kept for a token (PostgreSQL's helper computes the same from the token)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    """A new invite: its id, its token (shown once, to its maker) and when it expires."""

    id: str
    token: str
    room_id: str
    role: Role
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PresentedInvite:
    """A token this server signed for this room; whether it still grants anything is not known."""

    token: str
    id: str
    role: Role
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """True once the token's ``exp`` has passed."""
        return self.expires_at <= now


class InviteTokens:
    """Signs invite tokens and reads them back (with the secret of ``identities``)."""

    def __init__(self, identities: Identities) -> None:
        self._identities = identities

    def issue(self, room_id: str, role: Role, now: datetime, ttl_s: int) -> IssuedInvite:
        """A new invite's token, valid ``ttl_s`` seconds from ``now``."""
        invite_id = secrets.token_urlsafe(12)
        expires_at = now.replace(microsecond=0) + timedelta(seconds=ttl_s)
        claims = {
            "aud": AUDIENCE,
            "room": room_id,
            "role": role.value,
            "jti": invite_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        token = self._identities.sign(claims)
        return IssuedInvite(invite_id, token, room_id, role, expires_at)

    def read(self, token: str, room_id: str) -> PresentedInvite:
        """The invite in ``token``; InvalidInviteError unless this server signed it for the room.

        Expiry is not checked here: someone already in the room may open an old invite link.
        """
        try:
            claims = self._identities.read_signed(token, AUDIENCE, check_expiry=False)
        except jwt.InvalidTokenError as exc:
            raise InvalidInviteError("this invite link is not valid") from exc
        if claims.get("room") != room_id:
            raise InvalidInviteError("this invite link is for another room")
        try:
            role = Role(str(claims.get("role")))
            expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInviteError("this invite link is not valid") from exc
        if role is Role.OWNER:
            raise InvalidInviteError("this invite link is not valid")
        return PresentedInvite(token, str(claims["jti"]), role, expires_at)
