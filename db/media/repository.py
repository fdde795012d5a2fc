"""Every SQL statement about media rows. Each function takes a session already bound to
the owner's shard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.media.models import Media
from db.media.records import MediaVariant


async def insert_media(
    session: AsyncSession,
    *,
    owner_id: int,
    kind: str,
    content_type: str,
    declared_bytes: int,
    upload_key: str,
) -> Media:
    media: Media | None = await session.scalar(
        insert(Media)
        .values(
            owner_id=owner_id,
            kind=kind,
            content_type=content_type,
            declared_bytes=declared_bytes,
            upload_key=upload_key,
        )
        .returning(Media)
    )
    assert media is not None
    return media


async def get_media(session: AsyncSession, ids: Sequence[int]) -> list[Media]:
    if not ids:
        return []
    return list(await session.scalars(select(Media).where(Media.id.in_(ids))))


async def media_for_update(session: AsyncSession, media_id: int) -> Media | None:
    media: Media | None = await session.scalar(
        select(Media).where(Media.id == media_id).with_for_update()
    )
    return media


async def mark_processing(session: AsyncSession, media_id: int) -> Media | None:
    """pending → processing, once: a second finalize finds nothing to change."""
    media: Media | None = await session.scalar(
        update(Media)
        .where(Media.id == media_id, Media.status == "pending")
        .values(status="processing")
        .returning(Media)
    )
    return media


async def mark_ready(
    session: AsyncSession,
    media_id: int,
    *,
    content_sha256: str,
    width: int,
    height: int,
    duration_ms: int | None,
    placeholder: str,
    variants: Sequence[MediaVariant],
    video_key: str | None,
    now: datetime,
) -> Media | None:
    media: Media | None = await session.scalar(
        update(Media)
        .where(Media.id == media_id, Media.status == "processing")
        .values(
            status="ready",
            content_sha256=content_sha256,
            width=width,
            height=height,
            duration_ms=duration_ms,
            placeholder=placeholder,
            variants=list(variants),
            video_key=video_key,
            processed_at=now,
        )
        .returning(Media)
    )
    return media


async def mark_failed(
    session: AsyncSession, media_id: int, *, error_code: str, now: datetime
) -> Media | None:
    media: Media | None = await session.scalar(
        update(Media)
        .where(Media.id == media_id, Media.status.in_(("pending", "processing")))
        .values(status="failed", error_code=error_code, processed_at=now)
        .returning(Media)
    )
    return media


async def attach_media(
    session: AsyncSession, *, media_ids: Sequence[int], owner_id: int, attach_to: int
) -> list[Media]:
    """Publish ready, unpublished media of ``owner_id`` on a post or story; returns the
    rows it attached (fewer than asked when some are not the owner's, not ready, or
    published already)."""
    if not media_ids:
        return []
    result = await session.scalars(
        update(Media)
        .where(
            Media.id.in_(media_ids),
            Media.owner_id == owner_id,
            Media.status == "ready",
            Media.attached_to.is_(None),
        )
        .values(attached_to=attach_to)
        .returning(Media)
    )
    return list(result)


async def kinds_of_ready(
    session: AsyncSession, media_ids: Sequence[int], *, owner_id: int
) -> dict[int, str]:
    if not media_ids:
        return {}
    result = await session.execute(
        select(Media.id, Media.kind).where(
            Media.id.in_(media_ids), Media.owner_id == owner_id, Media.status == "ready"
        )
    )
    return {media_id: kind for media_id, kind in result.all()}


async def ready_media_of(session: AsyncSession, *, media_id: int, owner_id: int) -> Media | None:
    media: Media | None = await session.scalar(
        select(Media).where(
            Media.id == media_id, Media.owner_id == owner_id, Media.status == "ready"
        )
    )
    return media


async def unfinished_before(session: AsyncSession, cutoff: datetime, *, limit: int) -> list[Media]:
    """Uploads never finalized, or stuck in processing, since before ``cutoff``."""
    result = await session.scalars(
        select(Media)
        .where(Media.status.in_(("pending", "processing")), Media.created_at < cutoff)
        .order_by(Media.created_at)
        .limit(limit)
    )
    return list(result)


async def delete_media(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(Media).where(Media.id.in_(ids)))
