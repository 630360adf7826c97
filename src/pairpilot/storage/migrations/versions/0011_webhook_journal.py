"""Webhook events written with the change that causes them, and a moved room's endpoints.

``webhook_events`` is the transactional outbox: a join, a member leaving, a room deleted, a
version written each insert their event here in the transaction that makes the change, so an
acknowledged change always has its event stored; the delivery task fans each row out to the
endpoints' ``webhook_deliveries`` and deletes it. ``webhook_pending_updates`` holds one row per
room whose ``room.updated`` is being debounced (written by the flush that opens the window),
so a process killed during the wait leaves a row that another process (or this one, started
again) announces. On PostgreSQL both have RLS on and no policy: the ``authenticated`` role
cannot write or read them (no signed-in user can forge an event); the server writes a user's
transaction's event row as its own role (pairpilot.webhooks.journal).

``pairpilot_move_room`` is replaced with one that also re-keys the room's endpoints, their
queued deliveries, its events not yet fanned out and its pending update (a moved room's
endpoints go with it).

Revision ID: 0011
Revises: 0010
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"

WEBHOOK_TABLES = (
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_events",
    "webhook_pending_updates",
)


def _migration(name: str) -> object:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"pairpilot_migration_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot read {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _move_functions() -> tuple[str, str]:
    """0009's move function (what a downgrade puts back) and this one (it re-keys webhooks)."""
    previous = str(_migration("0009_room_comments.py").MOVE)  # type: ignore[attr-defined]
    anchor = "    UPDATE public.room_comments SET room_id = new_id WHERE room_id = old_id;\n"
    if anchor not in previous:
        raise RuntimeError("0009's move function changed: re-key the webhooks by hand")
    update = "    UPDATE public.{} SET room_id = new_id WHERE room_id = old_id;\n"
    rekeyed = "".join(update.format(table) for table in WEBHOOK_TABLES)  # our own table names
    return previous, previous.replace(anchor, anchor + rekeyed)


def upgrade() -> None:
    """Create the two tables; on PostgreSQL, RLS on them and the move that carries webhooks."""
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
        op.execute(_move_functions()[1])


def downgrade() -> None:
    """Drop them, and put 0009's move function back."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_move_functions()[0])
    op.drop_table("webhook_pending_updates")
    op.drop_table("webhook_events")
