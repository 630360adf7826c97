"""Refresh tokens: opaque, stored as hashes, rotated on every use (Supabase's model).

A refresh token is used once: using it returns a new one of the same family. A token used
again after ``REUSE_GRACE`` (a stolen copy, or a client that lost the answer) revokes its whole
family, so the thief and the owner both have to sign in again; within the grace a second use
(two tabs refreshing at the same moment) gets a sibling instead.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pairpilot.errors import StorageError, UnauthenticatedError
from pairpilot.storage.schema import refresh_tokens
from pairpilot.storage.store import utc
from pairpilot.storage.versions import utc_now

REUSE_GRACE = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Holder:
    """Whom a refresh token was issued to."""

    user_id: str
    name: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    """Issues and rotates refresh tokens on the server's own connection (no request role)."""

    def __init__(
        self, engine: AsyncEngine, ttl_s: int, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._engine = engine
        self._ttl = timedelta(seconds=ttl_s)
        self.clock = clock

    async def issue(self, holder: Holder) -> str:
        """A new refresh token (of a new family) for ``holder``."""
        try:
            async with self._engine.begin() as conn:
                return await self._insert(conn, holder, str(uuid.uuid4()))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("storing a refresh token failed") from exc

    async def rotate(self, token: str) -> tuple[Holder, str]:
        """Use ``token``: its holder and the next token; UnauthenticatedError if it is not valid."""
        now = self.clock()
        try:
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == _hash(token))
                    )
                ).first()
                if row is None or utc(row.expires_at) <= now:
                    raise UnauthenticatedError("invalid or expired refresh token")
                holder = Holder(row.user_id, row.name)
                if row.used_at is not None and now - utc(row.used_at) > REUSE_GRACE:
                    await conn.execute(
                        refresh_tokens.delete().where(refresh_tokens.c.family == row.family)
                    )
                    revoked = True
                else:
                    revoked = False
                    await conn.execute(
                        refresh_tokens.update()
                        .where(refresh_tokens.c.token_hash == row.token_hash)
                        .values(used_at=row.used_at or now)
                    )
                    following = await self._insert(conn, holder, row.family)
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("rotating a refresh token failed") from exc
        if revoked:  # after the commit: the family stays revoked
            raise UnauthenticatedError("refresh token reused: every token of its family is revoked")
        return holder, following

    async def _insert(self, conn: AsyncConnection, holder: Holder, family: str) -> str:
        token = secrets.token_urlsafe(32)
        await conn.execute(
            refresh_tokens.insert().values(
                token_hash=_hash(token),
                family=family,
                user_id=holder.user_id,
                name=holder.name,
                expires_at=self.clock() + self._ttl,
                used_at=None,
            )
        )
        return token

    async def forget_user(self, user_id: str) -> int:
        """Delete every refresh token of ``user_id`` (they deleted their data); how many."""
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    refresh_tokens.delete().where(refresh_tokens.c.user_id == user_id)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("deleting refresh tokens failed") from exc
        return result.rowcount
