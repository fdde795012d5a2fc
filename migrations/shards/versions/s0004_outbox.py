"""The transactional outbox: an event commits with its change, one row per handler, and
is deleted when that handler has finished. It replaces posts.fanout_state: a post's
pending fan-out is now an outbox row for the feed's fan-out handler.

Revision ID: s0004
Revises: s0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0004"
down_revision: str | Sequence[str] | None = "s0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The handler name registered by domain/feed/jobs.py, frozen here as data.
FAN_OUT_HANDLER = "feed.fan_out"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE outbox (
            id bigint PRIMARY KEY DEFAULT next_id(),
            topic text NOT NULL,
            handler text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 0
        )
        """
    )
    # Fan-outs still owed become deliveries; their progress cursor stays on the post.
    op.execute(
        f"""
        INSERT INTO outbox (topic, handler, payload)
        SELECT 'post.created', '{FAN_OUT_HANDLER}',
               jsonb_build_object('post_id', id, 'author_id', author_id)
        FROM posts WHERE fanout_state = 'pending'
        """
    )
    op.execute("DROP INDEX posts_fanout_pending")
    op.execute("ALTER TABLE posts DROP COLUMN fanout_state")


def downgrade() -> None:
    op.execute("ALTER TABLE posts ADD COLUMN fanout_state text NOT NULL DEFAULT 'done'")
    op.execute(
        f"""
        UPDATE posts SET fanout_state = 'pending'
        WHERE id IN (
            SELECT (payload->>'post_id')::bigint FROM outbox WHERE handler = '{FAN_OUT_HANDLER}'
        )
        """
    )
    op.execute("CREATE INDEX posts_fanout_pending ON posts (id) WHERE fanout_state = 'pending'")
    op.execute("DROP TABLE outbox")
