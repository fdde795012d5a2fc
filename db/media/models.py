"""Media rows: one per upload, in the uploader's shard. The bytes live in the object
store (``db/media/storage.py``); a row holds where they are and what they are."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import BigInteger, DateTime, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from db.base import Base, snowflake_pk
from db.media.records import MediaVariant


class VariantList(TypeDecorator[list[MediaVariant]]):
    """The variants column as structs, so a row and its record hold the same values."""

    impl = JSONB
    cache_ok = True

    def process_bind_param(self, value: list[MediaVariant] | None, dialect: Dialect) -> Any:
        return msgspec.to_builtins(value or [])

    def process_result_value(self, value: Any, dialect: Dialect) -> list[MediaVariant]:
        return msgspec.convert(value or [], list[MediaVariant])


class Media(Base):
    __tablename__ = "media"

    id: Mapped[int] = snowflake_pk()
    owner_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="pending")
    content_type: Mapped[str] = mapped_column(Text)
    declared_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_key: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(Text, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    placeholder: Mapped[str | None] = mapped_column(Text, nullable=True)
    variants: Mapped[list[MediaVariant]] = mapped_column(VariantList, default=list)
    video_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The post or story that published it: media is published once.
    attached_to: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
