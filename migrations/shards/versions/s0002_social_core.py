"""Social core: accounts, sessions, the follow graph in both directions, posts, comments, likes.

Every table lives in the shard of its owner: a user's row, sessions and outgoing edges in
the user's shard; incoming edges in the target's shard; comments and likes in the post's
shard. Globally unique keys live in the shard their hash names (``unique_keys``).

Revision ID: s0002
Revises: s0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0002"
down_revision: str | Sequence[str] | None = "s0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = """
CREATE TABLE users (
    id bigint PRIMARY KEY DEFAULT next_id(),
    username text NOT NULL,
    username_lower text NOT NULL UNIQUE,
    email text NOT NULL,
    password_hash text NOT NULL,
    full_name text NOT NULL DEFAULT '',
    bio text NOT NULL DEFAULT '',
    website text NOT NULL DEFAULT '',
    avatar_media_id bigint,
    is_private boolean NOT NULL DEFAULT false,
    follower_count integer NOT NULL DEFAULT 0,
    following_count integer NOT NULL DEFAULT 0,
    post_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX users_username_prefix ON users (username_lower text_pattern_ops)
    WHERE deleted_at IS NULL;

CREATE TABLE unique_keys (
    kind text NOT NULL,
    key text NOT NULL,
    owner_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);

CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE following (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    edge_id bigint NOT NULL DEFAULT next_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX following_by_recency ON following (follower_id, edge_id DESC);

CREATE TABLE followers (
    followee_id bigint NOT NULL,
    follower_id bigint NOT NULL,
    edge_id bigint NOT NULL DEFAULT next_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (followee_id, follower_id)
);
CREATE INDEX followers_by_recency ON followers (followee_id, edge_id DESC);

CREATE TABLE follow_requests (
    target_id bigint NOT NULL,
    requester_id bigint NOT NULL,
    request_id bigint NOT NULL DEFAULT next_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_id, requester_id)
);
CREATE INDEX follow_requests_by_recency ON follow_requests (target_id, request_id DESC);

CREATE TABLE blocks (
    blocker_id bigint NOT NULL,
    blocked_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id)
);

CREATE TABLE blocked_by (
    blocked_id bigint NOT NULL,
    blocker_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocked_id, blocker_id)
);

CREATE TABLE posts (
    id bigint PRIMARY KEY DEFAULT next_id(),
    author_id bigint NOT NULL,
    caption text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX posts_by_author ON posts (author_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE post_hashtags (
    post_id bigint NOT NULL,
    tag text NOT NULL,
    PRIMARY KEY (post_id, tag)
);

CREATE TABLE post_mentions (
    post_id bigint NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE hashtag_posts (
    tag text NOT NULL,
    post_id bigint NOT NULL,
    PRIMARY KEY (tag, post_id)
);

CREATE TABLE comments (
    id bigint PRIMARY KEY DEFAULT next_id(),
    post_id bigint NOT NULL,
    author_id bigint NOT NULL,
    parent_id bigint REFERENCES comments (id),
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX comments_top_level ON comments (post_id, id) WHERE parent_id IS NULL
    AND deleted_at IS NULL;
CREATE INDEX comments_replies ON comments (parent_id, id) WHERE deleted_at IS NULL;

CREATE TABLE post_likes (
    post_id bigint NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE comment_likes (
    comment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);
"""

DROPS = [
    "comment_likes",
    "post_likes",
    "comments",
    "hashtag_posts",
    "post_mentions",
    "post_hashtags",
    "posts",
    "blocked_by",
    "blocks",
    "follow_requests",
    "followers",
    "following",
    "sessions",
    "unique_keys",
    "users",
]


def upgrade() -> None:
    op.execute(TABLES)


def downgrade() -> None:
    for table in DROPS:
        op.execute(f"DROP TABLE {table}")
