"""Explore's interaction log, in each person's shard (migration s0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class ExploreInteraction(Base):
    __tablename__ = "explore_interactions"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    signal: Mapped[str] = mapped_column(Text, primary_key=True)
    author_id: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
