"""Cluster settings: the shape (shard count, database count) the data was written with.

Revision ID: g0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "g0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE TABLE cluster_settings (key text PRIMARY KEY, value text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE cluster_settings")
