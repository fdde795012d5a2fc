"""Explore's interaction log: what each person did with posts and stories (likes,
comments, saves, reel views, story views), appended by event handlers after the
writer's commit, in the person's shard. Training reads this log, never the likes,
comments or views tables themselves.

Revision ID: s0007
Revises: s0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0007"
down_revision: str | Sequence[str] | None = "s0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per (person, item, signal): doing it again refreshes the time, so a
    # redelivered event or a like, unlike and like again counts once.
    op.execute(
        """
        CREATE TABLE explore_interactions (
            user_id bigint NOT NULL,
            item_id bigint NOT NULL,
            signal text NOT NULL,
            author_id bigint NOT NULL,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (user_id, item_id, signal)
        )
        """
    )
    op.execute("CREATE INDEX explore_interactions_recent ON explore_interactions (occurred_at)")


def downgrade() -> None:
    op.execute("DROP TABLE explore_interactions")
