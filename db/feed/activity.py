"""Who was active lately: fan-out on write skips followers who have been away.

``active_users`` is a sorted set of user ids scored by the time of their last recorded
activity, recorded at most once an hour per user (``active-touch:{user}``).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import invalidate_later, note_failure

ACTIVE_USERS_KEY = "active_users"
ACTIVITY_MARK_SECONDS = 3600


def activity_mark_key(user_id: int) -> str:
    return f"active-touch:{user_id}"


class ActivityMarks:
    """When users were last active (``active_users``), recorded at most once an hour."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def record(self, user_id: int, now: float) -> float | bool | None:
        """Mark the user active at ``now``: the previous mark (``None`` if never), or
        ``False`` when nothing was recorded (marked within the hour, or Redis down)."""
        mark = activity_mark_key(user_id)
        try:
            marked = await self._redis.set(mark, "1", ex=ACTIVITY_MARK_SECONDS, nx=True)
        except RedisError as error:
            # Nothing recorded; the first request after Redis is back records it.
            note_failure(self._redis, error)
            return False
        if not marked:
            return False
        return await self.note_marked(user_id, now)

    async def note_marked(self, user_id: int, now: float) -> float | bool | None:
        """After this request set the user's hourly mark (``record``, or the session check
        of ``db/accounts/caches.py``): move them to ``now`` in ``active_users``; as
        ``record``."""
        mark = activity_mark_key(user_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zscore(ACTIVE_USERS_KEY, str(user_id))
                pipe.zadd(ACTIVE_USERS_KEY, {str(user_id): now})
                previous, _ = await pipe.execute()
        except RedisError as error:
            # Drop the hourly mark once Redis answers, so the next request tries again.
            invalidate_later(self._redis, error, mark)
            return False
        return float(previous) if previous is not None else None

    async def active_since(self, user_ids: Sequence[int], since_timestamp: float) -> list[int]:
        if not user_ids:
            return []
        scores = await self._redis.zmscore(ACTIVE_USERS_KEY, [str(u) for u in user_ids])
        return [
            user_id
            for user_id, score in zip(user_ids, scores, strict=True)
            if score is not None and score >= since_timestamp
        ]
