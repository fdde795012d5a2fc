"""Large accounts: authors above the fan-out threshold, whose posts are merged into feeds
at read time instead of being written to every follower's feed."""

from __future__ import annotations

from db.feed import repository as feed_repo
from db.feed.caches import FeedCaches
from db.redis import PlannedRead
from db.session import ShardSessions
from domain.state import AppState

# The set is one global member list, under this owner id.
_ALL = 0


async def large_account_ids(state: AppState, sessions: ShardSessions) -> set[int]:
    threshold = state.runtime.settings.fanout_follower_threshold

    async def load() -> list[int]:
        per_shard = await sessions.scatter_all(
            lambda session: feed_repo.large_account_ids(session, threshold=threshold)
        )
        return [user_id for ids in per_shard.values() for user_id in ids]

    return await state.of(FeedCaches).large_accounts.members(_ALL, load=load)


def plan_large_account_ids(state: AppState) -> PlannedRead[set[int] | None]:
    """The cached set, as one part of a shared round trip; None when not cached."""
    return state.of(FeedCaches).large_accounts.plan_members(_ALL)


async def note_follower_count(
    state: AppState, sessions: ShardSessions, user_id: int, follower_count: int
) -> bool:
    """Keep the large-account set right when an account crosses the threshold. True when
    it has just fallen back below it: readers stop merging its posts, so the ones its
    fan-out left to them are owed to its followers' feeds (``domain/feed/repairs.py``)."""
    is_large = follower_count > state.runtime.settings.fanout_follower_threshold
    was_large = user_id in await large_account_ids(state, sessions)
    if was_large != is_large:
        await state.of(FeedCaches).large_accounts.changed(_ALL)
    return was_large and not is_large
