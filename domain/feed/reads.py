"""Reading home feeds: a precomputed page from Redis, large accounts merged in at read
time, and a bounded rebuild from PostgreSQL when the feed is missing. Which entries the
viewer may see is Visibility's call (``domain/visibility.py``); what a reader wants of
the posts is its own, read ahead of those rules by its ``ReadAhead`` (the API's plans it
from the query and primes its loaders, ``graphql_api/feed/schema.py``).

While Redis is down (``db/redis.py``) a page is read with fan-out on read from
PostgreSQL instead; a backfill that cannot reach Redis drops the ready marker once Redis
is back, so that feed is rebuilt."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts.caches import AccountCaches
from db.feed import repository as feed_repo
from db.feed.caches import FeedCaches
from db.feed.store import FeedPage
from db.posts.caches import CACHED_LIST_LENGTH, PostCaches
from db.posts.records import PostRecord
from db.redis import read_epoch, read_together_or_raise, redis_available
from db.session import ShardSessions
from domain.accounts.relations import followee_ids, stored_followee_ids
from domain.feed.large_accounts import large_account_ids, plan_large_account_ids
from domain.state import AppState
from domain.visibility import Visibility

# How many of each followed account's newest posts a rebuild or a backfill reads: enough
# to fill a feed, bounded whatever the number of accounts followed.
POSTS_PER_AUTHOR_ON_REBUILD = 20
# A page may lose entries to read-time filters (deleted posts, unfollowed authors); this
# many extra chunks are read before a short page is returned.
MAX_EXTRA_READS = 4


@dataclass(frozen=True)
class FeedSlice:
    posts: list[PostRecord]
    has_next: bool
    # Where the next page starts: the last post returned, or, when every entry read was
    # filtered out, the last entry read, so that a client can always move on.
    resume_after: int | None = None


class ReadAhead(Protocol):
    """Reads ahead what a reader will need of candidate posts, before the visibility rules
    run over them (so that those answer from what it read). ``blocked``: the viewer's
    block set, when it was read with the candidates."""

    async def __call__(self, post_ids: Sequence[int], *, blocked: set[int] | None) -> None: ...


async def recent_posts_by_author(
    state: AppState, sessions: ShardSessions, author_ids: Sequence[int]
) -> dict[int, list[int]]:
    """Each author's newest post ids: one MGET, then one statement per shard for misses."""
    epoch = read_epoch(state.runtime.redis)
    cached = await state.of(PostCaches).author_posts.get_many(list(author_ids))
    misses = [author for author in author_ids if author not in cached]
    if misses:

        async def per_shard(
            session: AsyncSession, shard_authors: list[int]
        ) -> list[tuple[int, int]]:
            return await feed_repo.recent_post_ids_by_authors(
                session, shard_authors, per_author=CACHED_LIST_LENGTH
            )

        loaded: dict[int, list[int]] = {author: [] for author in misses}
        for author, post_id in await sessions.scatter_ids(misses, per_shard):
            loaded[author].append(post_id)
        for ids in loaded.values():
            ids.sort(reverse=True)
        await state.of(PostCaches).author_posts.fill(loaded, epoch=epoch)
        cached.update(loaded)
    return cached


async def rebuild(state: AppState, sessions: ShardSessions, user_id: int) -> int:
    """Recompute a missing feed from PostgreSQL with bounded work and mark it ready.

    Scatter-gather: the newest posts of every followed account (and the user's own),
    read concurrently across shards through the per-author lists, newest ``capacity`` kept.
    """
    authors = sorted(await followee_ids(state, sessions, user_id) | {user_id})
    per_author = await recent_posts_by_author(state, sessions, authors)
    candidates = (
        post_id for ids in per_author.values() for post_id in ids[:POSTS_PER_AUTHOR_ON_REBUILD]
    )
    newest = heapq.nlargest(state.of(FeedCaches).feeds.capacity, candidates)
    await state.of(FeedCaches).feeds.complete(user_id, newest)
    return len(newest)


async def _large_followees(
    state: AppState, sessions: ShardSessions, visibility: Visibility, cached: set[int] | None
) -> list[int]:
    large = sorted(cached if cached is not None else await large_account_ids(state, sessions))
    if not large:
        return []
    follows = await visibility.facts.follows(large)
    return [author for author, followed in zip(large, follows, strict=True) if followed]


class FeedRead(Protocol):
    """A way of reading a feed page: the precomputed feed, or fan-out on read."""

    async def __call__(
        self,
        state: AppState,
        sessions: ShardSessions,
        *,
        visibility: Visibility,
        viewer_id: int,
        before_id: int | None,
        limit: int,
        read_ahead: ReadAhead | None = None,
    ) -> FeedSlice: ...


async def home_feed(
    state: AppState,
    sessions: ShardSessions,
    *,
    visibility: Visibility,
    viewer_id: int,
    before_id: int | None,
    limit: int,
    read_ahead: ReadAhead | None = None,
) -> FeedSlice:
    """The newest ``limit`` visible posts of the viewer's feed below ``before_id``;
    ``read_ahead``: what the reader will want of them, read with each chunk of entries."""

    async def read(strategy: FeedRead) -> FeedSlice:
        return await strategy(
            state,
            sessions,
            visibility=visibility,
            viewer_id=viewer_id,
            before_id=before_id,
            limit=limit,
            read_ahead=read_ahead,
        )

    fan_out_on_read = state.runtime.settings.feed_read_strategy == "fanout_on_read"
    if fan_out_on_read or not redis_available(state.runtime.redis):
        return await read(home_feed_from_sql)
    try:
        return await read(_precomputed_home_feed)
    except RedisError:
        # Redis failed during this request (the breaker logged it): PostgreSQL answers.
        return await read(home_feed_from_sql)


async def _precomputed_home_feed(
    state: AppState,
    sessions: ShardSessions,
    *,
    visibility: Visibility,
    viewer_id: int,
    before_id: int | None,
    limit: int,
    read_ahead: ReadAhead | None = None,
) -> FeedSlice:
    chunk = limit + 1 + limit // 2
    # One round trip: the first chunk, the large-account set and the viewer's blocks.
    first_page, large_set, blocked = await read_together_or_raise(
        state.runtime.redis,
        [
            state.of(FeedCaches).feeds.plan_page(viewer_id, before_id=before_id, count=chunk),
            plan_large_account_ids(state),
            state.of(AccountCaches).block_sets.plan_members(viewer_id),
        ],
    )
    large = await _large_followees(state, sessions, visibility, large_set)
    merged_large: list[int] = []
    if large:
        lists = await recent_posts_by_author(state, sessions, large)
        merged_large = [post_id for author in large for post_id in lists.get(author, [])]

    collected: list[PostRecord] = []
    cursor = before_id
    exhausted = False
    page: FeedPage | None = first_page
    for _ in range(1 + MAX_EXTRA_READS):
        if page is None:
            page = await state.of(FeedCaches).feeds.page(viewer_id, before_id=cursor, count=chunk)
        if not page.ready:
            await rebuild(state, sessions, viewer_id)
            page = await state.of(FeedCaches).feeds.page(viewer_id, before_id=cursor, count=chunk)
        stored = page.post_ids
        page = None
        full = len(stored) == chunk
        floor = stored[-1] if full else 0
        extra = [
            post_id
            for post_id in merged_large
            if (cursor is None or post_id < cursor) and post_id >= floor
        ]
        candidates = sorted(set(stored) | set(extra), reverse=True)
        if read_ahead is not None:
            await read_ahead(candidates, blocked=blocked)
        collected += await visibility.feed_posts(candidates)
        if len(collected) > limit or not full:
            exhausted = not full
            break
        cursor = candidates[-1]
    has_next = len(collected) > limit or not exhausted
    page_posts = collected[:limit]
    resume_after = page_posts[-1].id if page_posts else cursor
    return FeedSlice(posts=page_posts, has_next=has_next, resume_after=resume_after)


async def home_feed_from_sql(
    state: AppState,
    sessions: ShardSessions,
    *,
    visibility: Visibility,
    viewer_id: int,
    before_id: int | None,
    limit: int,
    read_ahead: ReadAhead | None = None,
) -> FeedSlice:
    """Fan-out on read, the classic alternative: read whom the viewer follows, then the
    newest posts of those accounts from every shard, and merge. The benchmark baseline."""
    authors = await stored_followee_ids(sessions, viewer_id)
    authors.append(viewer_id)
    by_shard = sessions.group_by_shard(authors)
    fetch = limit + 1 + limit // 2

    async def newest(shard: int, before: int | None) -> list[int]:
        async with sessions.shard(shard) as session:
            return await feed_repo.newest_posts_of_authors(
                session, by_shard[shard], before_id=before, limit=fetch
            )

    collected: list[PostRecord] = []
    cursor, full = before_id, True
    # As the precomputed feed: read on while hidden posts leave the page short, bounded.
    for _ in range(1 + MAX_EXTRA_READS):
        per_shard = await asyncio.gather(*(newest(shard, cursor) for shard in by_shard))
        candidates = heapq.nlargest(fetch, (post_id for ids in per_shard for post_id in ids))
        if read_ahead is not None:
            await read_ahead(candidates, blocked=None)
        collected += await visibility.feed_posts(candidates)
        full = len(candidates) == fetch
        cursor = candidates[-1] if candidates else cursor
        if len(collected) > limit or not full:
            break
    page_posts = collected[:limit]
    return FeedSlice(
        posts=page_posts,
        has_next=len(collected) > limit or full,
        resume_after=page_posts[-1].id if page_posts else cursor,
    )
