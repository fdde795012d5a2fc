"""Home feed: each post records its fan-out state, so a sweeper can finish any fan-out a
crash, a kill or a lost queue interrupted; follower counts are indexed to find the large
accounts whose posts are merged at read time instead of fanned out.

Revision ID: s0003
Revises: s0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0003"
down_revision: str | Sequence[str] | None = "s0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows count as done: feeds built later by a rebuild read them from the table.
    op.execute("ALTER TABLE posts ADD COLUMN fanout_state text NOT NULL DEFAULT 'done'")
    op.execute("ALTER TABLE posts ADD COLUMN fanout_cursor bigint NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX posts_fanout_pending ON posts (id) WHERE fanout_state = 'pending'")
    op.execute("CREATE INDEX users_by_follower_count ON users (follower_count DESC)")


def downgrade() -> None:
    op.execute("DROP INDEX users_by_follower_count")
    op.execute("DROP INDEX posts_fanout_pending")
    op.execute("ALTER TABLE posts DROP COLUMN fanout_cursor")
    op.execute("ALTER TABLE posts DROP COLUMN fanout_state")
