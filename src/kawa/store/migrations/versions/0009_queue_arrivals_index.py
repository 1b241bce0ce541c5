"""queue arrivals index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARRIVALS = "waiting_reason = 'queued'"
"""Tasks no scheduling pass has looked at yet (as the models write it)."""


def upgrade() -> None:
    """Upgrade schema: the queue's new arrivals in queue order, in a partial index."""
    op.create_index(
        "ix_tasks_arrivals",
        "tasks",
        ["state", sa.text("priority DESC"), "id"],
        unique=False,
        sqlite_where=sa.text(_ARRIVALS),
        postgresql_where=sa.text(_ARRIVALS),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_tasks_arrivals", table_name="tasks")
