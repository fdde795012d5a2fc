"""Media's life after processing: every stored object belongs to one media row, and goes
when nothing publishes that media any more.

A media row is published once, on a post, a story, a message or as an avatar
(``attached_to``). It is deleted, with its objects, when what published it goes: a post
deleted, a story deleted or purged, an avatar replaced, an account deleted (each through
its event, after that write's commit), or when it was never published within
``unpublished_media_seconds`` of processing. Keys are unique per media
(``domain/media/delivery.py``), but rows from before that, and the demo seeder's, may share
keys with the owner's other media of the same bytes: a key still named by another row is
kept. Objects go first, then the row, so a crash between the two leaves a row to retry
with and never an object nobody knows about; ``repair_orphaned_objects`` finds what
escaped anyway (an upload stored just as its row was swept, a crash while storing
variants).

Quotas bound what one account can hold (``check_upload_quota``): unfinished uploads, their
bytes, and the bytes of everything it keeps, counted as declared at upload.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db.cache import to_record
from db.ids import shard_of
from db.media import repository as media_repo
from db.media.caches import MediaCaches
from db.media.records import MediaRecord, StoredMedia
from db.session import ShardSessions
from domain.errors import ApertureError
from domain.media.delivery import owner_of_key
from domain.state import AppState

log = logging.getLogger(__name__)

OWNER_BATCH = 500
SWEEP_BATCH = 200


class QuotaExceeded(ApertureError):
    """The account holds as much media as it may: finish, use or delete some first."""

    code = "QUOTA_EXCEEDED"


async def check_upload_quota(
    state: AppState, session: AsyncSession, owner_id: int, *, byte_size: int
) -> None:
    """Refuse an upload past the owner's quotas. Holds a lock on the owner's uploads until
    ``session``'s transaction ends: call it in the transaction that inserts the upload."""
    settings = state.runtime.settings
    usage = await media_repo.lock_upload_usage(session, owner_id)
    if usage.unfinished_uploads >= settings.max_unfinished_uploads:
        raise QuotaExceeded(
            f"You have {usage.unfinished_uploads} uploads not yet finished: finish or wait "
            f"for them first (at most {settings.max_unfinished_uploads})",
            quota="unfinishedUploads",
        )
    if usage.unfinished_bytes + byte_size > settings.max_unfinished_upload_bytes:
        raise QuotaExceeded(
            "Your unfinished uploads would exceed "
            f"{settings.max_unfinished_upload_bytes} bytes: finish them first",
            quota="unfinishedUploadBytes",
        )
    if usage.kept_bytes + byte_size > settings.max_media_bytes_per_account:
        raise QuotaExceeded(
            f"Your media would exceed {settings.max_media_bytes_per_account} bytes: "
            "delete some posts or stories first",
            quota="accountMediaBytes",
        )


async def ready_kinds(
    session: AsyncSession, media_ids: Sequence[int], *, owner_id: int
) -> dict[int, str]:
    """The kind of each of ``media_ids`` that is the owner's and processed. ``session`` is
    the caller's, on the owner's shard."""
    return await media_repo.kinds_of_ready(session, media_ids, owner_id=owner_id)


async def publish_media(
    session: AsyncSession, *, media_ids: Sequence[int], owner_id: int, publisher_id: int
) -> list[MediaRecord]:
    """Publish the owner's processed, unpublished media on ``publisher_id`` (a post, story
    or user) in the caller's transaction, on the owner's shard: both commit together, or
    neither. Returns what it published, fewer than asked when some media was not the
    owner's, not ready, or published already. The caller calls ``published`` once it has
    committed."""
    attached = await media_repo.attach_media(
        session, media_ids=media_ids, owner_id=owner_id, attach_to=publisher_id
    )
    return [to_record(MediaRecord, row) for row in attached]


async def published(state: AppState, media_ids: Sequence[int]) -> None:
    """After the transaction that published ``media_ids`` commits: their cached rows still
    say nothing carries them, which would let something else publish them too."""
    await state.of(MediaCaches).media_cache.invalidate(*media_ids)


async def _delete_rows(
    state: AppState,
    sessions: ShardSessions,
    rows: Sequence[StoredMedia],
    *,
    still_attached_to: int | None,
    any_attachment: bool = False,
) -> list[int]:
    """Delete ``rows``' objects (those no other row names), then the rows themselves. The
    rows share a shard (their owner's). No transaction is open while the store deletes:
    a slow or hung store holds no database connection."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    keys = {key for row in rows for key in media_repo.object_keys(row)}
    async with sessions.for_id(ids[0]) as session:
        for owner_id in {row.owner_id for row in rows}:
            keys -= await media_repo.keys_shared_with_others(
                session,
                owner_id=owner_id,
                content_hashes=[
                    row.content_sha256
                    for row in rows
                    if row.owner_id == owner_id and row.content_sha256 is not None
                ],
                excluding=ids,
            )
    await state.runtime.object_store.delete(sorted(keys))
    async with sessions.for_id(ids[0]) as session:
        if any_attachment:
            await media_repo.delete_media(session, ids)
            deleted = ids
        else:
            deleted = await media_repo.delete_media_of(session, ids, attached_to=still_attached_to)
    await state.of(MediaCaches).media_cache.invalidate(*ids)
    return deleted


async def release_published_by(
    state: AppState, sessions: ShardSessions, *, owner_id: int, publisher_id: int
) -> int:
    """Delete the media that ``publisher_id`` (a post, story, message or user) carried.
    Media lives in its owner's shard. Returns how many went."""
    async with sessions.for_id(owner_id) as session:
        rows = await media_repo.attached_to(session, [publisher_id])
    rows = [row for row in rows if row.owner_id == owner_id]
    deleted = await _delete_rows(state, sessions, rows, still_attached_to=publisher_id)
    if deleted:
        log.info("released %d media of %s", len(deleted), publisher_id)
    return len(deleted)


async def release_media(
    state: AppState, sessions: ShardSessions, *, owner_id: int, media_id: int, publisher_id: int
) -> bool:
    """Delete one media if ``publisher_id`` still carries it (a replaced avatar)."""
    async with sessions.for_id(media_id) as session:
        rows = [
            row
            for row in await media_repo.get_stored_media(session, [media_id])
            if row.owner_id == owner_id and row.attached_to == publisher_id
        ]
    return bool(await _delete_rows(state, sessions, rows, still_attached_to=publisher_id))


async def release_everything_of(state: AppState, sessions: ShardSessions, owner_id: int) -> int:
    """Delete every media of a deleted account, a batch at a time."""
    released = 0
    after: int | None = None
    while True:
        async with sessions.for_id(owner_id) as session:
            rows = await media_repo.media_of_owner(
                session, owner_id, after_id=after, limit=OWNER_BATCH
            )
        if not rows:
            return released
        await _delete_rows(state, sessions, rows, still_attached_to=None, any_attachment=True)
        released += len(rows)
        after = rows[-1].id


async def attach_to_message(
    state: AppState, sessions: ShardSessions, *, owner_id: int, media_id: int, message_id: int
) -> None:
    async with sessions.for_id(media_id) as session:
        attached = await media_repo.attach_media(
            session, media_ids=[media_id], owner_id=owner_id, attach_to=message_id
        )
    if attached:
        await state.of(MediaCaches).media_cache.store(media_id, attached[0])


async def sweep_unpublished(state: AppState) -> int:
    """Delete media processed more than ``unpublished_media_seconds`` ago and never
    published (and the rows of failed uploads, whose objects are gone already)."""
    sessions = ShardSessions(state.runtime.databases)
    cutoff = state.clock() - timedelta(seconds=state.runtime.settings.unpublished_media_seconds)
    swept = 0
    for shard in sessions.shard_map.shards:
        async with sessions.shard(shard) as session:
            rows = await media_repo.unpublished_before(session, cutoff, limit=SWEEP_BATCH)
        swept += len(await _delete_rows(state, sessions, rows, still_attached_to=None))
    return swept


@dataclass(frozen=True)
class RepairReport:
    examined: int
    deleted: list[str]


async def repair_orphaned_objects(
    state: AppState, *, older_than: timedelta, dry_run: bool = False
) -> RepairReport:
    """Delete stored objects that no media row names: media keys (``m/<owner>/...``) and
    raw uploads (``uploads/<owner>/...``). Objects younger than ``older_than`` are left,
    since their row may not be committed yet (a variant stored before ``ready``)."""
    store = state.runtime.object_store
    sessions = ShardSessions(state.runtime.databases)
    cutoff = state.clock() - older_than
    examined = 0
    orphaned: list[str] = []
    for prefix in ("m/", "uploads/"):
        by_owner: dict[int, list[tuple[str, datetime]]] = {}
        for key, modified in await store.list_objects(prefix=prefix):
            examined += 1
            owner_id = owner_of_key(key) if prefix == "m/" else _upload_owner(key)
            if owner_id is None:
                continue
            if modified < cutoff:
                by_owner.setdefault(owner_id, []).append((key, modified))
        for owner_id, objects in by_owner.items():
            if not sessions.shard_map.exists(shard_of(owner_id)):
                continue
            named = await _keys_named_by(sessions, owner_id)
            orphaned += [key for key, _ in objects if key not in named]
    if orphaned and not dry_run:
        await store.delete(orphaned)
    if orphaned:
        log.warning("%d orphaned objects %s", len(orphaned), "found" if dry_run else "deleted")
    return RepairReport(examined=examined, deleted=orphaned)


def _upload_owner(key: str) -> int | None:
    parts = key.split("/")
    if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit():
        return None
    return int(parts[1])


async def _keys_named_by(sessions: ShardSessions, owner_id: int) -> set[str]:
    named: set[str] = set()
    after: int | None = None
    async with sessions.for_id(owner_id) as session:
        while True:
            rows = await media_repo.media_of_owner(
                session, owner_id, after_id=after, limit=OWNER_BATCH
            )
            named.update(key for row in rows for key in media_repo.object_keys(row))
            if len(rows) < OWNER_BATCH:
                return named
            after = rows[-1].id
