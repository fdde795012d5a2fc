"""Direct messages. A thread, its members, messages and reactions live in the thread's
shard; each member's inbox entry in the member's own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class Thread(Base):
    __tablename__ = "threads"

    id: Mapped[int] = snowflake_pk()
    # "direct" (two people, found by their pair) or "group" (up to 32).
    kind: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(BigInteger)
    # The last message's sequence number: taken under the row's lock, so strictly increasing.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DirectThread(Base):
    """The one-to-one thread of a pair of users, in the shard the pair hashes to."""

    __tablename__ = "direct_threads"

    user_low: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_high: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    thread_id: Mapped[int] = mapped_column(BigInteger)


class ThreadMember(Base):
    __tablename__ = "thread_members"

    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    added_by: Mapped[int] = mapped_column(BigInteger)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    __tablename__ = "messages"

    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, server_default=func.next_id())
    sender_id: Mapped[int] = mapped_column(BigInteger)
    # "text", "post" (a shared post), "media" or "story_reply".
    kind: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    media_id: Mapped[int | None] = mapped_column(BigInteger)
    story_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MessageReaction(Base):
    __tablename__ = "message_reactions"

    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    emoji: Mapped[str] = mapped_column(Text)
    reacted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InboxEntry(Base):
    __tablename__ = "inbox_entries"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # "primary", or "requests" for a private account's threads it has not accepted.
    folder: Mapped[str] = mapped_column(Text, default="primary")
    # The id of the thread's latest message (or of the thread): ids sort by time.
    last_activity_id: Mapped[int] = mapped_column(BigInteger)
