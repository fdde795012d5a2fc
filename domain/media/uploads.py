"""Uploads: a client asks for one, sends the bytes straight to object storage through a
presigned POST, and finalizes it; a worker then processes it (``domain/media/pipeline.py``).

The API process never touches the bytes. The presigned POST pins the key, the exact
content type and the largest size the client declared, and expires; whatever arrives is
still decoded for real before anything of it is kept.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.media import repository as media_repo
from db.media.caches import MediaCaches
from db.media.records import MediaKind, MediaRecord
from db.media.storage import PresignedPost
from db.session import ShardSessions
from domain import events
from domain.errors import BadUserInput, NotFound
from domain.media.delivery import upload_key
from domain.media.events import MEDIA_UPLOADED, MediaUploaded
from domain.media.lifecycle import check_upload_quota
from domain.state import AppState

log = logging.getLogger(__name__)

ACCEPTED_TYPES: dict[MediaKind, tuple[str, ...]] = {
    "image": ("image/jpeg", "image/png", "image/webp"),
    "video": ("video/mp4", "video/quicktime", "video/webm"),
}


@dataclass(frozen=True)
class UploadTicket:
    media: MediaRecord
    target: PresignedPost
    expires_at: datetime
    max_bytes: int


def max_bytes_for(state: AppState, kind: MediaKind) -> int:
    settings = state.runtime.settings
    return settings.max_image_bytes if kind == "image" else settings.max_video_bytes


async def create_upload(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    kind: MediaKind,
    content_type: str,
    byte_size: int,
) -> UploadTicket:
    content_type = content_type.strip().lower()
    if content_type not in ACCEPTED_TYPES[kind]:
        accepted = ", ".join(ACCEPTED_TYPES[kind])
        raise BadUserInput(
            f"{content_type[:80]!r} is not an accepted {kind} type ({accepted})",
            field="contentType",
        )
    limit = max_bytes_for(state, kind)
    if byte_size < 1 or byte_size > limit:
        raise BadUserInput(f"byteSize must be between 1 and {limit} for {kind}s", field="byteSize")
    key = upload_key(owner_id=viewer_id, token=secrets.token_urlsafe(24))
    async with sessions.for_id(viewer_id) as session:
        await check_upload_quota(state, session, viewer_id, byte_size=byte_size)
        media = await media_repo.insert_media(
            session,
            owner_id=viewer_id,
            kind=kind,
            content_type=content_type,
            declared_bytes=byte_size,
            upload_key=key,
        )
    ttl = state.runtime.settings.upload_url_ttl_seconds
    target = state.runtime.object_store.presigned_post(
        key=key, content_type=content_type, max_bytes=byte_size, expires_seconds=ttl
    )
    return UploadTicket(
        media=state.of(MediaCaches).media_cache.record_of(media),
        target=target,
        expires_at=state.clock() + timedelta(seconds=ttl),
        max_bytes=byte_size,
    )


async def finalize_upload(
    state: AppState, sessions: ShardSessions, viewer_id: int, media_id: int
) -> MediaRecord:
    """The bytes are in storage: queue their processing. Finalizing twice is harmless."""
    async with sessions.for_id(media_id) as session:
        media = await media_repo.media_for_update(session, media_id)
        if media is None or media.owner_id != viewer_id:
            raise NotFound("No such upload")
        if media.status != "pending":
            return state.of(MediaCaches).media_cache.record_of(media)
        head = await state.runtime.object_store.head(media.upload_key)
        if head is None:
            raise BadUserInput(
                "Nothing was uploaded yet: send the file to the upload URL first",
                field="mediaId",
            )
        changed = await media_repo.mark_processing(session, media_id)
        assert changed is not None
        owed = await events.emit(
            session, MEDIA_UPLOADED, MediaUploaded(media_id=media_id, owner_id=viewer_id)
        )
    await events.relay(state, sessions, owed)
    await state.of(MediaCaches).media_cache.store(media_id, changed)
    return state.of(MediaCaches).media_cache.record_of(changed)


async def load_media(
    state: AppState, sessions: ShardSessions, media_ids: Sequence[int]
) -> list[MediaRecord | None]:
    """Media rows by id, whoever may see them: callers reach media through what
    publishes it (a visible post, story or profile), or as its owner."""
    return await state.of(MediaCaches).media_cache.load(
        media_ids, sessions=sessions, fetch=media_repo.get_media
    )


async def own_media(
    state: AppState, sessions: ShardSessions, viewer_id: int, media_id: int
) -> MediaRecord:
    (media,) = await load_media(state, sessions, [media_id])
    if media is None or media.owner_id != viewer_id:
        raise NotFound("No such media")
    return media
