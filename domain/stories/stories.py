"""Stories: a photo or video that every read stops showing exactly 24 hours after it was
posted (reads compare against ``state.clock``), and that a periodic job purges later.

An author's live stories are indexed in Redis (``stories:<author>``: ``<id>`` or
``<id>:c`` for a close-friends story, scored by expiry in ms), and so is what a viewer has
seen (``story-seen:<viewer>``); both are rebuilt from rows when missing. Views are rows
in the story's shard: only the author can list them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db.redis import read_epoch, read_together
from db.scored_sets import score_ms
from db.session import ShardSessions
from db.stories import repository as stories_repo
from db.stories.caches import StoryCaches
from db.stories.records import StoryAudience, StoryRecord, story_record
from domain import events
from domain.errors import BadUserInput, Forbidden, MediaNotReady, RateLimited
from domain.events import Delivery
from domain.media.lifecycle import publish_media, published
from domain.state import AppState
from domain.stories.events import STORY_DELETED, STORY_VIEWED, StoryDeleted, StoryViewed
from domain.stories.reads import close_friend_ids, load_stories
from domain.visibility import direct

log = logging.getLogger(__name__)

STORY_LIFETIME = timedelta(hours=24)
MAX_CLOSE_FRIENDS_CHANGE = 100
# Instagram's own cap; it also bounds what one author's tray entry can hold.
MAX_STORIES_PER_DAY = 100
PURGE_BATCH = 500


@dataclass(frozen=True)
class StoryEntry:
    """A live story as the index knows it: enough to build the tray without its row."""

    story_id: int
    expires_ms: float
    close_friends: bool


def _member(story: StoryRecord) -> str:
    return f"{story.id}:c" if story.audience == "close_friends" else str(story.id)


def _entry(member: str, score: float) -> StoryEntry:
    story_id, _, flag = member.partition(":")
    return StoryEntry(story_id=int(story_id), expires_ms=score, close_friends=flag == "c")


async def create_story(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    media_id: int,
    audience: StoryAudience,
) -> StoryRecord:
    now = state.clock()
    async with sessions.for_id(viewer_id) as session:
        recent, oldest = await stories_repo.lock_and_count_recent(
            session, viewer_id, since=now - STORY_LIFETIME
        )
        if recent >= MAX_STORIES_PER_DAY and oldest is not None:
            raise RateLimited(
                f"At most {MAX_STORIES_PER_DAY} stories in 24 hours",
                retry_after=(oldest + STORY_LIFETIME - now).total_seconds(),
            )
        row = await stories_repo.insert_story(
            session,
            author_id=viewer_id,
            media_id=media_id,
            audience=audience,
            created_at=now,
            expires_at=now + STORY_LIFETIME,
        )
        attached = await publish_media(
            session, media_ids=[media_id], owner_id=viewer_id, publisher_id=row.id
        )
        if not attached:
            raise MediaNotReady(
                "Only your own processed media that is not published yet can be a story",
                mediaIds=[str(media_id)],
            )
    await published(state, [media_id])
    await state.of(StoryCaches).story_cache.store(row.id, row)
    story = story_record(row)
    await state.of(StoryCaches).story_index.add(
        viewer_id, _member(story), score_ms(story.expires_at), drop_below=score_ms(now)
    )
    return story


async def delete_story(
    state: AppState, sessions: ShardSessions, viewer_id: int, story_id: int
) -> StoryRecord:
    story = await direct(state, sessions, viewer_id).require_story(story_id)
    if story.author_id != viewer_id:
        raise Forbidden("Only the author can delete this story")
    async with sessions.for_id(story_id) as session:
        deleted = await stories_repo.delete_story(session, story_id)
        owed = (
            await events.emit(
                session, STORY_DELETED, StoryDeleted(story_id=story_id, author_id=viewer_id)
            )
            if deleted is not None
            else []
        )
    await events.relay(state, sessions, owed)
    await state.of(StoryCaches).story_cache.store(story_id, None)
    await state.of(StoryCaches).story_index.changed(viewer_id)
    return story


async def live_entries(
    state: AppState, sessions: ShardSessions, author_ids: Sequence[int]
) -> dict[int, list[StoryEntry]]:
    """Each author's live stories, oldest first, from one round trip for all of them;
    authors whose index is missing are rebuilt from their shards."""
    now_ms = score_ms(state.clock())
    epoch = read_epoch(state.runtime.redis)
    replies = await read_together(
        state.runtime.redis, [state.of(StoryCaches).story_index.plan_read_above(author_ids, now_ms)]
    )
    found = replies[0] if replies is not None else {}
    entries: dict[int, list[StoryEntry]] = {}
    misses: dict[int, str] = {}
    for author_id in author_ids:
        cached, version = found.get(author_id, (None, "0"))
        if cached is None:
            misses[author_id] = version
            continue
        entries[author_id] = sorted(
            (_entry(member, score) for member, score in cached.items() if score > now_ms),
            key=lambda entry: entry.story_id,
        )
    if misses:
        rebuilt = await _rebuild(state, sessions, list(misses), now=state.clock())
        for author_id, stories in rebuilt.items():
            if replies is not None:
                await state.of(StoryCaches).story_index.fill(
                    author_id,
                    {_member(story): score_ms(story.expires_at) for story in stories},
                    version=misses[author_id],
                    epoch=epoch,
                )
            entries[author_id] = [
                StoryEntry(
                    story_id=story.id,
                    expires_ms=score_ms(story.expires_at),
                    close_friends=story.audience == "close_friends",
                )
                for story in stories
            ]
    return entries


async def _rebuild(
    state: AppState, sessions: ShardSessions, author_ids: list[int], *, now: datetime
) -> dict[int, list[StoryRecord]]:
    async def per_shard(session: AsyncSession, shard_ids: list[int]) -> list[StoryRecord]:
        return await stories_repo.live_stories_of(session, shard_ids, now=now)

    stories = await sessions.scatter_ids(author_ids, per_shard)
    by_author: dict[int, list[StoryRecord]] = {author_id: [] for author_id in author_ids}
    for story in stories:
        by_author[story.author_id].append(story)
    return by_author


async def seen_story_ids(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    cached: tuple[dict[str, float] | None, str] | None = None,
) -> set[int]:
    """Stories the viewer has seen among those still live; ``cached`` is what a shared
    round trip already read of ``stories_seen.plan_read([viewer_id])``."""
    now = state.clock()
    epoch = read_epoch(state.runtime.redis)
    answered = True
    if cached is None:
        replies = await read_together(
            state.runtime.redis, [state.of(StoryCaches).stories_seen.plan_read([viewer_id])]
        )
        answered = replies is not None
        cached = replies[0][viewer_id] if replies is not None else (None, "0")
    members, version = cached
    if members is not None:
        return {int(member) for member, score in members.items() if score > score_ms(now)}
    since = now - STORY_LIFETIME

    async def per_shard(session: AsyncSession) -> list[int]:
        return await stories_repo.recent_views_by(session, viewer_id, since=since)

    found = await sessions.scatter_all(per_shard)
    seen = {story_id for ids in found.values() for story_id in ids}
    # Scored by when they could last be live: a day after the view at the latest.
    expiry = score_ms(now + STORY_LIFETIME)
    if answered:
        await state.of(StoryCaches).stories_seen.fill(
            viewer_id, {str(story_id): expiry for story_id in seen}, version=version, epoch=epoch
        )
    return seen


async def mark_seen(
    state: AppState, sessions: ShardSessions, viewer_id: int, story_id: int
) -> StoryRecord:
    story = await direct(state, sessions, viewer_id).require_story(story_id)
    now = state.clock()
    if story.author_id != viewer_id:
        async with sessions.for_id(story_id) as session:
            added = await stories_repo.add_view(
                session, story_id=story_id, viewer_id=viewer_id, viewed_at=now
            )
            owed = (
                await events.emit(
                    session,
                    STORY_VIEWED,
                    StoryViewed(story_id=story_id, author_id=story.author_id, viewer_id=viewer_id),
                )
                if added
                else []
            )
        await events.relay(state, sessions, owed)
    await state.of(StoryCaches).stories_seen.add(
        viewer_id, str(story_id), score_ms(story.expires_at), drop_below=score_ms(now)
    )
    return story


async def require_own_story(
    state: AppState, sessions: ShardSessions, viewer_id: int, story_id: int
) -> StoryRecord:
    """The author's own story, expired or not (they may look at who saw it until it is
    purged); anyone else gets the same answer as for a story that does not exist."""
    (story,) = await load_stories(state, sessions, [story_id])
    if story is None or not direct(state, sessions, viewer_id).sees_story_views(story):
        raise Forbidden("Only the author can see who viewed a story")
    return story


async def story_viewers(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    story_id: int,
    *,
    after: tuple[float, int] | None,
    limit: int,
) -> list[tuple[float, int]]:
    await require_own_story(state, sessions, viewer_id, story_id)
    async with sessions.for_id(story_id) as session:
        return await stories_repo.viewers_of(session, story_id, after=after, limit=limit)


async def view_counts(sessions: ShardSessions, story_ids: Sequence[int]) -> list[int]:
    async def per_shard(session: AsyncSession, shard_ids: list[int]) -> list[tuple[int, int]]:
        return list((await stories_repo.view_counts(session, shard_ids)).items())

    counts = dict(await sessions.scatter_ids(story_ids, per_shard))
    return [counts.get(story_id, 0) for story_id in story_ids]


# Close friends ------------------------------------------------------------------------


async def change_close_friends(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    add: Sequence[int],
    remove: Sequence[int],
) -> set[int]:
    if len(add) + len(remove) > MAX_CLOSE_FRIENDS_CHANGE:
        raise BadUserInput(f"Change at most {MAX_CLOSE_FRIENDS_CHANGE} close friends at once")
    visibility = direct(state, sessions, viewer_id)
    visible = [row for row in await visibility.users(list(add)) if row is not None]
    adding = [row.id for row in visible if row.id != viewer_id]
    async with sessions.for_id(viewer_id) as session:
        await stories_repo.set_close_friends(session, viewer_id, add=adding, remove=list(remove))
    await state.of(StoryCaches).close_friends.changed(viewer_id)
    return await close_friend_ids(state, sessions, viewer_id)


# Purging ------------------------------------------------------------------------------


async def purge_expired(state: AppState) -> int:
    """Delete stories expired longer than ``story_purge_after_seconds`` ago, with their
    views; their media goes through ``story.deleted``. Reads stopped showing them at expiry
    already."""
    sessions = ShardSessions(state.runtime.databases)
    before = state.clock() - timedelta(seconds=state.runtime.settings.story_purge_after_seconds)

    async def per_shard(session: AsyncSession) -> tuple[list[StoryRecord], list[Delivery]]:
        stories = await stories_repo.purge_expired(session, before=before, limit=PURGE_BATCH)
        owed: list[Delivery] = []
        for story in stories:
            owed += await events.emit(
                session, STORY_DELETED, StoryDeleted(story_id=story.id, author_id=story.author_id)
            )
        return stories, owed

    purged: list[StoryRecord] = []
    for stories, owed in (await sessions.scatter_all(per_shard)).values():
        await events.relay(state, sessions, owed)
        purged += stories
    if not purged:
        return 0
    for story in purged:
        await state.of(StoryCaches).story_cache.store(story.id, None)
    await state.of(StoryCaches).story_index.changed(*{story.author_id for story in purged})
    log.info("purged %d expired stories", len(purged))
    return len(purged)


def parse_position(position: str | None) -> tuple[float, int] | None:
    """A viewers-list position, as ``story_viewers`` pages by it."""
    if position is None:
        return None
    viewed_at, _, viewer_id = position.partition(":")
    return float(viewed_at), int(viewer_id)
