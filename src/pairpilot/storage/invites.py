"""Invite rows (``room_invites``): made, listed and revoked by owners, redeemed by a join.

Every statement runs as the caller (``RoomDirectory.as_user``): on PostgreSQL, RLS lets owners
see, make and revoke a room's invites, and nobody else. A joiner cannot see the row of the
invite they hold; ``presented_invite`` hands the token to the SECURITY DEFINER helper of
migration 0007 (``pairpilot.invite_token``, for this transaction only), which looks it up by
hash, and the membership INSERT policy reads the same setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.access.invites import IssuedInvite, PresentedInvite, token_hash
from pairpilot.access.policy import Role, check_invite, require_owner
from pairpilot.errors import ExpiredInviteError, NotFoundError, RevokedInviteError
from pairpilot.storage.schema import room_invites
from pairpilot.storage.store import utc

if TYPE_CHECKING:
    from pairpilot.access.identity import Identity
    from pairpilot.storage.directory import RoomDirectory


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite's row, without its token."""

    id: str
    room_id: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def _invite(row: sa.Row[tuple[object, ...]]) -> Invite:
    revoked = row.revoked_at
    return Invite(
        row.id,
        row.room_id,
        Role(row.role),
        row.created_by,
        utc(row.created_at),
        utc(row.expires_at),
        utc(revoked) if revoked is not None else None,
    )


async def presented_invite(
    conn: AsyncConnection, room_id: str, invite: PresentedInvite, now: datetime
) -> Role:
    """The role ``invite`` grants in the room now; Expired- or RevokedInviteError otherwise.

    On PostgreSQL the token stays set for the rest of the transaction, for the INSERT policy.
    """
    if invite.expired(now):
        raise ExpiredInviteError("this invite link has expired: ask the room's owner for a new one")
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT set_config('pairpilot.invite_token', :token, true)"),
            {"token": invite.token},
        )
        query = sa.text("SELECT role, expires_at, revoked_at FROM pairpilot_presented_invite(:r)")
        row = (await conn.execute(query, {"r": room_id})).first()
    else:
        row = (
            await conn.execute(
                sa.select(room_invites.c.role, room_invites.c.expires_at, room_invites.c.revoked_at)
                .where(room_invites.c.room_id == room_id)
                .where(room_invites.c.token_hash == token_hash(invite.token))
            )
        ).first()
    if row is None or row.revoked_at is not None:
        raise RevokedInviteError("this invite link was revoked by the room's owner")
    if utc(row.expires_at) <= now:
        raise ExpiredInviteError("this invite link has expired: ask the room's owner for a new one")
    return Role(row.role)


class RoomInvites:
    """Owners' invites of a room, read and written as the caller through the directory."""

    def __init__(self, directory: RoomDirectory) -> None:
        self._directory = directory

    async def _role(self, room_id: str, identity: Identity) -> Role:
        _, me = await self._directory.membership(room_id, identity)
        return me.role

    async def create(self, identity: Identity, invite: IssuedInvite) -> Invite:
        """Keep a new invite of an owner (ForbiddenError for other members, 404 non-members)."""
        check_invite(await self._role(invite.room_id, identity), invite.role)
        created_at = self._directory.clock()
        row = {
            "id": invite.id,
            "room_id": invite.room_id,
            "role": invite.role.value,
            "token_hash": token_hash(invite.token),
            "created_by": identity.user_id,
            "created_at": created_at,
            "expires_at": invite.expires_at,
        }
        async with self._directory.as_user(identity) as conn:
            await conn.execute(room_invites.insert().values(**row))
        return Invite(
            invite.id,
            invite.room_id,
            invite.role,
            identity.user_id,
            utc(created_at),
            invite.expires_at,
            None,
        )

    async def live(self, room_id: str, identity: Identity) -> list[Invite]:
        """The room's invites that are neither revoked nor expired, newest first (owners)."""
        require_owner(await self._role(room_id, identity))
        async with self._directory.as_user(identity) as conn:
            rows = await conn.execute(
                sa.select(room_invites)
                .where(room_invites.c.room_id == room_id)
                .where(room_invites.c.revoked_at.is_(None))
                .where(room_invites.c.expires_at > self._directory.clock())
                .order_by(room_invites.c.created_at.desc(), room_invites.c.id)
            )
            return [_invite(row) for row in rows]

    async def revoke(self, room_id: str, identity: Identity, invite_id: str) -> Invite:
        """Revoke one invite (owners); NotFoundError for an id the room does not have."""
        require_owner(await self._role(room_id, identity))
        async with self._directory.as_user(identity) as conn:
            match = (room_invites.c.room_id == room_id) & (room_invites.c.id == invite_id)
            await conn.execute(
                room_invites.update()
                .where(match, room_invites.c.revoked_at.is_(None))
                .values(revoked_at=self._directory.clock())
            )
            row = (await conn.execute(sa.select(room_invites).where(match))).first()
        if row is None:
            raise NotFoundError(f"room {room_id} has no invite {invite_id}")
        return _invite(row)
