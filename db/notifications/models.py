"""Notifications, in the recipient's shard. Events of one kind about one thing (likes of
a post, new followers) fold into one unread group: ``actor_count`` distinct actors, the
latest few named. ``revision`` is a fresh id each time a group changes, so that a client
catching up asks for everything after the last revision it saw."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, DateTime, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = snowflake_pk()
    recipient_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int | None] = mapped_column(BigInteger)
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    story_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_count: Mapped[int] = mapped_column(Integer, default=0)
    latest_actor_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), default=list)
    revision: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationActor(Base):
    __tablename__ = "notification_actors"

    notification_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    actor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class NotificationEvent(Base):
    """An event already folded into the recipient's notifications (idempotence)."""

    __tablename__ = "notification_events"

    recipient_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_key: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
