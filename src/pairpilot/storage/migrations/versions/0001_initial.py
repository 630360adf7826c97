"""Rooms, members, snapshots and the update log.

Revision ID: 0001
Revises:
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

_now = sa.func.now()


def _stamp() -> sa.Column[datetime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now)


def upgrade() -> None:
    """Create the four tables."""
    op.create_table(
        "rooms",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("default_role", sa.String(16), nullable=False, server_default="editor"),
        _stamp(),
    )
    op.create_table(
        "room_members",
        sa.Column(
            "room_id",
            sa.String(64),
            sa.ForeignKey("rooms.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        _stamp(),
    )
    op.create_table(
        "room_snapshots",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("snapshot_b64", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    )
    op.create_table(
        "room_updates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("update", sa.LargeBinary, nullable=False),
        _stamp(),
    )
    op.create_index("ix_room_updates_room_id_id", "room_updates", ["room_id", "id"])


def downgrade() -> None:
    """Drop them."""
    for table in ("room_updates", "room_snapshots", "room_members", "rooms"):
        op.drop_table(table)
