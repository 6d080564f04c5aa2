"""A member's 👍/👎 on a turn's answer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """`feedback`: "up", "down", or nothing yet."""
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("feedback", sa.String(), nullable=True))


def downgrade() -> None:
    """No feedback."""
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("feedback")
