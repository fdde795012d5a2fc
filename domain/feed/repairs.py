"""The home feed's repair: posts a large account's fan-out left to the read-time merge,
once the account has fallen back below ``fanout_follower_threshold``.

Readers merge only the accounts above the threshold, so when one drops below it, the posts
it made while large (marked ``MERGED_AT_READ`` by ``fan_out``) are in nobody's feed. They
are pushed into the active followers' feeds, as a fan-out would have, then unmarked:
by a job queued at the moment of crossing (``follower_count_changed``), and by a daily
check for crossings nobody saw (a large-account set rebuilt after the drop, a lost job).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from db.feed import repository as feed_repo
from db.feed.caches import FeedCaches
from db.posts.caches import CACHED_LIST_LENGTH
from db.session import ShardSessions
from domain.accounts.relations import stored_user
from domain.feed.fanout import active_follower_batches
from domain.feed.large_accounts import note_follower_count
from domain.state import AppState

log = logging.getLogger(__name__)

AUTHOR_BATCH = 200


@dataclass(frozen=True)
class Refill:
    author_id: int
    # The author's merged posts among its newest: what readers merged and no longer do.
    post_ids: list[int]
    feeds_written: int


@dataclass
class FeedRepairReport:
    refilled: list[Refill] = field(default_factory=list)


async def refill_followers(
    state: AppState, sessions: ShardSessions, author_id: int, *, dry_run: bool = False
) -> Refill | None:
    """Push a small account's posts merged at read time into its active followers' feeds
    and unmark them; None while it is still large (readers merge it) or is gone."""
    threshold = state.runtime.settings.fanout_follower_threshold
    async with sessions.for_id(author_id) as session:
        author = await stored_user(session, author_id)
        # Readers merged at most this many of a large account's newest posts.
        newest_id, merged = await feed_repo.newest_posts_merged_at_read(
            session, author_id, newest=CACHED_LIST_LENGTH
        )
    if author is None or author.follower_count > threshold or newest_id is None:
        return None
    if dry_run:
        return Refill(author_id, merged, feeds_written=0)
    written = 0
    if merged:  # fan_out pushed them to the author's own feed already
        async for batch in active_follower_batches(state, sessions, author_id, after_follower_id=0):
            written += await state.of(FeedCaches).feeds.push(batch.active, merged)
    async with sessions.for_id(author_id) as session:
        # Older merged posts too: no reader would find them in a feed any more.
        await feed_repo.clear_merged_at_read(session, author_id, through_id=newest_id)
    # The feeds have the posts now: readers may stop merging the account.
    await note_follower_count(state, sessions, author_id, author.follower_count)
    return Refill(author_id, merged, feeds_written=written)


async def repair_small_accounts(state: AppState, *, dry_run: bool = False) -> FeedRepairReport:
    """Refill the followers of every account below the threshold that still has posts
    merged at read time, shard by shard, a page of authors at a time."""
    sessions = ShardSessions(state.runtime.databases)
    threshold = state.runtime.settings.fanout_follower_threshold
    report = FeedRepairReport()
    for shard in sessions.shard_map.shards:
        after = 0
        while True:
            async with sessions.shard(shard) as session:
                authors = await feed_repo.small_authors_with_merged_posts(
                    session, threshold=threshold, after_author_id=after, limit=AUTHOR_BATCH
                )
            for author_id in authors:
                refill = await refill_followers(state, sessions, author_id, dry_run=dry_run)
                if refill is not None:
                    report.refilled.append(refill)
            if len(authors) < AUTHOR_BATCH:
                break
            after = authors[-1]
    if report.refilled:
        log.warning(
            "%d accounts below the fan-out threshold had posts left to the read-time merge (%s)",
            len(report.refilled),
            "found" if dry_run else "pushed to their followers' feeds",
        )
    return report
