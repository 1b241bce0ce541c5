"""task list indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTED_BY = ("state", "node", "owner", "kind", "batch_id")
"""Task list filters given an index with the list's order (id) after them."""
_REPLACED = ("ix_tasks_state", "ix_tasks_node", "ix_tasks_batch_id")
"""One-column indexes that the new ones begin with."""


def upgrade() -> None:
    """Upgrade schema: each task list filter with the id (a page read in order), and
    the scheduler's queue order (pending by priority, then id)."""
    for column in _LISTED_BY:
        name = "ix_tasks_batch_id_id" if column == "batch_id" else f"ix_tasks_{column}_id"
        op.create_index(name, "tasks", [column, "id"], unique=False)
    op.create_index("ix_tasks_queue", "tasks", ["state", sa.text("priority DESC"), "id"])
    for name in _REPLACED:
        op.drop_index(name, table_name="tasks")


def downgrade() -> None:
    """Downgrade schema."""
    op.create_index("ix_tasks_state", "tasks", ["state"], unique=False)
    op.create_index("ix_tasks_node", "tasks", ["node"], unique=False)
    op.create_index("ix_tasks_batch_id", "tasks", ["batch_id"], unique=False)
    op.drop_index("ix_tasks_queue", table_name="tasks")
    for column in _LISTED_BY:
        name = "ix_tasks_batch_id_id" if column == "batch_id" else f"ix_tasks_{column}_id"
        op.drop_index(name, table_name="tasks")
