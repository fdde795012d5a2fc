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


class StoredMedia(msgspec.Struct, frozen=True):
    """A media row whole, as processing and the lifecycle work on it: unlike a
    ``MediaRecord`` it names the raw upload, its declared size and the content hash, so it
    goes to no cache and no client."""

    id: int
    owner_id: int
    kind: MediaKind
    status: MediaStatus
    content_type: str
    declared_bytes: int
    upload_key: str
    created_at: datetime
    content_sha256: str | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    placeholder: str | None = None
    variants: list[MediaVariant] = msgspec.field(default_factory=list)
    video_key: str | None = None
    error_code: str | None = None
    attached_to: int | None = None
    processed_at: datetime | None = None
