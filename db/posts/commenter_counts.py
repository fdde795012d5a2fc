"""Each post's live comments counted per commenter, in Redis: what a viewer who blocked
some commenters (or was blocked by them) takes off the post's ``commentCount``.

One hash per post, ``post-commenters:<post id>``: commenter id -> that commenter's live
comments on the post (replies included), plus the field ``-`` once filled, so that "cached
and nobody commented" differs from "absent". Only viewers with a non-empty block set read
it, a few fields at a time (``HMGET`` of the blocked ids).

A comment added or deleted moves its author's field after the commit, only if the hash
exists, and bumps the post's version (``post-commenters:<post id>:v``). A missing hash is
rebuilt from the rows; the fill lands only if the version the reader saw before reading
PostgreSQL is still current, so a comment committed meanwhile is never lost or counted
twice (the gap ``db/counters.py`` leaves to its TTL).

Redis down (``db/redis.py``): a failed read counts from the rows and fills nothing; a
failed adjustment does not fail the request, and the hash is dropped (its version bumped)
when Redis answers again, before any cached read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from db.redis import (
    PlannedRead,
    can_fill,
    invalidate_later,
    note_failure,
    nothing_to_read,
    read_epoch,
)
from db.session import ShardSessions

# The field every filled hash holds.
_FILLED = "-"

_ADJUST = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 1 then
    if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
        redis.call('HDEL', KEYS[1], ARGV[1])
    end
end
return 1
"""

_FILL_IF_CURRENT = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
for i = 3, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# (post id, commenter id, live comments) rows for some posts of one shard.
CommenterCountQuery = Callable[[AsyncSession, list[int]], Awaitable[list[tuple[int, int, int]]]]
# {post id: {commenter id: live comments}}, for the commenters asked about (0 left out).
CommenterCounts = dict[int, dict[int, int]]


def _text(value: bytes | str | None) -> str:
    if value is None:
        return "0"
    return value.decode() if isinstance(value, bytes) else value


class PostCommenterCounts:
    def __init__(self, redis: Redis, *, name: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_seconds = ttl_seconds
        self._adjust = redis.register_script(_ADJUST)
        self._fill = redis.register_script(_FILL_IF_CURRENT)

    def key(self, post_id: int) -> str:
        return f"{self.name}:{post_id}"

    def version_key(self, post_id: int) -> str:
        return f"{self.name}:{post_id}:v"

    def plan_get(
        self, post_ids: Sequence[int], commenter_ids: Sequence[int]
    ) -> PlannedRead[CommenterCounts]:
        """The counts of ``commenter_ids`` on each post whose hash is cached (the others
        left out: ``get_many`` rebuilds them), as one part of a shared round trip."""
        posts = list(dict.fromkeys(post_ids))
        fields = [_FILLED, *(str(commenter) for commenter in commenter_ids)]
        if not posts:
            return nothing_to_read({})

        def queue(pipe: Pipeline) -> None:
            for post_id in posts:
                pipe.hmget(self.key(post_id), fields)

        def parse(replies: list[Any]) -> CommenterCounts:
            return {
                post_id: _counts(commenter_ids, values[1:])
                for post_id, values in zip(posts, replies, strict=True)
                if values[0] is not None
            }

        return PlannedRead(queue=queue, replies=len(posts), parse=parse)

    async def get_many(
        self,
        post_ids: Sequence[int],
        commenter_ids: Sequence[int],
        *,
        sessions: ShardSessions,
        count: CommenterCountQuery,
    ) -> CommenterCounts:
        """The counts of ``commenter_ids`` on each post: one round trip, then, for the posts
        not cached, one statement per shard and a guarded fill."""
        posts = list(dict.fromkeys(post_ids))
        if not posts:
            return {}
        epoch = read_epoch(self.redis)
        cached = self.plan_get(posts, commenter_ids)
        versions: dict[int, bytes | None] = {}
        found: CommenterCounts = {}
        cache_answered = True
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for post_id in posts:
                    pipe.get(self.version_key(post_id))
                cached.queue(pipe)
                replies = await pipe.execute()
        except RedisError as error:
            note_failure(self.redis, error)
            cache_answered = False
        else:
            versions = dict(zip(posts, replies[: len(posts)], strict=True))
            found = cached.parse(replies[len(posts) :])
        misses = [post_id for post_id in posts if post_id not in found]
        if not misses:
            return found
        rows = await sessions.scatter_ids(misses, count)
        loaded: CommenterCounts = {post_id: {} for post_id in misses}
        for post_id, commenter_id, comments in rows:
            loaded[post_id][commenter_id] = comments
        if cache_answered and can_fill(self.redis, epoch):
            await self._store(loaded, versions)
        wanted = set(commenter_ids)
        found.update(
            {
                post_id: {who: n for who, n in counts.items() if who in wanted}
                for post_id, counts in loaded.items()
            }
        )
        return found

    async def _store(self, loaded: CommenterCounts, versions: dict[int, bytes | None]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for post_id, counts in loaded.items():
                    fields = [_FILLED, "0"]
                    for commenter_id, comments in counts.items():
                        fields += [str(commenter_id), str(comments)]
                    await self._fill(
                        keys=[self.key(post_id), self.version_key(post_id)],
                        args=[_text(versions.get(post_id)), self.ttl_seconds, *fields],
                        client=pipe,
                    )
                await pipe.execute()
        except RedisError as error:
            note_failure(self.redis, error)

    async def adjust(self, post_id: int, commenter_id: int, delta: int) -> None:
        """Call after the comment's row change committed."""
        key, version_key = self.key(post_id), self.version_key(post_id)
        try:
            await self._adjust(
                keys=[key, version_key], args=[commenter_id, delta, self.ttl_seconds * 2]
            )
        except RedisError as error:
            invalidate_later(self.redis, error, key, ("INCR", version_key), ("DEL", key))


def _counts(commenter_ids: Sequence[int], values: Sequence[Any]) -> dict[int, int]:
    return {
        commenter: int(value)
        for commenter, value in zip(commenter_ids, values, strict=True)
        if value is not None and int(value) > 0
    }
