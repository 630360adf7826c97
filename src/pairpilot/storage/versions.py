"""Version history queries: one table, ``room_versions``, read and written on a connection.

The caller picks the connection: the persistence writer's for automatic checkpoints and
thinning, a request's (RLS as the user, on PostgreSQL) for everything a person asks for.
States are stored zlib-compressed; code compresses three- to fivefold.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.storage.retention import Retention
from pairpilot.storage.schema import room_versions
from pairpilot.storage.store import utc


class VersionKind(StrEnum):
    """Why a version exists."""

    AUTO = "auto"
    NAMED = "named"
    RESTORE = "restore"  # the state a restore replaced


@dataclass(frozen=True, slots=True)
class Author:
    """Who made a version (named versions and restore points)."""

    id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Version:
    """A version's metadata."""

    id: int
    room_id: str
    kind: VersionKind
    name: str | None
    author_id: str | None
    author_name: str | None
    created_at: datetime
    size_bytes: int


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


_COLUMNS = (
    room_versions.c.id,
    room_versions.c.room_id,
    room_versions.c.kind,
    room_versions.c.name,
    room_versions.c.author_id,
    room_versions.c.author_name,
    room_versions.c.created_at,
    room_versions.c.size_bytes,
)


def _version(row: sa.Row[*tuple[Any, ...]]) -> Version:
    return Version(
        row.id,
        row.room_id,
        VersionKind(row.kind),
        row.name,
        row.author_id,
        row.author_name,
        utc(row.created_at),
        row.size_bytes,
    )


async def insert_version(
    conn: AsyncConnection,
    room_id: str,
    kind: VersionKind,
    state: bytes,
    at: datetime,
    *,
    name: str | None = None,
    author: Author | None = None,
) -> Version:
    """Store ``state`` (a Yjs update of the whole document) as a new version."""
    values = {
        "room_id": room_id,
        "kind": kind.value,
        "name": name,
        "author_id": author.id if author else None,
        "author_name": author.name if author else None,
        "state": zlib.compress(state, 6),
        "size_bytes": len(state),
        "created_at": at,
    }
    row = (await conn.execute(room_versions.insert().values(values).returning(*_COLUMNS))).one()
    return _version(row)


async def list_versions(
    conn: AsyncConnection, room_id: str, *, limit: int, before: int | None = None
) -> list[Version]:
    """The room's versions newest first, ``limit`` of them, with ids below ``before``."""
    query = sa.select(*_COLUMNS).where(room_versions.c.room_id == room_id)
    if before is not None:
        query = query.where(room_versions.c.id < before)
    rows = await conn.execute(query.order_by(room_versions.c.id.desc()).limit(limit))
    return [_version(row) for row in rows]


async def read_version(
    conn: AsyncConnection, room_id: str, version_id: int
) -> tuple[Version, bytes] | None:
    """A version and its state, or None when the room has no such version (for ``conn``)."""
    row = (
        await conn.execute(
            sa.select(*_COLUMNS, room_versions.c.state).where(
                room_versions.c.room_id == room_id, room_versions.c.id == version_id
            )
        )
    ).first()
    if row is None:
        return None
    return _version(row), zlib.decompress(row.state)


async def latest_checkpoint_at(conn: AsyncConnection, room_id: str) -> datetime | None:
    """When the room's newest version of any kind was made."""
    stamp = (
        await conn.execute(
            sa.select(sa.func.max(room_versions.c.created_at)).where(
                room_versions.c.room_id == room_id
            )
        )
    ).scalar()
    if stamp is None:
        return None
    return utc(stamp)


async def thin_checkpoints(
    conn: AsyncConnection, room_id: str, now: datetime, retention: Retention
) -> int:
    """Delete the automatic checkpoints ``retention`` no longer keeps; how many went."""
    rows = await conn.execute(
        sa.select(room_versions.c.id, room_versions.c.created_at).where(
            room_versions.c.room_id == room_id, room_versions.c.kind == VersionKind.AUTO.value
        )
    )
    drop = retention.expired([(row.id, utc(row.created_at)) for row in rows], now)
    if drop:
        await conn.execute(room_versions.delete().where(room_versions.c.id.in_(drop)))
    return len(drop)
