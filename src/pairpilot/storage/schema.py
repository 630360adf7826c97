"""Tables, as SQLAlchemy Core objects shared by the queries and the first migration."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64), nullable=True),
    sa.Column("default_role", sa.String(16), nullable=False, server_default="editor"),
    # What joining by the id does: edit, view or none (invite only); see migration 0007.
    sa.Column("link_access", sa.String(8), nullable=False, server_default="edit"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

room_members = sa.Table(
    "room_members",
    metadata,
    sa.Column(
        "room_id", sa.String(64), sa.ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(80), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

room_snapshots = sa.Table(
    "room_snapshots",
    metadata,
    sa.Column("room_id", sa.String(64), primary_key=True),
    sa.Column("snapshot_b64", sa.Text, nullable=True),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

room_updates = sa.Table(
    "room_updates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.String(64), nullable=False),
    sa.Column("update", sa.LargeBinary, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

sa.Index("ix_room_updates_room_id_id", room_updates.c.room_id, room_updates.c.id)

room_versions = sa.Table(
    "room_versions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.String(64), nullable=False),
    # auto (compaction / unload checkpoint), named (an editor's), restore (the state a restore
    # replaced, so that the restore can be undone).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(160), nullable=True),
    sa.Column("author_id", sa.String(64), nullable=True),
    sa.Column("author_name", sa.String(80), nullable=True),
    # The document as one Yjs update, zlib-compressed; size_bytes is the uncompressed size.
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sa.Index("ix_room_versions_room_id_id", room_versions.c.room_id, room_versions.c.id)

refresh_tokens = sa.Table(
    "auth_refresh_tokens",
    metadata,
    # sha256 of the token: a leaked table hands out no usable token.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family", sa.String(36), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
)

sa.Index("ix_auth_refresh_tokens_family", refresh_tokens.c.family)

# The newest persister fence that wrote each room (see pairpilot.bus.leases).
room_fences = sa.Table(
    "room_fences",
    metadata,
    sa.Column("room_id", sa.String(64), primary_key=True),
    sa.Column("fence", sa.BigInteger, nullable=False),
)

# Deleted room ids: never used again (see pairpilot.storage.deletion).
room_tombstones = sa.Table(
    "room_tombstones",
    metadata,
    sa.Column("room_id", sa.String(64), primary_key=True),
    sa.Column(
        "deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # The id a moved room went to (None: deleted); see pairpilot.storage.moving (0008).
    sa.Column("moved_to", sa.String(64), nullable=True),
)

# Invite links: the sha256 of each signed token, its role, expiry and revocation (0007).
room_invites = sa.Table(
    "room_invites",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "room_id", sa.String(64), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

sa.Index("ix_room_invites_room_id", room_invites.c.room_id)

# Comment threads and their replies (0009; pairpilot.storage.comments). A thread has no
# ``thread_id``; a reply names its thread and carries no file, anchor or quote.
room_comments = sa.Table(
    "room_comments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "room_id", sa.String(64), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "thread_id",
        sa.String(32),
        sa.ForeignKey("room_comments.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("file", sa.Text, nullable=True),
    # base64 of Y.encodeRelativePosition of the range's start and end.
    sa.Column("anchor_start", sa.Text, nullable=True),
    sa.Column("anchor_end", sa.Text, nullable=True),
    sa.Column("quote", sa.Text, nullable=True),
    sa.Column("author_id", sa.String(64), nullable=False),
    sa.Column("author_name", sa.String(80), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("resolved_by", sa.String(64), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
)

sa.Index("ix_room_comments_room_id", room_comments.c.room_id, room_comments.c.created_at)
sa.Index("ix_room_comments_thread_id", room_comments.c.thread_id)

# Webhook endpoints (a room's, or the operator's with room_id NULL) and the durable queue of
# their deliveries (0010, pairpilot.webhooks). Only the server's own connection reads them: on
# PostgreSQL RLS is on with no policy (the secrets are never readable as `authenticated`).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("room_id", sa.String(64), nullable=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    # ",room.updated,member.left," (leading and trailing commas: matched with LIKE), or "*".
    sa.Column("events", sa.String(256), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=True),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
)

sa.Index("ix_webhook_endpoints_room_id", webhook_endpoints.c.room_id)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.String(32),
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("room_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Set by the process that claimed the delivery, until when no other may (see outbox).
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
)

sa.Index("ix_webhook_deliveries_due", webhook_deliveries.c.next_attempt_at)

# The transactional outbox of webhook events (0011, pairpilot.webhooks.journal): written in the
# transaction of the change that causes the event, fanned out to ``webhook_deliveries`` and
# deleted by the delivery task. Only the server's own role reads or writes it.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),  # their order
    sa.Column("id", sa.String(40), nullable=False, unique=True),  # the webhook-id
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("room_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A room whose room.updated is being debounced (0011): written by the flush that opens the
# window, deleted when its event is written; one left behind by a dead process is announced.
webhook_pending_updates = sa.Table(
    "webhook_pending_updates",
    metadata,
    sa.Column("room_id", sa.String(64), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)

sa.Index("ix_webhook_pending_updates_since", webhook_pending_updates.c.since)
