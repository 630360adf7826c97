"""Webhook events written with the change that causes them.

``webhook_events`` is the transactional outbox: a join, a member leaving, a room deleted, a
version written each insert their event here in the transaction that makes the change, so an
acknowledged change always has its event stored; the delivery task fans each row out to the
endpoints' ``webhook_deliveries`` and deletes it. ``webhook_pending_updates`` holds one row per
room whose ``room.updated`` is being debounced (written by the flush that opens the window),
so a process killed during the wait leaves a row that another process (or this one, started
again) announces. On PostgreSQL both have RLS on and no policy: the ``authenticated`` role
cannot write or read them (no signed-in user can forge an event); the server writes a user's
transaction's event row as its own role (pairpilot.webhooks.journal).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    """Create the two tables; on PostgreSQL, RLS on them."""
    op.create_table(
        "webhook_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_pending_updates",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_pending_updates_since", "webhook_pending_updates", ["since"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE webhook_pending_updates ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    """Drop them."""
    op.drop_table("webhook_pending_updates")
    op.drop_table("webhook_events")
