"""environment versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 19:28:32.302829

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema: one row per packaged version of an environment."""
    op.create_table(
        "environment_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("image", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image"),
    )
    with op.batch_alter_table("environment_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_environment_versions_name"), ["name"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("environment_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environment_versions_name"))
    op.drop_table("environment_versions")
