"""Processing an upload in a worker: decode it for real, render its variants, store them
under content-addressed keys, and mark the media ready, or failed with a typed code.

Nothing of a rejected upload is kept: its raw object is deleted and no variant is
written. The raw object of an accepted one is deleted too, once its variants are stored;
a video keeps its streams (not transcoded) in a new container without the upload's
metadata, beside its poster frames. The raw object goes only once the row is ready or
failed: a worker that dies before then leaves it for the job's retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from db.media import repository as media_repo
from db.media.caches import MediaCaches
from db.media.records import MediaVariant, StoredMedia
from db.session import ShardSessions
from domain.media.decoders import DecoderCrashed, DecoderPool, decoder_pool
from domain.media.delivery import variant_key
from domain.media.processing import (
    Limits,
    MediaRejected,
    ProcessedImage,
    ProcessedVideo,
    Variant,
    process_image,
    process_video,
)
from domain.media.uploads import max_bytes_for
from domain.state import AppState

log = logging.getLogger(__name__)

Decoded = TypeVar("Decoded", ProcessedImage, ProcessedVideo)

# Stored with the objects: what is behind a key never changes (the /media route sends
# its own Cache-Control, media_public_max_age_seconds for public media).
IMMUTABLE = "public, max-age=31536000, immutable"
VIDEO_EXTENSIONS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}


def limits_for(state: AppState) -> Limits:
    settings = state.runtime.settings
    return Limits(
        max_bytes_image=settings.max_image_bytes, max_bytes_video=settings.max_video_bytes
    )


async def process_upload(state: AppState, sessions: ShardSessions, media_id: int) -> None:
    async with sessions.for_id(media_id) as session:
        found = await media_repo.get_stored_media(session, [media_id])
    media = found[0] if found else None
    store = state.runtime.object_store
    if media is None or media.status != "processing":
        # Delivered twice, or swept: nothing left to do but what a worker that died
        # between settling the row and deleting the raw upload left undone.
        if media is not None and media.status in ("ready", "failed"):
            await store.delete([media.upload_key])
        return
    head = await store.head(media.upload_key)
    if head is None:
        await _fail(state, sessions, media, "MEDIA_MISSING")
        return
    limit = max_bytes_for(state, "image" if media.kind == "image" else "video")
    if head.size > limit:
        await _fail(state, sessions, media, "MEDIA_TOO_LARGE")
        return
    if head.size != media.declared_bytes:
        log.info(
            "media %s refused: %s bytes arrived, %s declared",
            media_id,
            head.size,
            media.declared_bytes,
        )
        await _fail(state, sessions, media, "MEDIA_SIZE_MISMATCH")
        return
    try:
        image, video = await _fetch_and_decode(state, media)
    except MediaRejected as rejected:
        log.info("media %s rejected: %s (%s)", media_id, rejected.code, rejected)
        await _fail(state, sessions, media, rejected.code)
        return
    except DecoderCrashed as crashed:
        log.warning("media %s refused: its second decoder %s too", media_id, crashed)
        await _fail(state, sessions, media, "MEDIA_UNDECODABLE")
        return
    variants = await _store_variants(state, media, image)
    video_key = None
    if video is not None:
        video_key = variant_key(
            owner_id=media.owner_id,
            media_id=media.id,
            content_sha256=video.content_sha256,
            name="video",
            extension=VIDEO_EXTENSIONS.get(media.content_type, "mp4"),
        )
        await store.put(
            key=video_key,
            body=video.data,
            content_type=media.content_type,
            cache_control=IMMUTABLE,
        )
    # The hash of what was uploaded (of a video, as stored), not of a rendition.
    original = video or image
    async with sessions.for_id(media_id) as session:
        ready = await media_repo.mark_ready(
            session,
            media_id,
            content_sha256=original.content_sha256,
            width=original.width,
            height=original.height,
            duration_ms=round(video.duration_seconds * 1000) if video else None,
            placeholder=image.placeholder,
            variants=variants,
            video_key=video_key,
            now=state.clock(),
        )
    if ready is not None:
        await state.of(MediaCaches).media_cache.store(media_id, ready)
    await store.delete([media.upload_key])


async def _fetch_and_decode(
    state: AppState, media: StoredMedia
) -> tuple[ProcessedImage, ProcessedVideo | None]:
    """The upload's bytes, decoded in a decoder process. A turn of the pool is held from
    the fetch to the answer, so that a worker holds only the inputs being decoded."""
    decoders = decoder_pool(state.runtime.settings.media_decoder_processes)
    limits = limits_for(state)
    async with decoders.turn():
        data = await state.runtime.object_store.get(media.upload_key)
        if media.kind == "image":
            image = await _decode(decoders, process_image, data, media=media, limits=limits)
            return image, None
        video = await _decode(decoders, process_video, data, media=media, limits=limits)
        return video.poster, video


async def _decode(
    decoders: DecoderPool,
    work: Callable[..., Decoded],
    data: bytes,
    *,
    media: StoredMedia,
    limits: Limits,
) -> Decoded:
    """``work`` on the upload in a decoder; once more in another if the first one dies.
    A decoder can die of something else than the bytes it holds (killed for memory, a
    restart): only a second death is taken as theirs, and fails the upload."""
    try:
        return await decoders.run(work, data, declared_type=media.content_type, limits=limits)
    except DecoderCrashed as crashed:
        log.warning("media %s: its decoder %s; trying another", media.id, crashed)
    return await decoders.run(work, data, declared_type=media.content_type, limits=limits)


def named_variants(
    *, owner_id: int, media_id: int | None, content_sha256: str, variants: Sequence[Variant]
) -> list[tuple[MediaVariant, Variant]]:
    """Each rendition beside the record that names its key (``variant_key``). A video's
    poster frames are named after the video's bytes: its hash is the media's."""
    named = []
    for variant in variants:
        key = variant_key(
            owner_id=owner_id,
            media_id=media_id,
            content_sha256=content_sha256,
            name=f"{variant.width}",
            extension="jpg" if variant.format == "jpeg" else variant.format,
        )
        record = MediaVariant(
            width=variant.width,
            height=variant.height,
            format=variant.format,
            key=key,
            bytes=len(variant.data),
        )
        named.append((record, variant))
    return named


async def _store_variants(
    state: AppState, media: StoredMedia, image: ProcessedImage
) -> list[MediaVariant]:
    store = state.runtime.object_store
    named = named_variants(
        owner_id=media.owner_id,
        media_id=media.id,
        content_sha256=image.content_sha256,
        variants=image.variants,
    )
    await asyncio.gather(
        *(
            store.put(
                key=record.key,
                body=variant.data,
                content_type=variant.content_type,
                cache_control=IMMUTABLE,
            )
            for record, variant in named
        )
    )
    return [record for record, _ in named]


async def _fail(state: AppState, sessions: ShardSessions, media: StoredMedia, code: str) -> None:
    async with sessions.for_id(media.id) as session:
        failed = await media_repo.mark_failed(session, media.id, error_code=code, now=state.clock())
    if failed is not None:
        await state.of(MediaCaches).media_cache.store(media.id, failed)
    await state.runtime.object_store.delete([media.upload_key])


SWEEP_BATCH = 200


async def sweep_abandoned(state: AppState) -> int:
    """Delete uploads never finalized, and fail those never processed, after
    ``upload_abandon_seconds``; their raw objects go with them. Returns how many."""
    sessions = ShardSessions(state.runtime.databases)
    cutoff = state.clock() - timedelta(seconds=state.runtime.settings.upload_abandon_seconds)

    async def per_shard(session: object) -> list[StoredMedia]:
        return await media_repo.unfinished_before(session, cutoff, limit=SWEEP_BATCH)  # type: ignore[arg-type]

    found = await sessions.scatter_all(per_shard)
    swept = 0
    for shard, rows in found.items():
        if not rows:
            continue
        await state.runtime.object_store.delete([row.upload_key for row in rows])
        pending = [row.id for row in rows if row.status == "pending"]
        async with sessions.shard(shard) as session:
            await media_repo.delete_media(session, pending)
            for row in rows:
                if row.status == "processing":
                    await media_repo.mark_failed(
                        session, row.id, error_code="MEDIA_ABANDONED", now=state.clock()
                    )
        await state.of(MediaCaches).media_cache.invalidate(*[row.id for row in rows])
        swept += len(rows)
    return swept
