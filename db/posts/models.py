"""Posts, their comments and likes. All rows of a post live in the post's shard, which is
its author's shard; the hashtag index lives in the shard its tag hashes to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = snowflake_pk()
    author_id: Mapped[int] = mapped_column(BigInteger)
    caption: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Last follower id reached, so a fan-out resumed after a crash skips finished batches.
    fanout_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    # A carousel, in order: media rows in the author's shard (db/media/models.py).
    media_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), default=list)
    # A post of one video: ranked in reelsFeed and counted in views.
    is_reel: Mapped[bool] = mapped_column(Boolean, default=False)


class PostHashtag(Base):
    __tablename__ = "post_hashtags"

    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)


class PostMention(Base):
    __tablename__ = "post_mentions"

    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class HashtagPost(Base):
    """The hashtag → posts index, in the shard ``shard_for_hashtag(tag)``."""

    __tablename__ = "hashtag_posts"

    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = snowflake_pk()
    post_id: Mapped[int] = mapped_column(BigInteger)
    author_id: Mapped[int] = mapped_column(BigInteger)
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("comments.id"), nullable=True
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PostLike(Base):
    __tablename__ = "post_likes"

    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CommentLike(Base):
    __tablename__ = "comment_likes"

    comment_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SavedPost(Base):
    """A post in a user's private saved list; in the saver's shard."""

    __tablename__ = "saved_posts"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
