"""Rooms and memberships, read and written as the calling user.

On PostgreSQL every transaction here first becomes the caller, Supabase style
(``role = authenticated``, ``request.jwt.claims``), so Row Level Security decides what each
statement may see and change. On SQLite the same statements filter by membership themselves
and pairpilot.access.policy carries the rules.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pairpilot.access.identity import Identity
from pairpilot.access.invites import PresentedInvite
from pairpilot.access.policy import (
    LinkAccess,
    Role,
    check_removal,
    check_role_change,
    require_owner,
)
from pairpilot.errors import NotFoundError, StorageError
from pairpilot.storage.deletion import erase_rows, lock_for_deletion
from pairpilot.storage.invites import presented_invite
from pairpilot.storage.moving import move_rows, retired_error
from pairpilot.storage.schema import room_members, rooms
from pairpilot.storage.sql import ROLES_LOCK, lock_room, read_stored_room
from pairpilot.storage.store import StoredRoom, utc
from pairpilot.storage.versions import (
    Author,
    Version,
    VersionKind,
    insert_version,
    list_versions,
    read_version,
    utc_now,
)
from pairpilot.typing import CreationGuard, RoomChanges

# pg_advisory_xact_lock's first key for "rooms owned by one user" (the user id's hash is the
# second); the room locks' kinds are in pairpilot.storage.sql.
OWNED_LOCK = 0x5055


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room's row."""

    id: str
    owner_id: str | None
    default_role: Role
    created_at: datetime
    link_access: LinkAccess = LinkAccess.EDIT


@dataclass(frozen=True, slots=True)
class Member:
    """One membership."""

    user_id: str
    role: Role
    name: str | None = None
    joined: bool = False  # made by this join (``join``'s answer only)


class RoomDirectory:
    """Room and membership queries, each in a transaction that runs as the caller."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self.clock = clock
        # Told of joins, leaves, deletions and versions in their transactions (webhooks).
        self.changes: RoomChanges | None = None

    def _committed(self) -> None:
        if self.changes is not None:
            self.changes.committed()

    @asynccontextmanager
    async def as_user(self, identity: Identity | None) -> AsyncIterator[AsyncConnection]:
        """A transaction in which RLS (on PostgreSQL) sees ``identity``'s claims, or none."""
        try:
            async with self._engine.begin() as conn:
                if self._postgres:
                    claims = json.dumps(_without_nul(identity.claims if identity else {}))
                    await conn.execute(
                        sa.text(
                            "SELECT set_config('role', 'authenticated', true),"
                            " set_config('request.jwt.claims', :claims, true)"
                        ),
                        {"claims": claims},
                    )
                yield conn
        except (SQLAlchemyError, OSError) as exc:  # asyncpg's refused connection is an OSError
            raise StorageError("room directory query failed") from exc

    async def join(
        self,
        room_id: str,
        identity: Identity,
        creating: CreationGuard | None = None,
        invite: PresentedInvite | None = None,
    ) -> tuple[RoomInfo, Member]:
        """Create the room (caller owns it) and the caller's membership when missing.

        ``creating`` is asked first when the room is to be created (its refusal creates nothing).
        A member gets their membership as it is. Others join with the role of the room's link
        access (NotFoundError when it is ``none``, as for a room that does not exist), or with
        ``invite``'s role (which never creates a room; Expired/RevokedInviteError).
        """
        async with self.as_user(identity) as conn:
            retired = await retired_error(conn, room_id, identity.user_id)
            if retired is not None:  # on PostgreSQL the INSERT policy refuses it too
                raise retired
            found = await self._membership(conn, room_id, identity.user_id)
            if found is not None:
                return found
            if invite is not None:
                granted = await presented_invite(conn, room_id, invite, self.clock())
                role: sa.ColumnElement[str] = sa.literal(granted.value)
            else:
                role = await self._link_joiner_role(conn, room_id, identity, creating)
            insert = postgresql.insert if self._postgres else sqlite.insert
            await conn.execute(
                insert(room_members)
                .from_select(
                    ["room_id", "user_id", "role", "name"],
                    sa.select(
                        sa.literal(room_id),
                        sa.literal(identity.user_id),
                        role,
                        sa.literal(identity.name),
                    ),
                )
                .on_conflict_do_nothing(
                    index_elements=[room_members.c.room_id, room_members.c.user_id]
                )
            )
            found = await self._membership(conn, room_id, identity.user_id)
            if found is None:
                raise StorageError("join wrote no membership")  # only if RLS refused the insert
            room, member = found
            if self.changes is not None:
                await self.changes.joined(conn, room_id, member.user_id, member.role.value)
        self._committed()
        return room, replace(member, joined=True)

    async def _link_joiner_role(
        self,
        conn: AsyncConnection,
        room_id: str,
        identity: Identity,
        creating: CreationGuard | None,
    ) -> sa.ColumnElement[str]:
        """Create the room if missing (then ``owner``), else the role its link access gives.

        NotFoundError when the room is invite only.
        """
        if creating is not None:
            await self._admit_creation(conn, room_id, identity.user_id, creating)
        insert = postgresql.insert if self._postgres else sqlite.insert
        created = await conn.execute(
            insert(rooms)
            .values(id=room_id, owner_id=identity.user_id, default_role=Role.EDITOR.value)
            .on_conflict_do_nothing(index_elements=[rooms.c.id])
        )
        if created.rowcount == 1:
            return sa.literal(Role.OWNER.value)
        if await self._link_access(conn, room_id) is LinkAccess.NONE:
            raise NotFoundError(f"room {room_id} not found")
        return self._default_role(room_id)

    async def _link_access(self, conn: AsyncConnection, room_id: str) -> LinkAccess:
        if self._postgres:
            # The joiner cannot see the room yet; a SECURITY DEFINER helper reads it.
            query = sa.select(sa.func.pairpilot_room_link_access(room_id, type_=sa.String))
        else:
            query = sa.select(rooms.c.link_access).where(rooms.c.id == room_id)
        return LinkAccess((await conn.execute(query)).scalar_one_or_none() or LinkAccess.EDIT)

    async def membership(self, room_id: str, identity: Identity) -> tuple[RoomInfo, Member]:
        """The room and the caller's membership; NotFoundError for non-members.

        RoomDeletedError when the room was deleted (its id is retired: that is no secret);
        RoomMovedError when it moved to a room the caller is a member of.
        """
        async with self.as_user(identity) as conn:
            found = await self._membership(conn, room_id, identity.user_id)
            retired = None if found else await retired_error(conn, room_id, identity.user_id)
            if retired is not None:
                raise retired
        if found is None:
            raise NotFoundError(f"room {room_id} not found")
        return found

    async def members(self, room_id: str, identity: Identity) -> list[Member]:
        """Every member, for a member caller (NotFoundError otherwise)."""
        async with self.as_user(identity) as conn:
            if await self._membership(conn, room_id, identity.user_id) is None:
                raise NotFoundError(f"room {room_id} not found")
            return await self._members(conn, room_id)

    async def set_role(self, room_id: str, identity: Identity, target: str, role: Role) -> Member:
        """An owner changes a member's role; the changed membership.

        Role changes of one room are serialised, and the caller's role, the target and the
        owner count are read under that lock: two owners demoting each other at once would
        otherwise both pass the check and leave the room with no owner.
        """
        async with self.as_user(identity) as conn:
            me, found, owners = await self._locked_pair(conn, room_id, identity, target)
            require_owner(me.role)
            check_role_change(identity.user_id, target, role, owners, found.role)
            result = await conn.execute(
                room_members.update()
                .where(room_members.c.room_id == room_id, room_members.c.user_id == target)
                .values(role=role.value)
            )
            if result.rowcount != 1:  # only if RLS refused the update
                raise NotFoundError(f"user {target} is not a member of {room_id}")
            return Member(target, role, found.name)

    async def remove_member(self, room_id: str, identity: Identity, target: str) -> Member:
        """An owner removes a member, or a member leaves; the removed membership.

        Serialised with role changes (the same lock): the owner count is read under it.
        """
        async with self.as_user(identity) as conn:
            me, found, owners = await self._locked_pair(conn, room_id, identity, target)
            check_removal(me.role, identity.user_id, target, found.role, owners)
            result = await conn.execute(
                room_members.delete().where(
                    room_members.c.room_id == room_id, room_members.c.user_id == target
                )
            )
            if result.rowcount != 1:  # only if RLS refused the delete
                raise NotFoundError(f"user {target} is not a member of {room_id}")
            if self.changes is not None:
                await self.changes.left(conn, room_id, target)
        self._committed()
        return found

    async def set_link_access(
        self, room_id: str, identity: Identity, access: LinkAccess, default_role: Role | None
    ) -> RoomInfo:
        """Change what joining by link does (an owner; RLS refuses others); the updated room.

        ``default_role`` is the role link joiners get, kept equal to the link access (edit =
        editor, view = viewer); with ``none`` it keeps the role the link gives once reopened.
        Members keep their membership.
        """
        values: dict[str, str] = {"link_access": access.value}
        if default_role is not None:
            values["default_role"] = default_role.value
        async with self.as_user(identity) as conn:
            await conn.execute(rooms.update().where(rooms.c.id == room_id).values(**values))
            found = await self._membership(conn, room_id, identity.user_id)
        if found is None:
            raise NotFoundError(f"room {room_id} not found")
        return found[0]

    async def stored_room(self, room_id: str, identity: Identity) -> StoredRoom:
        """The room's stored document as the caller may read it."""
        async with self.as_user(identity) as conn:
            return await read_stored_room(conn, room_id)

    async def versions(
        self, room_id: str, identity: Identity, *, limit: int, before: int | None
    ) -> list[Version]:
        """The room's versions newest first, for a member (NotFoundError otherwise)."""
        async with self.as_user(identity) as conn:
            if await self._membership(conn, room_id, identity.user_id) is None:
                raise NotFoundError(f"room {room_id} not found")
            return await list_versions(conn, room_id, limit=limit, before=before)

    async def version(
        self, room_id: str, identity: Identity, version_id: int
    ) -> tuple[Version, bytes]:
        """One version and its state, for a member; NotFoundError when there is none."""
        async with self.as_user(identity) as conn:
            if await self._membership(conn, room_id, identity.user_id) is None:
                raise NotFoundError(f"room {room_id} not found")
            found = await read_version(conn, room_id, version_id)
        if found is None:
            raise NotFoundError(f"room {room_id} has no version {version_id}")
        return found

    async def add_version(
        self, room_id: str, identity: Identity, kind: VersionKind, state: bytes, name: str
    ) -> Version:
        """Store a named version or a restore point, made by the caller (an editor)."""
        async with self.as_user(identity) as conn:
            version = await insert_version(
                conn,
                room_id,
                kind,
                state,
                self.clock(),
                name=name,
                author=Author(identity.user_id, identity.name),
            )
            if self.changes is not None:
                await self.changes.version_made(
                    conn, room_id, version.id, kind.value, identity.user_id
                )
        self._committed()
        return version

    async def _admit_creation(
        self, conn: AsyncConnection, room_id: str, user_id: str, guard: CreationGuard
    ) -> None:
        """Ask ``guard`` when ``room_id`` does not exist, with the rooms ``user_id`` owns.

        The count is read under a per-user lock (on SQLite the database's write lock) held
        until the join commits: concurrent joins of one user cannot pass a quota together.
        On PostgreSQL, RLS lets a user see every room whose ``owner_id`` they are.
        """
        exists = sa.select(self._default_role(room_id).is_not(None))
        if (await conn.execute(exists)).scalar_one():
            return  # joining is not creating: no lock, no count
        await lock_room(conn, user_id, OWNED_LOCK)
        owned = sa.select(sa.func.count()).where(rooms.c.owner_id == user_id).scalar_subquery()
        row = (await conn.execute(sa.select(self._default_role(room_id), owned))).one()
        if row[0] is None:  # still missing once the lock is held
            await guard.admit(int(row[1]))

    async def delete_room(self, room_id: str, identity: Identity) -> None:
        """An owner deletes the room: every row of it, and its id is retired (a tombstone).

        ForbiddenError for editors and viewers, NotFoundError for non-members (as for a room
        that does not exist), RoomDeletedError when it is deleted already. On PostgreSQL the
        statements run as the caller, so RLS refuses them too for anyone but an owner.
        """
        async with self.as_user(identity) as conn:
            await lock_for_deletion(conn)
            await self._owned(conn, room_id, identity)
            if not await erase_rows(conn, room_id):  # only if RLS refused the delete
                raise NotFoundError(f"room {room_id} not found")
            if self.changes is not None:
                await self.changes.deleted(conn, room_id, identity.user_id)
        self._committed()

    async def move_room(self, room_id: str, identity: Identity, new_id: str) -> None:
        """An owner moves the room to ``new_id``: every row re-keyed, the old id retired.

        The same refusals as ``delete_room``. On PostgreSQL the move is one SECURITY DEFINER
        function that checks the caller's ownership again (pairpilot.storage.moving).
        """
        async with self.as_user(identity) as conn:
            await lock_for_deletion(conn)
            await self._owned(conn, room_id, identity)
            await move_rows(conn, room_id, new_id)

    async def _owned(self, conn: AsyncConnection, room_id: str, identity: Identity) -> None:
        """Return if the caller owns the room; else raise why not."""
        found = await self._membership(conn, room_id, identity.user_id)
        if found is None:
            retired = await retired_error(conn, room_id, identity.user_id)
            raise retired or NotFoundError(f"room {room_id} not found")
        require_owner(found[1].role)

    async def delete_user(self, identity: Identity) -> tuple[list[str], list[str]]:
        """The caller leaves every room; the rooms they alone own are deleted as by their owner.

        Returns the deleted rooms and the rooms left. Each room is its own transaction, under
        the deletion lock (which role changes of another owner do not take: a co-owner demoted
        at that instant may leave a room with no owner, never a deleted room with members).
        """
        async with self.as_user(identity) as conn:
            found = await conn.execute(
                sa.select(room_members.c.room_id)
                .where(room_members.c.user_id == identity.user_id)
                .order_by(room_members.c.room_id)
            )
            mine = list(found.scalars())
        deleted: list[str] = []
        left: list[str] = []
        for room_id in mine:
            async with self.as_user(identity) as conn:
                await lock_for_deletion(conn)
                everyone = await self._members(conn, room_id)
                me = next((m for m in everyone if m.user_id == identity.user_id), None)
                if me is None:  # gone meanwhile
                    continue
                owners = [m for m in everyone if m.role is Role.OWNER]
                if owners == [me]:
                    await erase_rows(conn, room_id)
                    deleted.append(room_id)
                    if self.changes is not None:
                        await self.changes.deleted(conn, room_id, identity.user_id)
                else:
                    await conn.execute(
                        room_members.delete().where(
                            room_members.c.room_id == room_id,
                            room_members.c.user_id == identity.user_id,
                        )
                    )
                    left.append(room_id)
                    if self.changes is not None:
                        await self.changes.left(conn, room_id, identity.user_id)
            self._committed()
        return deleted, left

    def _default_role(self, room_id: str) -> sa.ColumnElement[str]:
        if self._postgres:
            # The joiner cannot see the room yet; a SECURITY DEFINER helper reads its default.
            return sa.func.pairpilot_room_default_role(room_id, type_=sa.String)
        return sa.select(rooms.c.default_role).where(rooms.c.id == room_id).scalar_subquery()

    async def _locked_pair(
        self, conn: AsyncConnection, room_id: str, identity: Identity, target: str
    ) -> tuple[Member, Member, int]:
        """Under the room's roles lock: the caller, the target and the owner count.

        NotFoundError when either is not a member.
        """
        await lock_room(conn, room_id, ROLES_LOCK)
        everyone = await self._members(conn, room_id)
        me = next((m for m in everyone if m.user_id == identity.user_id), None)
        if me is None:
            raise NotFoundError(f"room {room_id} not found")
        found = next((m for m in everyone if m.user_id == target), None)
        if found is None:
            raise NotFoundError(f"user {target} is not a member of {room_id}")
        return me, found, sum(member.role is Role.OWNER for member in everyone)

    async def _members(self, conn: AsyncConnection, room_id: str) -> list[Member]:
        rows = await conn.execute(
            sa.select(room_members.c.user_id, room_members.c.role, room_members.c.name)
            .where(room_members.c.room_id == room_id)
            .order_by(room_members.c.created_at, room_members.c.user_id)
        )
        return [Member(row.user_id, Role(row.role), row.name) for row in rows]

    async def _membership(
        self, conn: AsyncConnection, room_id: str, user_id: str
    ) -> tuple[RoomInfo, Member] | None:
        row = (
            await conn.execute(
                sa.select(rooms, room_members.c.role, room_members.c.name)
                .join(room_members, room_members.c.room_id == rooms.c.id)
                .where(rooms.c.id == room_id, room_members.c.user_id == user_id)
            )
        ).first()
        if row is None:
            return None
        room = RoomInfo(
            row.id,
            row.owner_id,
            Role(row.default_role),
            utc(row.created_at),
            LinkAccess(row.link_access),
        )
        return room, Member(user_id, Role(row.role), row.name)


def _without_nul(value: object) -> object:
    """``value`` with the NUL character removed from every string.

    PostgreSQL's jsonb refuses it, RLS reads the claims as jsonb, and a token from another
    issuer may carry one in any claim.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value
