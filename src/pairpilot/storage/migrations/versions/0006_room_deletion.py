"""Deleting rooms: owners delete every row of a room; its id is retired in ``room_tombstones``.

On PostgreSQL the delete runs as the owner, so RLS decides it: owners (through the SECURITY
DEFINER ``pairpilot_role_in``) delete a room's snapshot, log, versions, fence and row, and
insert its tombstone (members cascade from the row). Nobody inserts a room whose id has a
tombstone, even past the API's own check. ``pairpilot_deleted_among`` is the writers' guard:
it waits for a delete in progress (a transaction-scoped advisory lock, shared by writers and
exclusive for a delete) and then names the tombstoned rooms of a batch, with a fresh snapshot.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

POLICIES = """
ALTER TABLE room_tombstones ENABLE ROW LEVEL SECURITY;
CREATE OR REPLACE FUNCTION public.pairpilot_room_deleted(room text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM public.room_tombstones WHERE room_id = room)
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_deleted_among(rooms text[]) RETURNS SETOF text
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT pg_advisory_xact_lock_shared(20548, 0);
    SELECT room_id FROM public.room_tombstones WHERE room_id = ANY (rooms)
  $$;
REVOKE ALL ON FUNCTION public.pairpilot_room_deleted(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_deleted_among(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.pairpilot_room_deleted(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_deleted_among(text[]) TO authenticated;
DROP POLICY IF EXISTS rooms_insert ON rooms;
CREATE POLICY rooms_insert ON rooms FOR INSERT TO authenticated
  WITH CHECK (
    owner_id = (SELECT auth.uid())::text AND default_role = 'editor'
    AND NOT pairpilot_room_deleted(id)
  );
CREATE POLICY rooms_delete ON rooms FOR DELETE TO authenticated
  USING (pairpilot_role_in(id) = 'owner');
CREATE POLICY snapshots_delete ON room_snapshots FOR DELETE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY updates_delete ON room_updates FOR DELETE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY versions_delete ON room_versions FOR DELETE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY fences_select ON room_fences FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY fences_delete ON room_fences FOR DELETE TO authenticated
  USING (pairpilot_role_in(room_id) = 'owner');
CREATE POLICY tombstones_insert ON room_tombstones FOR INSERT TO authenticated
  WITH CHECK (pairpilot_role_in(room_id) = 'owner');
GRANT DELETE ON rooms, room_snapshots, room_updates, room_versions TO authenticated;
GRANT SELECT, DELETE ON room_fences TO authenticated;
GRANT INSERT ON room_tombstones TO authenticated;
"""

DROP = """
REVOKE INSERT ON room_tombstones FROM authenticated;
REVOKE SELECT, DELETE ON room_fences FROM authenticated;
REVOKE DELETE ON rooms, room_snapshots, room_updates, room_versions FROM authenticated;
DROP POLICY IF EXISTS tombstones_insert ON room_tombstones;
DROP POLICY IF EXISTS fences_delete ON room_fences;
DROP POLICY IF EXISTS fences_select ON room_fences;
DROP POLICY IF EXISTS versions_delete ON room_versions;
DROP POLICY IF EXISTS updates_delete ON room_updates;
DROP POLICY IF EXISTS snapshots_delete ON room_snapshots;
DROP POLICY IF EXISTS rooms_delete ON rooms;
DROP POLICY IF EXISTS rooms_insert ON rooms;
CREATE POLICY rooms_insert ON rooms FOR INSERT TO authenticated
  WITH CHECK (owner_id = (SELECT auth.uid())::text AND default_role = 'editor');
DROP FUNCTION IF EXISTS public.pairpilot_deleted_among(text[]);
DROP FUNCTION IF EXISTS public.pairpilot_room_deleted(text);
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
    """Create the tombstone table; on PostgreSQL, the owners' delete policies and the guards."""
    op.create_table(
        "room_tombstones",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column(
            "deleted_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(POLICIES):
            op.execute(statement)


def downgrade() -> None:
    """Drop them (the tombstones go too: deleted ids could then be used again)."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(DROP):
            op.execute(statement)
    op.drop_table("room_tombstones")
