"""Member display names; on PostgreSQL, Supabase-style Row Level Security.

The same statements run on a real Supabase database: the ``authenticated`` role and
``auth.uid()`` are created only where they do not exist yet. Membership checks go through
SECURITY DEFINER helpers so that no policy queries its own table (no recursive policies).
Only connections that keep the migrating role (the collaboration server's persistence writer)
bypass these policies; every request's transaction becomes ``authenticated`` first.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

ROLE_AND_AUTH = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS auth;
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'auth' AND p.proname = 'uid'
  ) THEN
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT nullif(
        coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        ),
        ''
      )::uuid
    $f$;
  END IF;
END $$;
GRANT USAGE ON SCHEMA auth TO authenticated, anon;
"""

HELPERS = """
CREATE OR REPLACE FUNCTION public.pairpilot_role_in(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT role FROM public.room_members
    WHERE room_id = room AND user_id = (SELECT auth.uid())::text
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_room_default_role(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT default_role FROM public.rooms WHERE id = room
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_room_owner(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT owner_id FROM public.rooms WHERE id = room
  $$;
REVOKE ALL ON FUNCTION public.pairpilot_role_in(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_room_default_role(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_room_owner(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.pairpilot_role_in(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_room_default_role(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_room_owner(text) TO authenticated;
"""

POLICIES = """
ALTER TABLE rooms ENABLE ROW LEVEL SECURITY;
ALTER TABLE room_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE room_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE room_updates ENABLE ROW LEVEL SECURITY;

-- Owners and members see the row. INSERT ... ON CONFLICT also checks the new row against the
-- SELECT policy, and the creator is not a member yet at that moment.
CREATE POLICY rooms_select ON rooms FOR SELECT TO authenticated
  USING (owner_id = (SELECT auth.uid())::text OR pairpilot_role_in(id) IS NOT NULL);
CREATE POLICY rooms_insert ON rooms FOR INSERT TO authenticated
  WITH CHECK (owner_id = (SELECT auth.uid())::text AND default_role = 'editor');
CREATE POLICY rooms_update ON rooms FOR UPDATE TO authenticated
  USING (pairpilot_role_in(id) = 'owner') WITH CHECK (pairpilot_role_in(id) = 'owner');

-- One's own membership rows, and every row of rooms one belongs to.
CREATE POLICY members_select ON room_members FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid())::text OR pairpilot_role_in(room_id) IS NOT NULL);
CREATE POLICY members_insert ON room_members FOR INSERT TO authenticated
  WITH CHECK (
    user_id = (SELECT auth.uid())::text
    AND (
      role = pairpilot_room_default_role(room_id)
      OR (role = 'owner' AND pairpilot_room_owner(room_id) = (SELECT auth.uid())::text)
    )
  );
CREATE POLICY members_update ON room_members FOR UPDATE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner') WITH CHECK (pairpilot_role_in(room_id) = 'owner');

CREATE POLICY snapshots_select ON room_snapshots FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) IS NOT NULL);
CREATE POLICY snapshots_insert ON room_snapshots FOR INSERT TO authenticated
  WITH CHECK (pairpilot_role_in(room_id) IN ('owner', 'editor'));
CREATE POLICY snapshots_update ON room_snapshots FOR UPDATE TO authenticated
  USING (pairpilot_role_in(room_id) IN ('owner', 'editor'))
  WITH CHECK (pairpilot_role_in(room_id) IN ('owner', 'editor'));

CREATE POLICY updates_select ON room_updates FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) IS NOT NULL);
CREATE POLICY updates_insert ON room_updates FOR INSERT TO authenticated
  WITH CHECK (pairpilot_role_in(room_id) IN ('owner', 'editor'));

GRANT USAGE ON SCHEMA public TO authenticated;
GRANT SELECT, INSERT, UPDATE ON rooms, room_members, room_snapshots TO authenticated;
GRANT SELECT, INSERT ON room_updates TO authenticated;
GRANT USAGE ON SEQUENCE room_updates_id_seq TO authenticated;
"""

DROP = """
DROP POLICY IF EXISTS rooms_select ON rooms;
DROP POLICY IF EXISTS rooms_insert ON rooms;
DROP POLICY IF EXISTS rooms_update ON rooms;
DROP POLICY IF EXISTS members_select ON room_members;
DROP POLICY IF EXISTS members_insert ON room_members;
DROP POLICY IF EXISTS members_update ON room_members;
DROP POLICY IF EXISTS snapshots_select ON room_snapshots;
DROP POLICY IF EXISTS snapshots_insert ON room_snapshots;
DROP POLICY IF EXISTS snapshots_update ON room_snapshots;
DROP POLICY IF EXISTS updates_select ON room_updates;
DROP POLICY IF EXISTS updates_insert ON room_updates;
ALTER TABLE rooms DISABLE ROW LEVEL SECURITY;
ALTER TABLE room_members DISABLE ROW LEVEL SECURITY;
ALTER TABLE room_snapshots DISABLE ROW LEVEL SECURITY;
ALTER TABLE room_updates DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS public.pairpilot_role_in(text);
DROP FUNCTION IF EXISTS public.pairpilot_room_default_role(text);
DROP FUNCTION IF EXISTS public.pairpilot_room_owner(text);
"""


def _statements(script: str) -> list[str]:
    """Split a script into statements; semicolons inside dollar-quoted bodies do not count.

    asyncpg prepares each statement, so a multi-statement string cannot be sent at once.
    """
    statements: list[str] = []
    current: list[str] = []
    quoted = False
    for line in script.strip().splitlines():
        current.append(line)
        for tag in ("$$", "$f$"):
            if line.count(tag) % 2:
                quoted = not quoted
        if line.rstrip().endswith(";") and not quoted:
            statements.append("\n".join(current))
            current = []
    return statements


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Add member names; enable RLS with its helpers and policies on PostgreSQL."""
    with op.batch_alter_table("room_members") as batch:
        batch.add_column(sa.Column("name", sa.String(80), nullable=True))
    if _postgres():
        for block in (ROLE_AND_AUTH, HELPERS, POLICIES):
            for statement in _statements(block):
                op.execute(statement)


def downgrade() -> None:
    """Remove the policies and helpers (roles and auth.uid() may be Supabase's: kept)."""
    if _postgres():
        for statement in _statements(DROP):
            op.execute(statement)
    with op.batch_alter_table("room_members") as batch:
        batch.drop_column("name")
