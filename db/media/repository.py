"""Every SQL statement about media rows. Each function takes a session already bound to
the owner's shard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.cache import to_record
from db.media.models import Media
from db.media.records import MediaVariant, StoredMedia

# pg_advisory_xact_lock's first key for an owner's uploads ("MEDI").
UPLOAD_LOCK_SPACE = 0x4D454449


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


def stored_media(row: Media) -> StoredMedia:
    return to_record(StoredMedia, row)


async def get_stored_media(session: AsyncSession, ids: Sequence[int]) -> list[StoredMedia]:
    """Rows whole, for processing and deleting (``get_media`` fills the readers' cache)."""
    return [stored_media(row) for row in await get_media(session, ids)]


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


async def unfinished_before(
    session: AsyncSession, cutoff: datetime, *, limit: int
) -> list[StoredMedia]:
    """Uploads never finalized, or stuck in processing, since before ``cutoff``."""
    result = await session.scalars(
        select(Media)
        .where(Media.status.in_(("pending", "processing")), Media.created_at < cutoff)
        .order_by(Media.created_at)
        .limit(limit)
    )
    return [stored_media(row) for row in result]


async def delete_media(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(Media).where(Media.id.in_(ids)))


async def attached_to(session: AsyncSession, publisher_ids: Sequence[int]) -> list[StoredMedia]:
    """The media that the posts, stories, messages or users ``publisher_ids`` carry."""
    if not publisher_ids:
        return []
    result = await session.scalars(select(Media).where(Media.attached_to.in_(publisher_ids)))
    return [stored_media(row) for row in result]


async def media_of_owner(
    session: AsyncSession, owner_id: int, *, after_id: int | None, limit: int
) -> list[StoredMedia]:
    """An owner's media in id order, ``limit`` at a time."""
    query = select(Media).where(Media.owner_id == owner_id)
    if after_id is not None:
        query = query.where(Media.id > after_id)
    return [
        stored_media(row) for row in await session.scalars(query.order_by(Media.id).limit(limit))
    ]


async def keys_shared_with_others(
    session: AsyncSession, *, owner_id: int, content_hashes: Sequence[str], excluding: Sequence[int]
) -> set[str]:
    """Object keys of the owner's other media with the same content. Keys are unique per
    media since s0008's era; older rows and demo data may share them."""
    if not content_hashes:
        return set()
    result = await session.scalars(
        select(Media).where(
            Media.owner_id == owner_id,
            Media.content_sha256.in_(content_hashes),
            Media.id.not_in(excluding),
        )
    )
    return {key for media in result for key in object_keys(stored_media(media))}


def object_keys(media: StoredMedia) -> list[str]:
    """Every object a media row names: its variants, its video, its raw upload."""
    keys = [variant.key for variant in media.variants]
    if media.video_key is not None:
        keys.append(media.video_key)
    keys.append(media.upload_key)
    return keys


@dataclass(frozen=True)
class UploadUsage:
    unfinished_uploads: int
    unfinished_bytes: int
    kept_bytes: int


async def lock_upload_usage(session: AsyncSession, owner_id: int) -> UploadUsage:
    """What the owner holds now, under a lock on their uploads until the transaction ends,
    so that two uploads at once cannot both pass a quota."""
    await session.execute(
        select(func.pg_advisory_xact_lock(literal(UPLOAD_LOCK_SPACE), literal(owner_id % 2**31)))
    )
    unfinished = Media.status.in_(("pending", "processing"))
    row = (
        await session.execute(
            select(
                func.count().filter(unfinished),
                func.coalesce(func.sum(Media.declared_bytes).filter(unfinished), 0),
                func.coalesce(func.sum(Media.declared_bytes).filter(Media.status != "failed"), 0),
            ).where(Media.owner_id == owner_id)
        )
    ).one()
    return UploadUsage(
        unfinished_uploads=int(row[0]), unfinished_bytes=int(row[1]), kept_bytes=int(row[2])
    )


async def unpublished_before(
    session: AsyncSession, cutoff: datetime, *, limit: int
) -> list[StoredMedia]:
    """Media processed (ready or failed) before ``cutoff`` and never published."""
    result = await session.scalars(
        select(Media)
        .where(
            Media.attached_to.is_(None),
            Media.status.in_(("ready", "failed")),
            Media.processed_at < cutoff,
        )
        .order_by(Media.processed_at)
        .limit(limit)
    )
    return [stored_media(row) for row in result]


async def delete_media_of(
    session: AsyncSession, ids: Sequence[int], *, attached_to: int | None
) -> list[int]:
    """Delete media rows still attached to ``attached_to`` (None: still unpublished);
    returns the ids deleted. A row attached meanwhile is left alone."""
    if not ids:
        return []
    condition = (
        Media.attached_to.is_(None) if attached_to is None else Media.attached_to == attached_to
    )
    result = await session.scalars(
        delete(Media).where(Media.id.in_(ids), condition).returning(Media.id)
    )
    return list(result)
