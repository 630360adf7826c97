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
