"""Reel views: one row per viewer and reel, in the reel's shard. The count shown is a hot
counter rebuilt from these rows, like likes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class PostView(Base):
    __tablename__ = "post_views"

    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
