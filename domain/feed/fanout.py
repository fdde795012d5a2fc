"""Fan-out on write: push a new post into every active follower's precomputed feed, and
keep feeds in step with the follow graph (backfill on follow, removal on unfollow).

These run as event handlers (``domain/feed/jobs.py``). Durability comes from the outbox:
a post's ``post.created`` delivery stays in PostgreSQL until its fan-out has finished.
The fan-out walks the author's followers in batches, each pushed to every follower's
feed by one script call (ZADD and trim inside Redis), and saves its progress on the post
(``fanout_cursor``), so a run killed half-way resumes where it stopped. Every step is
idempotent (ZADD of a member that is there changes nothing): a delivery that runs twice
converges.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from db.feed import repository as feed_repo
from db.feed.caches import FeedCaches
from db.redis import redis_available
from db.session import ShardSessions
from domain.accounts.relations import follower_ids_page, stored_user
from domain.events import owed_count
from domain.feed.large_accounts import note_follower_count
from domain.feed.reads import POSTS_PER_AUTHOR_ON_REBUILD, recent_posts_by_author
from domain.jobs import enqueue
from domain.state import AppState

# The name its handler is registered under (domain/feed/jobs.py), kept in its outbox rows.
FAN_OUT_HANDLER = "feed.fan_out"


@dataclass(frozen=True)
class FanOutResult:
    post_id: int
    feeds_written: int
    skipped_inactive: int
    merged_at_read_time: bool


async def fan_out(state: AppState, sessions: ShardSessions, post_id: int) -> FanOutResult:
    """Push the post into its author's feed and every active follower's; resumable."""
    settings = state.runtime.settings
    async with sessions.for_id(post_id) as session:
        post = await feed_repo.get_post_for_fanout(session, post_id)
        author = await stored_user(session, post.author_id) if post else None
    if post is None or post.deleted_at is not None or author is None:
        return FanOutResult(post_id, 0, 0, merged_at_read_time=False)

    feeds = state.of(FeedCaches).feeds
    # The author sees their own post at once, whatever their audience.
    written = await feeds.push([author.id], [post_id])
    if author.follower_count > settings.fanout_follower_threshold:
        # A large account's posts are merged into feeds at read time (workers would take
        # minutes per post otherwise); make sure readers know it is large, and mark the
        # post so that it is pushed after all if the author falls back below the threshold.
        async with sessions.for_id(post_id) as session:
            await feed_repo.mark_merged_at_read(session, post_id)
        await note_follower_count(state, sessions, author.id, author.follower_count)
        return FanOutResult(post_id, written, 0, merged_at_read_time=True)

    skipped = 0
    async for batch in active_follower_batches(
        state, sessions, author.id, after_follower_id=max(post.fanout_cursor, 0)
    ):
        skipped += batch.inactive
        written += await feeds.push(batch.active, [post_id])
        async with sessions.for_id(post_id) as session:
            await feed_repo.save_fanout_cursor(session, post_id, batch.last_follower_id)
    return FanOutResult(post_id, written, skipped, merged_at_read_time=False)


@dataclass(frozen=True)
class FollowerBatch:
    active: list[int]
    inactive: int
    last_follower_id: int


async def active_follower_batches(
    state: AppState, sessions: ShardSessions, author_id: int, *, after_follower_id: int
) -> AsyncIterator[FollowerBatch]:
    """The author's followers after ``after_follower_id``, ``fanout_batch_size`` at a
    time, with those active within ``feed_active_days`` picked out."""
    settings = state.runtime.settings
    active_since = time.time() - settings.feed_active_days * 86400
    cursor = after_follower_id
    while True:
        followers = await follower_ids_page(
            sessions, author_id, after_follower_id=cursor, limit=settings.fanout_batch_size
        )
        if not followers:
            return
        active = await state.of(FeedCaches).activity.active_since(followers, active_since)
        cursor = followers[-1]
        yield FollowerBatch(
            active=active, inactive=len(followers) - len(active), last_follower_id=cursor
        )


async def fan_out_pending(sessions: ShardSessions, post_id: int) -> bool:
    """Whether the post's fan-out is still owed (not every follower's feed has it yet)."""
    async with sessions.for_id(post_id) as session:
        owed = await owed_count(
            session, handler=FAN_OUT_HANDLER, payload_contains={"post_id": post_id}
        )
    return owed > 0


async def pending_fan_outs(sessions: ShardSessions) -> int:
    """How many posts' fan-outs are owed, across every shard."""
    counts = await sessions.scatter_all(
        lambda session: owed_count(session, handler=FAN_OUT_HANDLER)
    )
    return sum(counts.values())


async def backfill(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    """Put the followee's recent posts into a ready feed (a missing one is rebuilt on read)."""
    try:
        if not await state.of(FeedCaches).feeds.is_ready(follower_id):
            return
        recent = await recent_posts_by_author(state, sessions, [followee_id])
        await state.of(FeedCaches).feeds.push(
            [follower_id], recent.get(followee_id, [])[:POSTS_PER_AUTHOR_ON_REBUILD]
        )
    except RedisError:
        # The feed may lack the followee's posts: it is rebuilt once Redis answers.
        await state.of(FeedCaches).feeds.invalidate(follower_id)


async def remove_followee_posts(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    if not redis_available(state.runtime.redis):
        return  # the readers' follow check drops the followee's posts
    recent = await recent_posts_by_author(state, sessions, [followee_id])
    await state.of(FeedCaches).feeds.remove(follower_id, recent.get(followee_id, []))


# The job that pushes a shrunk account's merged posts (domain/feed/jobs.py).
REFILL_JOB = "feed.refill_followers"


async def follower_count_changed(state: AppState, sessions: ShardSessions, user_id: int) -> None:
    """An account may have crossed the fan-out threshold: keep the large set right, and
    when it fell back below it, queue the push of the posts readers no longer merge
    (the daily ``feed.repair_small_accounts`` catches a crossing nobody saw)."""
    async with sessions.for_id(user_id) as session:
        user = await stored_user(session, user_id)
    if user is not None and await note_follower_count(
        state, sessions, user_id, user.follower_count
    ):
        # Keyed by time: an account can cross again before a finished job's key expires.
        await enqueue(state, REFILL_JOB, key=f"{user_id}:{time.time_ns()}", author_id=user_id)
