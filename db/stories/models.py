"""Stories: a photo or video that lives for 24 hours. A story and its views live in the
author's shard; a close-friends list in its owner's."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = snowflake_pk()
    author_id: Mapped[int] = mapped_column(BigInteger)
    media_id: Mapped[int] = mapped_column(BigInteger)
    # "everyone" (whoever may see the author's posts) or "close_friends".
    audience: Mapped[str] = mapped_column(Text, default="everyone")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoryView(Base):
    __tablename__ = "story_views"

    story_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CloseFriend(Base):
    __tablename__ = "close_friends"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    friend_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
