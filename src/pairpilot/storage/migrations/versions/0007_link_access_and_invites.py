"""Link access per room (edit / view / none) and invite links (``room_invites``).

``rooms.link_access`` says what joining by the room's id does: ``edit`` (the default, and what
every room did before) makes editors, ``view`` viewers, ``none`` nothing (invite only).
``default_role`` stays the role a link joiner gets, kept equal to it (edit = editor, view =
viewer). An invite is a signed token (pairpilot.access.invites) whose sha256 is kept here with
its room, role, expiry and revocation. On PostgreSQL the membership INSERT policy admits a
self-join by link only while link access is not ``none``, or with the role of a live invite of
that room whose token the transaction presents in ``pairpilot.invite_token``: a SECURITY
DEFINER helper hashes it and looks it up, so knowing an invite's id is not enough.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

HELPERS = """
CREATE OR REPLACE FUNCTION public.pairpilot_room_link_access(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT link_access FROM public.rooms WHERE id = room
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_presented_invite(room text)
  RETURNS TABLE (role text, expires_at timestamptz, revoked_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT i.role, i.expires_at, i.revoked_at FROM public.room_invites i
    WHERE i.room_id = room
      AND i.token_hash = encode(
        sha256(convert_to(coalesce(current_setting('pairpilot.invite_token', true), ''), 'UTF8')),
        'hex')
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_invite_role(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.role FROM public.pairpilot_presented_invite(room) p
    WHERE p.revoked_at IS NULL AND p.expires_at > now()
  $$;
REVOKE ALL ON FUNCTION public.pairpilot_room_link_access(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_presented_invite(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_invite_role(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.pairpilot_room_link_access(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_presented_invite(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_invite_role(text) TO authenticated;
"""

POLICIES = """
ALTER TABLE room_invites ENABLE ROW LEVEL SECURITY;
CREATE POLICY invites_select ON room_invites FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY invites_insert ON room_invites FOR INSERT TO authenticated
  WITH CHECK (
    pairpilot_role_in(room_id) = 'owner' AND role IN ('editor', 'viewer')
    AND created_by = (SELECT auth.uid())::text
  );
CREATE POLICY invites_update ON room_invites FOR UPDATE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner') WITH CHECK (pairpilot_role_in(room_id) = 'owner');
GRANT SELECT, INSERT, UPDATE ON room_invites TO authenticated;
DROP POLICY IF EXISTS members_insert ON room_members;
CREATE POLICY members_insert ON room_members FOR INSERT TO authenticated
  WITH CHECK (
    user_id = (SELECT auth.uid())::text
    AND (
      (role = pairpilot_room_default_role(room_id)
        AND pairpilot_room_link_access(room_id) IS DISTINCT FROM 'none')
      OR (role = 'owner' AND pairpilot_room_owner(room_id) = (SELECT auth.uid())::text)
      OR role = pairpilot_invite_role(room_id)
    )
  );
"""

DROP = """
DROP POLICY IF EXISTS members_insert ON room_members;
CREATE POLICY members_insert ON room_members FOR INSERT TO authenticated
  WITH CHECK (
    user_id = (SELECT auth.uid())::text
    AND (
      role = pairpilot_room_default_role(room_id)
      OR (role = 'owner' AND pairpilot_room_owner(room_id) = (SELECT auth.uid())::text)
    )
  );
DROP FUNCTION IF EXISTS public.pairpilot_invite_role(text);
DROP FUNCTION IF EXISTS public.pairpilot_presented_invite(text);
DROP FUNCTION IF EXISTS public.pairpilot_room_link_access(text);
"""


def _statements(script: str) -> list[str]:
    """Split on semicolons outside the functions' dollar-quoted bodies."""
    statements: list[str] = []
    current: list[str] = []
    quoted = False
    for line in script.strip().splitlines():
        current.append(line)
        if line.count("$$") % 2:
            quoted = not quoted
        if line.rstrip().endswith(";") and not quoted:
            statements.append("\n".join(current))
            current = []
    return statements


def upgrade() -> None:
    """Add ``rooms.link_access`` (viewer-default rooms become ``view``) and ``room_invites``."""
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(
            sa.Column("link_access", sa.String(8), nullable=False, server_default="edit")
        )
    op.execute("UPDATE rooms SET link_access = 'view' WHERE default_role = 'viewer'")
    op.create_table(
        "room_invites",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "room_id",
            sa.String(64),
            sa.ForeignKey("rooms.id", ondelete="CASCADE"),
            nullable=False,
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
    op.create_index("ix_room_invites_room_id", "room_invites", ["room_id"])
    if op.get_bind().dialect.name == "postgresql":
        for block in (HELPERS, POLICIES):
            for statement in _statements(block):
                op.execute(statement)


def downgrade() -> None:
    """Drop the invites, the helpers and the column; the membership policy of 0002 returns."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(DROP):
            op.execute(statement)
    op.drop_index("ix_room_invites_room_id", table_name="room_invites")
    op.drop_table("room_invites")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("link_access")
