"""Persister fences: the database refuses a write from a lease holder that was replaced.

Only the persistence writer touches ``room_fences``; on PostgreSQL it has RLS with no policy.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "room_fences",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE room_fences ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    """Drop it."""
    op.drop_table("room_fences")
