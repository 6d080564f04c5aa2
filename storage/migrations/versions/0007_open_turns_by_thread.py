"""The open turns of each thread, by their number: what a claim asks of every candidate.

Whether an earlier turn of a candidate's thread is still open was answered by crossing the
thread's index with the index of all open turns; on PostgreSQL that index also holds the
entries of row versions not vacuumed yet (every status change writes one), and a claim read
them all for each candidate. This index answers for one thread alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('received', 'running', 'completed')"


def upgrade() -> None:
    """Index the open turns by thread and number."""
    op.create_index(
        "ix_turns_open_thread_key_seq",
        "turns",
        ["thread_key", "seq"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    """Without it."""
    op.drop_index("ix_turns_open_thread_key_seq", table_name="turns")
