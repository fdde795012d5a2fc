"""Recording that a user is active: fan-out on write only reaches recent users, so a
user coming back after a long absence has a stale feed, rebuilt on their next read."""

from __future__ import annotations

from datetime import UTC, datetime

from db.feed.caches import FeedCaches
from db.session import ShardSessions
from domain.accounts.profiles import touch_last_active
from domain.state import AppState


async def record_activity(
    state: AppState, sessions: ShardSessions, user_id: int, *, marked: bool = False
) -> None:
    """Mark the user active; at most once an hour, so it costs one SET NX per request.
    ``marked``: this request already set the hourly mark (with its session check)."""
    now = datetime.now(UTC)
    if marked:
        previous = await state.of(FeedCaches).activity.note_marked(user_id, now.timestamp())
    else:
        previous = await state.of(FeedCaches).activity.record(user_id, now.timestamp())
    if previous is False:
        return  # recorded within the hour, or Redis is down
    away_since = now.timestamp() - state.runtime.settings.feed_active_days * 86400
    if previous is None or previous < away_since:
        # Fan-out skipped this user while they were away.
        await state.of(FeedCaches).feeds.invalidate(user_id)
    await touch_last_active(sessions, user_id, now=now)
