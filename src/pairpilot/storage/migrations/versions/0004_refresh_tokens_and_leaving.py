"""Refresh tokens for anonymous users; owners remove members.

``auth_refresh_tokens`` is the auth endpoint's alone: on PostgreSQL it has RLS enabled and no
policy, so no request role reads it. Owners may delete a membership (not the last owner's:
the API checks that under the room's lock), and a member may delete their own.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

POLICIES = """
ALTER TABLE auth_refresh_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY members_delete ON room_members FOR DELETE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner' OR user_id = (SELECT auth.uid())::text);
GRANT DELETE ON room_members TO authenticated;
"""

DROP = """
REVOKE DELETE ON room_members FROM authenticated;
DROP POLICY IF EXISTS members_delete ON room_members;
"""


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def upgrade() -> None:
    """Create the refresh token table; let owners remove members on PostgreSQL."""
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_auth_refresh_tokens_family", "auth_refresh_tokens", ["family"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(POLICIES):
            op.execute(statement)


def downgrade() -> None:
    """Drop them."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(DROP):
            op.execute(statement)
    op.drop_table("auth_refresh_tokens")
