"""Accounts and the social graph. Each row lives in its owner's shard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = snowflake_pk()
    username: Mapped[str] = mapped_column(Text)
    username_lower: Mapped[str] = mapped_column(Text, unique=True)
    email: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str] = mapped_column(Text, default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str] = mapped_column(Text, default="")
    avatar_media_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    follower_count: Mapped[int] = mapped_column(Integer, default=0)
    following_count: Mapped[int] = mapped_column(Integer, default=0)
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_active_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UniqueKey(Base):
    """A globally unique key other than the username (today: ``email``), in the shard its
    hash names. Usernames need no row here: a user lives in its username's hash shard, so
    ``users.username_lower`` is unique there and therefore everywhere."""

    __tablename__ = "unique_keys"

    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    owner_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuthSession(Base):
    __tablename__ = "sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Following(Base):
    """Who ``follower_id`` follows; in the follower's shard."""

    __tablename__ = "following"

    follower_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    followee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    edge_id: Mapped[int] = mapped_column(BigInteger, server_default=func.next_id())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Follower(Base):
    """Who follows ``followee_id``; in the followee's shard."""

    __tablename__ = "followers"

    followee_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    follower_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    edge_id: Mapped[int] = mapped_column(BigInteger, server_default=func.next_id())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FollowRequest(Base):
    """A pending follow of a private account; in the target's shard."""

    __tablename__ = "follow_requests"

    target_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requester_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(BigInteger, server_default=func.next_id())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Block(Base):
    """In the blocker's shard."""

    __tablename__ = "blocks"

    blocker_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    blocked_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BlockedBy(Base):
    """The mirror of ``Block`` in the blocked user's shard, so that "is anyone between
    these two blocked" is answered from the viewer's own shard."""

    __tablename__ = "blocked_by"

    blocked_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    blocker_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
