"""Media (uploads and their processed variants), carousels on posts, saved posts, stories
with their views and close friends, and reel views.

Every row lives in its owner's shard: media in the uploader's (so a post and the media it
publishes commit together), a saved post in the saver's, a story and its views in the
author's, a reel view in the reel's.

Revision ID: s0005
Revises: s0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0005"
down_revision: str | Sequence[str] | None = "s0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE media (
            id bigint PRIMARY KEY DEFAULT next_id(),
            owner_id bigint NOT NULL,
            kind text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            content_type text NOT NULL,
            declared_bytes bigint NOT NULL,
            upload_key text NOT NULL,
            content_sha256 text,
            width integer,
            height integer,
            duration_ms integer,
            placeholder text,
            variants jsonb NOT NULL DEFAULT '[]',
            video_key text,
            error_code text,
            attached_to bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            processed_at timestamptz
        )
        """
    )
    # The sweeper's scan for uploads never finalized or never processed.
    op.execute(
        "CREATE INDEX media_unfinished ON media (created_at) "
        "WHERE status IN ('pending', 'processing')"
    )
    op.execute("ALTER TABLE posts ADD COLUMN media_ids bigint[] NOT NULL DEFAULT '{}'")
    op.execute("ALTER TABLE posts ADD COLUMN is_reel boolean NOT NULL DEFAULT false")
    op.execute(
        "CREATE INDEX posts_reels ON posts (created_at DESC) WHERE is_reel AND deleted_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE saved_posts (
            user_id bigint NOT NULL,
            post_id bigint NOT NULL,
            saved_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, post_id)
        )
        """
    )
    op.execute("CREATE INDEX saved_posts_newest ON saved_posts (user_id, saved_at DESC, post_id)")
    op.execute(
        """
        CREATE TABLE stories (
            id bigint PRIMARY KEY DEFAULT next_id(),
            author_id bigint NOT NULL,
            media_id bigint NOT NULL,
            audience text NOT NULL DEFAULT 'everyone',
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX stories_by_author ON stories (author_id, expires_at)")
    op.execute("CREATE INDEX stories_by_expiry ON stories (expires_at)")
    op.execute(
        """
        CREATE TABLE story_views (
            story_id bigint NOT NULL,
            viewer_id bigint NOT NULL,
            viewed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (story_id, viewer_id)
        )
        """
    )
    # Rebuilding a viewer's seen set asks every shard for that viewer's recent views.
    op.execute("CREATE INDEX story_views_by_viewer ON story_views (viewer_id, viewed_at)")
    op.execute(
        """
        CREATE TABLE close_friends (
            user_id bigint NOT NULL,
            friend_id bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, friend_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE post_views (
            post_id bigint NOT NULL,
            viewer_id bigint NOT NULL,
            viewed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (post_id, viewer_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE post_views")
    op.execute("DROP TABLE close_friends")
    op.execute("DROP TABLE story_views")
    op.execute("DROP TABLE stories")
    op.execute("DROP TABLE saved_posts")
    op.execute("DROP INDEX posts_reels")
    op.execute("ALTER TABLE posts DROP COLUMN is_reel")
    op.execute("ALTER TABLE posts DROP COLUMN media_ids")
    op.execute("DROP TABLE media")
