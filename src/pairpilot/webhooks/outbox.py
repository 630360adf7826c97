"""Webhook endpoints and the durable queue of their deliveries, on the server's own connection.

An event becomes one row per endpoint that wants it (``EventJournal.fan_out``; the pair
endpoint/event is unique). A process
``claim``s due rows by setting ``claimed_until``: on PostgreSQL the rows are picked with
``FOR UPDATE SKIP LOCKED``, so two processes claiming at once take different rows; on SQLite
the one UPDATE is atomic under its single writer. A claimed row is no other process's until
its claim runs out (a process killed mid-send: the row is sent again, with the same
``webhook-id``). A delivered row is deleted; a failed one is claimed again at its next attempt.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from pairpilot.errors import StorageError
from pairpilot.storage.schema import webhook_deliveries, webhook_endpoints
from pairpilot.storage.store import utc
from pairpilot.storage.versions import utc_now

OPERATOR_ENDPOINT = "operator"
ALL_EVENTS = "*"
ROOM_DELETED_REASON = "room deleted"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as its owner sees it (never its secret, after creation)."""

    id: str
    room_id: str | None
    url: str
    events: list[str] | None  # None: every event
    created_by: str | None
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    last_error: str | None
    last_success_at: datetime | None
    pending: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process holds: where it goes, with which secret, and what."""

    id: int
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    room_id: str
    payload: str
    attempts: int
    created_at: datetime
    check_address: bool  # a room owner's endpoint (the SSRF guard applies), not the operator's


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    import base64  # noqa: PLC0415 - only when an endpoint is made

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _events_column(events: list[str] | None) -> str:
    return ALL_EVENTS if not events else "," + ",".join(sorted(set(events))) + ","


def _events_of(column: str) -> list[str] | None:
    return None if column == ALL_EVENTS else [e for e in column.split(",") if e]


class WebhookOutbox:
    """Endpoints and deliveries; every failure surfaces as StorageError."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self.clock = clock

    # endpoints

    async def set_operator(self, url: str | None, secret: str | None) -> None:
        """Make the operator's endpoint (every room, every event) what the settings say."""
        try:
            async with self._engine.begin() as conn:
                table = webhook_endpoints
                found = (
                    await conn.execute(
                        sa.select(table.c.url, table.c.secret).where(
                            table.c.id == OPERATOR_ENDPOINT
                        )
                    )
                ).first()
                if url is None or secret is None:
                    await conn.execute(table.delete().where(table.c.id == OPERATOR_ENDPOINT))
                elif found is None:
                    await conn.execute(
                        table.insert().values(
                            id=OPERATOR_ENDPOINT, url=url, secret=secret, events=ALL_EVENTS
                        )
                    )
                elif tuple(found) != (url, secret):  # a new address or secret: enabled again
                    await conn.execute(
                        table.update()
                        .where(table.c.id == OPERATOR_ENDPOINT)
                        .values(url=url, secret=secret, disabled_at=None, disabled_reason=None)
                    )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("storing the operator's webhook failed") from exc

    async def add(
        self, room_id: str, url: str, events: list[str] | None, created_by: str, most: int
    ) -> tuple[str, str] | None:
        """A new endpoint of the room: its id and secret; None when the room has ``most``."""
        endpoint_id, secret = secrets.token_urlsafe(12), new_secret()
        table = webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                count = await conn.scalar(
                    sa.select(sa.func.count()).select_from(table).where(table.c.room_id == room_id)
                )
                if (count or 0) >= most:
                    return None
                await conn.execute(
                    table.insert().values(
                        id=endpoint_id,
                        room_id=room_id,
                        url=url,
                        secret=secret,
                        events=_events_column(events),
                        created_by=created_by,
                        created_at=self.clock(),
                    )
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("storing a webhook failed") from exc
        return endpoint_id, secret

    async def endpoints(self, room_id: str | None) -> list[Endpoint]:
        """The room's endpoints (the operator's when None), oldest first."""
        table, queue = webhook_endpoints, webhook_deliveries
        pending = (
            sa.select(sa.func.count())
            .where(queue.c.endpoint_id == table.c.id)
            .scalar_subquery()
            .label("pending")
        )
        where = table.c.room_id.is_(None) if room_id is None else table.c.room_id == room_id
        query = (
            sa.select(table, pending)
            .where(where, table.c.disabled_reason.is_distinct_from(ROOM_DELETED_REASON))
            .order_by(table.c.created_at, table.c.id)
        )
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("reading webhooks failed") from exc
        return [
            Endpoint(
                id=row["id"],
                room_id=row["room_id"],
                url=row["url"],
                events=_events_of(row["events"]),
                created_by=row["created_by"],
                created_at=utc(row["created_at"]),
                disabled_at=utc(row["disabled_at"]) if row["disabled_at"] else None,
                disabled_reason=row["disabled_reason"],
                last_error=row["last_error"],
                last_success_at=utc(row["last_success_at"]) if row["last_success_at"] else None,
                pending=int(row["pending"]),
            )
            for row in rows
        ]

    async def remove(self, room_id: str, endpoint_id: str) -> bool:
        """Delete the room's endpoint and its queue; False when the room has no such one."""
        table = webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    webhook_deliveries.delete().where(
                        webhook_deliveries.c.endpoint_id == endpoint_id
                    )
                )
                done = await conn.execute(
                    table.delete().where(table.c.id == endpoint_id, table.c.room_id == room_id)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("deleting a webhook failed") from exc
        return done.rowcount == 1

    async def forget_creator(self, user_id: str) -> None:
        """A user erased their data: the endpoints they made stay the room's, unattributed."""
        table = webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    table.update().where(table.c.created_by == user_id).values(created_by=None)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("forgetting a webhook's creator failed") from exc

    async def any_enabled(self) -> bool:
        """Whether any endpoint is enabled (else no pending room.updated is worth storing)."""
        table = webhook_endpoints
        query = sa.select(sa.exists().where(table.c.disabled_at.is_(None)))
        try:
            async with self._engine.connect() as conn:
                return bool(await conn.scalar(query))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("reading webhook endpoints failed") from exc

    # the queue (filled by pairpilot.webhooks.journal)

    async def claim(self, limit: int, lease: timedelta, busy: set[str]) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease``, none of the ``busy`` endpoints."""
        queue, table = webhook_deliveries, webhook_endpoints
        now = self.clock()
        due = (
            sa.select(queue.c.id)
            .where(
                queue.c.next_attempt_at <= now,
                sa.or_(queue.c.claimed_until.is_(None), queue.c.claimed_until < now),
            )
            .order_by(queue.c.next_attempt_at, queue.c.id)
            .limit(limit)
        )
        if busy:
            due = due.where(queue.c.endpoint_id.not_in(sorted(busy)))
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        try:
            async with self._engine.begin() as conn:
                ids = (
                    await conn.execute(
                        queue.update()
                        .where(queue.c.id.in_(due.scalar_subquery()))
                        .values(claimed_until=now + lease)
                        .returning(queue.c.id)
                    )
                ).scalars()
                claimed = list(ids)
                if not claimed:
                    return []
                rows = (
                    await conn.execute(
                        sa.select(queue, table.c.url, table.c.secret, table.c.room_id.label("of"))
                        .join(table, table.c.id == queue.c.endpoint_id)
                        .where(queue.c.id.in_(claimed))
                        .order_by(queue.c.id)
                    )
                ).mappings()
                return [
                    Claimed(
                        id=row["id"],
                        endpoint_id=row["endpoint_id"],
                        url=row["url"],
                        secret=row["secret"],
                        event_id=row["event_id"],
                        room_id=row["room_id"],
                        payload=row["payload"],
                        attempts=row["attempts"],
                        created_at=utc(row["created_at"]),
                        check_address=row["of"] is not None,
                    )
                    for row in rows
                ]
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("claiming webhook deliveries failed") from exc

    async def delivered(self, delivery: Claimed) -> None:
        """The endpoint took it: the row goes, the endpoint's last success is now."""
        queue, table = webhook_deliveries, webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                await conn.execute(queue.delete().where(queue.c.id == delivery.id))
                await conn.execute(
                    table.update()
                    .where(table.c.id == delivery.endpoint_id)
                    .values(last_success_at=self.clock(), last_error=None)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("marking a webhook delivered failed") from exc

    async def retry(self, delivery: Claimed, error: str, at: datetime) -> None:
        """It failed: try again at ``at`` (any process may), and let the owner see why."""
        queue, table = webhook_deliveries, webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    queue.update()
                    .where(queue.c.id == delivery.id)
                    .values(attempts=queue.c.attempts + 1, next_attempt_at=at, claimed_until=None)
                )
                await conn.execute(
                    table.update()
                    .where(table.c.id == delivery.endpoint_id)
                    .values(last_error=error)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("rescheduling a webhook failed") from exc

    async def disable(self, delivery: Claimed, reason: str) -> None:
        """Give up on the endpoint: disabled with ``reason``, its queue dropped."""
        queue, table = webhook_deliveries, webhook_endpoints
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    queue.delete().where(queue.c.endpoint_id == delivery.endpoint_id)
                )
                await conn.execute(
                    table.update()
                    .where(table.c.id == delivery.endpoint_id, table.c.disabled_at.is_(None))
                    .values(disabled_at=self.clock(), disabled_reason=reason, last_error=reason)
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("disabling a webhook failed") from exc

    async def next_due(self) -> datetime | None:
        """When the earliest delivery not held by a live claim is due (None: nothing queued)."""
        queue = webhook_deliveries
        now = self.clock()
        query = sa.select(sa.func.min(queue.c.next_attempt_at)).where(
            sa.or_(queue.c.claimed_until.is_(None), queue.c.claimed_until < now)
        )
        try:
            async with self._engine.connect() as conn:
                found = await conn.scalar(query)
                if found is None:  # only claimed rows, if any: due when their claim runs out
                    found = await conn.scalar(sa.select(sa.func.min(queue.c.claimed_until)))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("reading the webhook queue failed") from exc
        return utc(found) if isinstance(found, datetime) else None

    async def sweep(self) -> None:
        """Drop deleted rooms' endpoints whose queue has been sent."""
        table, queue = webhook_endpoints, webhook_deliveries
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    table.delete().where(
                        table.c.disabled_reason == ROOM_DELETED_REASON,
                        ~sa.exists().where(queue.c.endpoint_id == table.c.id),
                    )
                )
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError("sweeping webhooks failed") from exc
