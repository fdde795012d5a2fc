"""Direct messages and notifications.

A thread, its members, messages and reactions live in the thread's shard (a one-to-one
thread in the shard its pair of users hashes to, so finding it is one lookup; a group in
its creator's). Each member's inbox entry lives in the member's shard, so an inbox is one
query. Notifications, with the actors folded into them and the events already counted,
live in the recipient's shard.

Revision ID: s0006
Revises: s0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0006"
down_revision: str | Sequence[str] | None = "s0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE threads (
            id bigint PRIMARY KEY DEFAULT next_id(),
            kind text NOT NULL,
            title text,
            created_by bigint NOT NULL,
            last_seq bigint NOT NULL DEFAULT 0,
            last_message_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE direct_threads (
            user_low bigint NOT NULL,
            user_high bigint NOT NULL,
            thread_id bigint NOT NULL,
            PRIMARY KEY (user_low, user_high)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE thread_members (
            thread_id bigint NOT NULL,
            user_id bigint NOT NULL,
            added_by bigint NOT NULL,
            joined_at timestamptz NOT NULL DEFAULT now(),
            last_read_seq bigint NOT NULL DEFAULT 0,
            left_at timestamptz,
            PRIMARY KEY (thread_id, user_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE messages (
            thread_id bigint NOT NULL,
            seq bigint NOT NULL,
            id bigint NOT NULL DEFAULT next_id(),
            sender_id bigint NOT NULL,
            kind text NOT NULL,
            body text,
            post_id bigint,
            media_id bigint,
            story_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (thread_id, seq)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE message_reactions (
            thread_id bigint NOT NULL,
            seq bigint NOT NULL,
            user_id bigint NOT NULL,
            emoji text NOT NULL,
            reacted_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (thread_id, seq, user_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE inbox_entries (
            user_id bigint NOT NULL,
            thread_id bigint NOT NULL,
            folder text NOT NULL DEFAULT 'primary',
            last_activity_id bigint NOT NULL,
            PRIMARY KEY (user_id, thread_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX inbox_by_activity ON inbox_entries (user_id, folder, last_activity_id DESC)"
    )
    op.execute(
        """
        CREATE TABLE notifications (
            id bigint PRIMARY KEY DEFAULT next_id(),
            recipient_id bigint NOT NULL,
            kind text NOT NULL,
            group_key text NOT NULL,
            post_id bigint,
            comment_id bigint,
            thread_id bigint,
            story_id bigint,
            actor_count integer NOT NULL DEFAULT 0,
            latest_actor_ids bigint[] NOT NULL DEFAULT '{}',
            revision bigint NOT NULL DEFAULT next_id(),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            read_at timestamptz
        )
        """
    )
    # One open (unread) group per key: new events fold into it until it is read.
    op.execute(
        "CREATE UNIQUE INDEX notifications_open_group ON notifications (recipient_id, group_key) "
        "WHERE read_at IS NULL"
    )
    op.execute("CREATE INDEX notifications_by_revision ON notifications (recipient_id, revision)")
    op.execute(
        """
        CREATE TABLE notification_actors (
            notification_id bigint NOT NULL,
            actor_id bigint NOT NULL,
            PRIMARY KEY (notification_id, actor_id)
        )
        """
    )
    # Events already folded in, so that a delivery run twice counts once.
    op.execute(
        """
        CREATE TABLE notification_events (
            recipient_id bigint NOT NULL,
            event_key text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (recipient_id, event_key)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "notification_events",
        "notification_actors",
        "notifications",
        "inbox_entries",
        "message_reactions",
        "messages",
        "thread_members",
        "direct_threads",
        "threads",
    ):
        op.execute(f"DROP TABLE {table}")
