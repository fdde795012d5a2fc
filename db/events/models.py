"""The transactional outbox: events waiting for their handlers, one row per handler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, snowflake_pk


class OutboxEvent(Base):
    """Written in the same transaction as the change it reports, so both commit or
    neither does; deleted once its handler has finished. A row that stays is a delivery
    still owed: the relay's sweeper queues it again."""

    __tablename__ = "outbox"

    # From the shard's next_id(): the bits route a delivery job back to this row, and
    # the time bits say how long it has waited.
    id: Mapped[int] = snowflake_pk()
    topic: Mapped[str] = mapped_column(Text)
    handler: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Deliveries started; a sweeper re-queue counts one more.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
