"""The webhook rows that storage's own writers add inside their transactions.

The flush that opens a room's ``room.updated`` debounce window writes the room's pending row
in its own transaction (pairpilot.webhooks.journal says why), so the row and the edits it
announces are committed together.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from pairpilot.storage.schema import webhook_pending_updates


async def open_update_windows(
    conn: AsyncConnection, room_ids: Collection[str], at: datetime
) -> None:
    """Mark each room's ``room.updated`` pending since ``at`` (a live window takes an old row)."""
    if not room_ids:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(webhook_pending_updates).values(
        [{"room_id": room_id, "since": at} for room_id in sorted(room_ids)]
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[webhook_pending_updates.c.room_id],
            set_={"since": statement.excluded.since},
        )
    )
