"""Moving a room to a new id: ``room_tombstones.moved_to`` and one function that re-keys it all.

An owner moves a room whose id could be guessed to a new, random id (issue #22, "Links"): the
room's row, memberships (with their roles), snapshot, update log and versions are re-keyed in
one transaction; its invites and persister fence are dropped; the old id is retired by a
tombstone whose ``moved_to`` names the new id (earlier moves to the old id are pointed on).
On PostgreSQL, ``pairpilot_move_room`` is SECURITY DEFINER: it re-keys other members' rows,
which no policy lets the caller touch, so it checks first, as the caller (``auth.uid()``),
that the caller owns the room, and raises ``insufficient_privilege`` otherwise. It takes the
deletion lock exclusively, like a delete, so the writers' guard (``pairpilot_deleted_among``)
sees a moved id as gone. ``pairpilot_room_retired`` says why an id is retired: NULL (it is
not), '' (deleted), the new id (moved, asked by a member of the room it went to) or '-' (moved,
asked by anyone else, who is then told nothing, not even that it existed).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION public.pairpilot_room_retired(room text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT CASE
      WHEN t.moved_to IS NULL THEN ''
      WHEN public.pairpilot_role_in(t.moved_to) IS NOT NULL THEN t.moved_to
      ELSE '-'
    END
    FROM public.room_tombstones t WHERE t.room_id = room
  $$;
CREATE OR REPLACE FUNCTION public.pairpilot_move_room(old_id text, new_id text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  BEGIN
    PERFORM pg_advisory_xact_lock(20548, 0);
    IF public.pairpilot_role_in(old_id) IS DISTINCT FROM 'owner' THEN
      RAISE EXCEPTION 'only an owner moves a room' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM public.rooms WHERE id = new_id)
       OR EXISTS (SELECT 1 FROM public.room_tombstones WHERE room_id = new_id) THEN
      RAISE EXCEPTION 'room id % is taken', new_id USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO public.rooms (id, owner_id, default_role, link_access, created_at)
      SELECT new_id, owner_id, default_role, link_access, created_at
      FROM public.rooms WHERE id = old_id;
    UPDATE public.room_members SET room_id = new_id WHERE room_id = old_id;
    UPDATE public.room_snapshots SET room_id = new_id WHERE room_id = old_id;
    UPDATE public.room_updates SET room_id = new_id WHERE room_id = old_id;
    UPDATE public.room_versions SET room_id = new_id WHERE room_id = old_id;
    DELETE FROM public.room_fences WHERE room_id = old_id;
    DELETE FROM public.room_invites WHERE room_id = old_id;
    UPDATE public.room_tombstones SET moved_to = new_id WHERE moved_to = old_id;
    INSERT INTO public.room_tombstones (room_id, moved_to) VALUES (old_id, new_id);
    DELETE FROM public.rooms WHERE id = old_id;
  END
  $$;
REVOKE ALL ON FUNCTION public.pairpilot_room_retired(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.pairpilot_move_room(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.pairpilot_room_retired(text) TO authenticated;
GRANT EXECUTE ON FUNCTION public.pairpilot_move_room(text, text) TO authenticated;
"""

DROP = """
DROP FUNCTION IF EXISTS public.pairpilot_move_room(text, text);
DROP FUNCTION IF EXISTS public.pairpilot_room_retired(text);
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
    """Add ``room_tombstones.moved_to``; on PostgreSQL, the move function and its helper."""
    with op.batch_alter_table("room_tombstones") as batch:
        batch.add_column(sa.Column("moved_to", sa.String(64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(FUNCTIONS):
            op.execute(statement)


def downgrade() -> None:
    """Drop them (moved ids then read as deleted)."""
    if op.get_bind().dialect.name == "postgresql":
        for statement in _statements(DROP):
            op.execute(statement)
    with op.batch_alter_table("room_tombstones") as batch:
        batch.drop_column("moved_to")
