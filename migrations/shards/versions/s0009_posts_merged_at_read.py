"""Home feed: posts left to the read-time merge (their author was a large account) are
marked, so that once the author falls back below the fan-out threshold a repair can find
them and push them into the followers' feeds.

Revision ID: s0009
Revises: s0008
Create Date: 2026-12-09
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0009"
down_revision: str | Sequence[str] | None = "s0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # fanout_cursor < 0 marks a post merged at read time (db/feed/repository.py); only
    # large accounts' live posts carry it, so the index stays small.
    op.execute(
        "CREATE INDEX posts_merged_at_read ON posts (author_id, id) "
        "WHERE fanout_cursor < 0 AND deleted_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX posts_merged_at_read")
