"""Media as read: the processed variants and what a client needs to lay them out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

MediaKind = Literal["image", "video"]
MediaStatus = Literal["pending", "processing", "ready", "failed"]
ImageFormat = Literal["webp", "jpeg"]


class MediaVariant(msgspec.Struct, frozen=True):
    """One rendition of an image (or of a video's poster frame) in the object store."""

    width: int
    height: int
    format: ImageFormat
    key: str
    bytes: int


class MediaRecord(msgspec.Struct, frozen=True):
    id: int
    owner_id: int
    kind: MediaKind
    status: MediaStatus
    content_type: str
    created_at: datetime
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    placeholder: str | None = None
    variants: list[MediaVariant] = msgspec.field(default_factory=list)
    video_key: str | None = None
    error_code: str | None = None
    attached_to: int | None = None
