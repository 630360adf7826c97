"""Comment threads anchored in a room's files (``room_comments``), issue #25.

A thread is a row with ``thread_id`` NULL: its file, its anchor (two encoded Yjs relative
positions, base64) and the text it quoted when it was made; its replies are rows naming it in
``thread_id`` (deleted with it). Comments live here, not in the document, so no CRDT update can
rewrite another person's words. On PostgreSQL, RLS: members read; editors and owners write
their own (the author is the caller); editors and owners resolve or reopen threads, and only
the resolution columns are granted for UPDATE (nobody rewrites a body or an author); authors
delete their own, owners any; a person deleting their data erases every comment they wrote,
in any role, through ``pairpilot_erase_my_comments`` (SECURITY DEFINER, the caller's rows only).
Moving a room re-keys its comments (``pairpilot_move_room`` is
replaced with one that does); deleting a room deletes them (owners may).

Revision ID: 0009
Revises: 0008
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

POLICIES = """
ALTER TABLE room_comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY comments_select ON room_comments FOR SELECT TO authenticated
  USING (pairpilot_role_in(room_id) IS NOT NULL);
CREATE POLICY comments_insert ON room_comments FOR INSERT TO authenticated
  WITH CHECK (
    pairpilot_role_in(room_id) IN ('owner', 'editor')
    AND author_id = (SELECT auth.uid())::text
    AND resolved = false
    AND (
      thread_id IS NULL
      OR EXISTS (
        SELECT 1 FROM room_comments t
        WHERE t.id = room_comments.thread_id AND t.room_id = room_comments.room_id
          AND t.thread_id IS NULL
      )
    )
  );
CREATE POLICY comments_update ON room_comments FOR UPDATE TO authenticated
  USING (pairpilot_role_in(room_id) IN ('owner', 'editor') AND thread_id IS NULL)
  WITH CHECK (pairpilot_role_in(room_id) IN ('owner', 'editor') AND thread_id IS NULL);
CREATE POLICY comments_delete ON room_comments FOR DELETE TO authenticated
  USING (
    pairpilot_role_in(room_id) = 'owner'
    OR (pairpilot_role_in(room_id) = 'editor' AND author_id = (SELECT auth.uid())::text)
  );
GRANT SELECT, INSERT, DELETE ON room_comments TO authenticated;
GRANT UPDATE (resolved, resolved_by, resolved_at) ON room_comments TO authenticated;
CREATE OR REPLACE FUNCTION public.pairpilot_erase_my_comments()
  RETURNS TABLE (room_id text, thread_id text, id text)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM public.room_comments c WHERE c.author_id = (SELECT auth.uid())::text
    RETURNING c.room_id, c.thread_id, c.id
  $$;
REVOKE ALL ON FUNCTION public.pairpilot_erase_my_comments() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.pairpilot_erase_my_comments() TO authenticated;
"""

MOVE = """
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
    UPDATE public.room_comments SET room_id = new_id WHERE room_id = old_id;
    DELETE FROM public.room_fences WHERE room_id = old_id;
    DELETE FROM public.room_invites WHERE room_id = old_id;
    UPDATE public.room_tombstones SET moved_to = new_id WHERE moved_to = old_id;
    INSERT INTO public.room_tombstones (room_id, moved_to) VALUES (old_id, new_id);
    DELETE FROM public.rooms WHERE id = old_id;
  END
  $$;
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


def _previous_move_function() -> str:
    """Migration 0008's move function (what a downgrade puts back), read from its file."""
    path = Path(__file__).with_name("0008_room_moves.py")
    spec = importlib.util.spec_from_file_location("pairpilot_migration_0008", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot read {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.FUNCTIONS)


def upgrade() -> None:
    """Create ``room_comments``; on PostgreSQL, its policies and the move that carries it."""
    op.create_table(
        "room_comments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "room_id",
            sa.String(64),
            sa.ForeignKey("rooms.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "thread_id",
            sa.String(32),
            sa.ForeignKey("room_comments.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("file", sa.Text, nullable=True),
        sa.Column("anchor_start", sa.Text, nullable=True),
        sa.Column("anchor_end", sa.Text, nullable=True),
        sa.Column("quote", sa.Text, nullable=True),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("author_name", sa.String(80), nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_room_comments_room_id", "room_comments", ["room_id", "created_at"])
    op.create_index("ix_room_comments_thread_id", "room_comments", ["thread_id"])
    if op.get_bind().dialect.name == "postgresql":
        for block in (POLICIES, MOVE):
            for statement in _statements(block):
                op.execute(statement)


def downgrade() -> None:
    """Drop the comments, and put 0008's move function back."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS public.pairpilot_erase_my_comments()")
        for statement in _statements(_previous_move_function()):
            op.execute(statement)
    op.drop_index("ix_room_comments_thread_id", table_name="room_comments")
    op.drop_index("ix_room_comments_room_id", table_name="room_comments")
    op.drop_table("room_comments")
