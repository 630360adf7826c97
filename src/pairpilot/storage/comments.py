"""Comment threads of a room (``room_comments``): read by members, written as the caller.

Every statement runs in a transaction as the caller (``RoomDirectory.as_user``), so on
PostgreSQL RLS decides too (migration 0009); the same rules are checked here first, for SQLite
and for clear answers: non-members 404, viewers 403, a reply or a delete of someone else's
comment by an editor 403. The bounds (guardrails.COMMENT_SIZE, COMMENTS_PER_ROOM) are checked
before anything is written.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.access.policy import Role, check_comment_delete, require_editor
from pairpilot.errors import NotFoundError, RefusedError
from pairpilot.guardrails import COMMENTS_PER_ROOM
from pairpilot.storage.schema import room_comments
from pairpilot.storage.store import utc

if TYPE_CHECKING:
    from pairpilot.access.identity import Identity
    from pairpilot.storage.directory import RoomDirectory

# Open and resolved threads a room holds, and replies a thread holds (README, "Quotas and
# abuse limits").
MAX_THREADS_PER_ROOM = 1000
MAX_REPLIES_PER_THREAD = 200
ID_BYTES = 12  # 16 URL-safe characters


@dataclass(frozen=True, slots=True)
class Anchor:
    """A range as two encoded Yjs relative positions (base64 of ``encodeRelativePosition``)."""

    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Comment:
    """One comment: a thread's opening comment or a reply."""

    id: str
    thread_id: str | None
    author_id: str
    author_name: str | None
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    """A thread: where it is, what it quoted, its opening comment, state and replies."""

    room_id: str
    file: str
    anchor: Anchor
    quote: str
    opening: Comment
    resolved: bool
    resolved_by: str | None
    resolved_at: datetime | None
    replies: list[Comment] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The thread's id (its opening comment's)."""
        return self.opening.id


@dataclass(frozen=True, slots=True)
class NewThread:
    """What a person gives to open a thread."""

    file: str
    anchor: Anchor
    quote: str
    body: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a delete removed: a whole thread (``comment_id == thread_id``) or one reply."""

    room_id: str
    thread_id: str
    comment_id: str


def _comment(row: sa.Row[Any]) -> Comment:
    return Comment(
        row.id, row.thread_id, row.author_id, row.author_name, row.body, utc(row.created_at)
    )


def _thread(row: sa.Row[Any]) -> Thread:
    resolved_at = row.resolved_at
    return Thread(
        row.room_id,
        row.file,
        Anchor(row.anchor_start, row.anchor_end),
        row.quote,
        _comment(row),
        bool(row.resolved),
        row.resolved_by,
        utc(resolved_at) if resolved_at is not None else None,
    )


async def _count(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> int:
    found = await conn.scalar(sa.select(sa.func.count()).select_from(room_comments).where(where))
    return int(found or 0)


class RoomComments:
    """A room's comment threads, read and written as the caller through the directory."""

    def __init__(self, directory: RoomDirectory) -> None:
        self._directory = directory

    async def _role(self, room_id: str, identity: Identity) -> Role:
        _, me = await self._directory.membership(room_id, identity)
        return me.role

    async def threads(
        self,
        room_id: str,
        identity: Identity,
        *,
        file: str | None = None,
        resolved: bool | None = None,
    ) -> list[Thread]:
        """The room's threads, oldest first, each with its replies (members; 404 otherwise)."""
        await self._role(room_id, identity)
        query = sa.select(room_comments).where(
            room_comments.c.room_id == room_id, room_comments.c.thread_id.is_(None)
        )
        if file is not None:
            query = query.where(room_comments.c.file == file)
        if resolved is not None:
            query = query.where(room_comments.c.resolved == resolved)
        async with self._directory.as_user(identity) as conn:
            threads = [
                _thread(row)
                for row in await conn.execute(
                    query.order_by(room_comments.c.created_at, room_comments.c.id)
                )
            ]
            by_id = {thread.id: thread for thread in threads}
            if by_id:
                replies = await conn.execute(
                    sa.select(room_comments)
                    .where(
                        room_comments.c.room_id == room_id,
                        room_comments.c.thread_id.in_(list(by_id)),
                    )
                    .order_by(room_comments.c.created_at, room_comments.c.id)
                )
                for row in replies:
                    by_id[row.thread_id].replies.append(_comment(row))
        return threads

    async def open_thread(self, room_id: str, identity: Identity, new: NewThread) -> Thread:
        """Keep a new thread (editors and owners; 413 too_many_comments past the room's bound)."""
        require_editor(await self._role(room_id, identity))
        now = self._directory.clock()
        thread_id = secrets.token_urlsafe(ID_BYTES)
        row = {
            "id": thread_id,
            "room_id": room_id,
            "thread_id": None,
            "file": new.file,
            "anchor_start": new.anchor.start,
            "anchor_end": new.anchor.end,
            "quote": new.quote,
            "author_id": identity.user_id,
            "author_name": identity.name,
            "body": new.body,
            "created_at": now,
            "resolved": False,
        }
        async with self._directory.as_user(identity) as conn:
            threads = await _count(
                conn, (room_comments.c.room_id == room_id) & room_comments.c.thread_id.is_(None)
            )
            if threads >= MAX_THREADS_PER_ROOM:
                raise RefusedError(
                    COMMENTS_PER_ROOM,
                    f"This room has {threads} comment threads, the most it keeps:"
                    " delete some before starting another",
                )
            await conn.execute(room_comments.insert().values(**row))
        opening = Comment(thread_id, None, identity.user_id, identity.name, new.body, utc(now))
        return Thread(
            room_id,
            new.file,
            new.anchor,
            new.quote,
            opening,
            resolved=False,
            resolved_by=None,
            resolved_at=None,
        )

    async def reply(self, room_id: str, identity: Identity, thread_id: str, body: str) -> Comment:
        """Add a reply to a thread (editors and owners); 404 for a thread the room lacks."""
        require_editor(await self._role(room_id, identity))
        now = self._directory.clock()
        comment = Comment(
            secrets.token_urlsafe(ID_BYTES),
            thread_id,
            identity.user_id,
            identity.name,
            body,
            utc(now),
        )
        async with self._directory.as_user(identity) as conn:
            await self._thread_row(conn, room_id, thread_id)
            replies = await _count(conn, room_comments.c.thread_id == thread_id)
            if replies >= MAX_REPLIES_PER_THREAD:
                raise RefusedError(
                    COMMENTS_PER_ROOM,
                    f"This thread has {replies} replies, the most it keeps: start a new thread",
                )
            await conn.execute(
                room_comments.insert().values(
                    id=comment.id,
                    room_id=room_id,
                    thread_id=thread_id,
                    author_id=identity.user_id,
                    author_name=identity.name,
                    body=body,
                    created_at=now,
                    resolved=False,
                )
            )
        return comment

    async def set_resolved(
        self, room_id: str, identity: Identity, thread_id: str, *, resolved: bool
    ) -> Thread:
        """Resolve or reopen a thread (editors and owners, anyone's thread); the thread after."""
        require_editor(await self._role(room_id, identity))
        async with self._directory.as_user(identity) as conn:
            await self._thread_row(conn, room_id, thread_id)
            await conn.execute(
                room_comments.update()
                .where(room_comments.c.id == thread_id)
                .values(
                    resolved=resolved,
                    resolved_by=identity.user_id if resolved else None,
                    resolved_at=self._directory.clock() if resolved else None,
                )
            )
            return _thread(await self._thread_row(conn, room_id, thread_id))

    async def delete(self, room_id: str, identity: Identity, comment_id: str) -> Deleted:
        """Delete a thread (with its replies) or a reply: its author, or an owner."""
        role = await self._role(room_id, identity)
        async with self._directory.as_user(identity) as conn:
            row = (
                await conn.execute(
                    sa.select(room_comments.c.author_id, room_comments.c.thread_id).where(
                        room_comments.c.room_id == room_id, room_comments.c.id == comment_id
                    )
                )
            ).first()
            if row is None:
                raise NotFoundError(f"room {room_id} has no comment {comment_id}")
            check_comment_delete(role, identity.user_id, row.author_id)
            # A thread's replies go with it (the foreign key cascades, past RLS, on both backends).
            await conn.execute(room_comments.delete().where(room_comments.c.id == comment_id))
        return Deleted(room_id, row.thread_id or comment_id, comment_id)

    async def _thread_row(self, conn: AsyncConnection, room_id: str, thread_id: str) -> sa.Row[Any]:
        row = (
            await conn.execute(
                sa.select(room_comments).where(
                    room_comments.c.room_id == room_id,
                    room_comments.c.id == thread_id,
                    room_comments.c.thread_id.is_(None),
                )
            )
        ).first()
        if row is None:
            raise NotFoundError(f"room {room_id} has no comment thread {thread_id}")
        return row


async def erase_authored(directory: RoomDirectory, identity: Identity) -> list[Deleted]:
    """Delete every comment the caller wrote, in every room: their data, whatever their role.

    Returns what went, for the rooms' pages: threads (with their replies) and replies; replies
    under a thread that went are not listed, the thread's deletion covers them.
    """
    async with directory.as_user(identity) as conn:
        if conn.dialect.name == "postgresql":
            # Viewers may not delete comments under RLS, but their data is theirs to erase.
            rows = list(await conn.execute(sa.text("SELECT * FROM pairpilot_erase_my_comments()")))
        else:
            rows = list(
                await conn.execute(
                    room_comments.delete()
                    .where(room_comments.c.author_id == identity.user_id)
                    .returning(
                        room_comments.c.room_id, room_comments.c.thread_id, room_comments.c.id
                    )
                )
            )
    threads = {row.id for row in rows if row.thread_id is None}
    return [
        Deleted(row.room_id, row.thread_id or row.id, row.id)
        for row in rows
        if row.thread_id is None or row.thread_id not in threads
    ]
