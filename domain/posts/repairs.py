"""Repairs of what posts keep beside their rows: the hashtag index, and the hot counters.

**The hashtag index** (``hashtag_posts``, in each tag's shard) is written after the post's
own transaction commits, so a crash between the two, or an edit or delete whose second
step failed, leaves it out of step with ``post_hashtags`` (the tags each post's caption
has, committed with the post). ``repair_hashtag_index`` makes it hold exactly the (tag,
post) pairs of live posts: it adds what is missing, walking every shard's
``post_hashtags`` in keyset pages, and removes rows of deleted, missing or re-captioned
posts (and rows on a shard their tag does not hash to), walking every ``hashtag_posts``.
A post deleted while the repair runs may get a row back, which the next round removes.

**Hot counters** (``post-likes:``, ``post-comments:``, ``comment-likes:``,
``post-views:``) are caches that a read recounts when missing, and every one expires
within ``APERTURE_CACHE_TTL_SECONDS``: so a counter that disagrees with the rows is simply
dropped. No periodic task runs this (the TTL already bounds drift); ``aperture repair
counters`` does, for an operator who wants drift gone now (after an outage, say).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from db.counters import CountQuery, HotCounters
from db.ids import shard_of
from db.posts import repository as posts_repo
from db.posts.caches import PostCaches
from db.posts.repository import TagPair
from db.session import ShardSessions
from domain.reels.reels import counted_views
from domain.state import AppState

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass
class HashtagRepairReport:
    examined_post_tags: int = 0
    examined_index_rows: int = 0
    # (tag, post id) pairs added to, and removed from, the index.
    added: list[TagPair] = field(default_factory=list)
    removed: list[TagPair] = field(default_factory=list)


async def repair_hashtag_index(state: AppState, *, dry_run: bool = False) -> HashtagRepairReport:
    sessions = ShardSessions(state.runtime.databases)
    report = HashtagRepairReport()
    for shard in sessions.shard_map.shards:
        await _remove_stale_rows(sessions, shard, report, dry_run=dry_run)
    for shard in sessions.shard_map.shards:
        await _add_missing_rows(sessions, shard, report, dry_run=dry_run)
    if report.added or report.removed:
        log.warning(
            "hashtag index: %d rows missing, %d stale (%s)",
            len(report.added),
            len(report.removed),
            "found" if dry_run else "repaired",
        )
    return report


async def _add_missing_rows(
    sessions: ShardSessions, post_shard: int, report: HashtagRepairReport, *, dry_run: bool
) -> None:
    after: tuple[int, str] | None = None
    while True:
        async with sessions.shard(post_shard) as session:
            page = await posts_repo.live_post_tags_page(session, after=after, limit=BATCH)
        report.examined_post_tags += len(page)
        by_tag_shard: dict[int, list[TagPair]] = {}
        for post_id, tag in page:
            shard = sessions.shard_map.shard_for_hashtag(tag)
            by_tag_shard.setdefault(shard, []).append((tag, post_id))
        for tag_shard, pairs in by_tag_shard.items():
            async with sessions.shard(tag_shard) as session:
                present = await posts_repo.indexed_among(session, pairs)
                missing = [pair for pair in pairs if pair not in present]
                if missing and not dry_run:
                    missing = await posts_repo.index_pairs(session, missing)
            report.added += missing
        if len(page) < BATCH:
            return
        after = page[-1]


async def _remove_stale_rows(
    sessions: ShardSessions, tag_shard: int, report: HashtagRepairReport, *, dry_run: bool
) -> None:
    shard_map = sessions.shard_map
    after: TagPair | None = None
    while True:
        async with sessions.shard(tag_shard) as session:
            page = await posts_repo.hashtag_index_page(session, after=after, limit=BATCH)
        report.examined_index_rows += len(page)
        # A row on a shard its tag does not hash to is never read: stale too.
        stale: list[TagPair] = []
        by_post_shard: dict[int, list[TagPair]] = {}
        for pair in page:
            if shard_map.shard_for_hashtag(pair[0]) != tag_shard:
                stale.append(pair)
            else:
                by_post_shard.setdefault(shard_of(pair[1]), []).append(pair)
        for post_shard, pairs in by_post_shard.items():
            if not shard_map.exists(post_shard):
                stale += pairs
                continue
            async with sessions.shard(post_shard) as session:
                live = await posts_repo.live_post_tags_among(session, pairs)
            stale += [pair for pair in pairs if pair not in live]
        if stale and not dry_run:
            async with sessions.shard(tag_shard) as session:
                stale = await posts_repo.unindex_pairs(session, stale)
        report.removed += stale
        if len(page) < BATCH:
            return
        after = page[-1]


@dataclass(frozen=True)
class CounterDrift:
    key: str
    cached: int
    counted: int


@dataclass
class HotCounterReport:
    examined: int = 0
    dropped: list[CounterDrift] = field(default_factory=list)


def _hot_counters(state: AppState) -> Sequence[tuple[HotCounters, CountQuery]]:
    # The count each counter's readers recount with (domain/posts/likes.py, comments.py,
    # domain/reels/reels.py).
    return (
        (state.of(PostCaches).post_likes, posts_repo.post_like_counts),
        (state.of(PostCaches).post_comments, posts_repo.comment_counts),
        (state.of(PostCaches).comment_likes, posts_repo.comment_like_counts),
        (state.of(PostCaches).post_views, counted_views),
    )


async def repair_hot_counters(state: AppState, *, dry_run: bool = False) -> HotCounterReport:
    """Drop every cached counter that disagrees with a count of its rows."""
    sessions = ShardSessions(state.runtime.databases)
    report = HotCounterReport()
    for counters, count in _hot_counters(state):
        await _check_counters(sessions, counters, count, report, dry_run=dry_run)
    if report.dropped:
        log.warning(
            "%d hot counters disagreed with their rows (%s)",
            len(report.dropped),
            "found" if dry_run else "dropped",
        )
    return report


async def _check_counters(
    sessions: ShardSessions,
    counters: HotCounters,
    count: CountQuery,
    report: HotCounterReport,
    *,
    dry_run: bool,
) -> None:
    async def per_shard(session: AsyncSession, ids: list[int]) -> list[tuple[int, int]]:
        return list((await count(session, ids)).items())

    async for cached in counters.cached_batches():
        report.examined += len(cached)
        # An id whose shard does not exist has no rows: its count is zero.
        counted = dict(await sessions.scatter_ids(cached, per_shard))
        wrong = [
            object_id for object_id, value in cached.items() if value != counted.get(object_id, 0)
        ]
        if wrong and not dry_run:
            # A write racing the count can make a right counter look wrong: dropping it
            # costs one recount.
            await counters.discard(wrong)
        report.dropped += [
            CounterDrift(counters.key(object_id), cached[object_id], counted.get(object_id, 0))
            for object_id in wrong
        ]
