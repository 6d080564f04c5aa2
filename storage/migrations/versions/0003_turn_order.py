"""The order of a thread's turns: a number per thread, given at insert, unique; and an index
of the open turns alone.

A timestamp taken before the insert can order a turn before one that was committed first
(two replicas recording two messages of one thread at the same moment); the per-thread number
is one more than the thread's highest when the row is written, and the unique index makes a
concurrent insert that took the same number wait and retry. So a claim needs no lock: the first
open turn of a thread is the same in every snapshot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('received', 'running', 'completed')"


def upgrade() -> None:
    """Number the existing turns of each thread in their old order, then keep it unique."""
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE turns SET seq = (SELECT count(*) FROM turns AS earlier"
        " WHERE earlier.thread_key = turns.thread_key AND (earlier.created_at < turns.created_at"
        " OR (earlier.created_at = turns.created_at AND earlier.turn_id <= turns.turn_id)))"
    )
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ix_turns_thread_key_created_at")
        batch.create_index("ux_turns_thread_key_seq", ["thread_key", "seq"], unique=True)
    # Open turns only: what claims look through stays small however long the ledger grows.
    op.create_index(
        "ix_turns_open_created_at",
        "turns",
        ["created_at", "turn_id"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    """Back to ordering by time."""
    op.drop_index("ix_turns_open_created_at", table_name="turns")
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ux_turns_thread_key_seq")
        batch.create_index("ix_turns_thread_key_created_at", ["thread_key", "created_at"])
        batch.drop_column("seq")
