"""Version history: ``room_versions``, with Row Level Security on PostgreSQL.

Members read a room's versions; editors and owners create named ones (as themselves) and the
restore points a restore leaves behind. Automatic checkpoints and retention thinning are the
persistence writer's (the table owner's connection, which bypasses RLS). Nobody updates a
version; only the writer deletes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

POLICIES = """
ALTER TABLE room_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY versions_select ON room_versions FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) IS NOT NULL);
CREATE POLICY versions_insert ON room_versions FOR INSERT TO authenticated
  WITH CHECK (
    pairpilot_role_in(room_id) IN ('owner', 'editor')
    AND kind IN ('named', 'restore')
    AND author_id = (SELECT auth.uid())::text
  );
GRANT SELECT, INSERT ON room_versions TO authenticated;
GRANT USAGE ON SEQUENCE room_versions_id_seq TO authenticated;
"""

DROP = """
DROP POLICY IF EXISTS versions_select ON room_versions;
DROP POLICY IF EXISTS versions_insert ON room_versions;
"""


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def upgrade() -> None:
    """Create the table and its index; RLS policies on PostgreSQL."""
    op.create_table(
        "room_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(160), nullable=True),
        sa.Column("author_id", sa.String(64), nullable=True),
        sa.Column("author_name", sa.String(80), nullable=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_room_versions_room_id_id", "room_versions", ["room_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(POLICIES):
            op.execute(statement)


def downgrade() -> None:
    """Drop the policies and the table."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(DROP):
            op.execute(statement)
    op.drop_table("room_versions")
