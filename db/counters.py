"""Hot counters (likes, comments) in Redis; the rows in PostgreSQL stay the truth.

A write changes the counter only if it exists. A missing counter (evicted, flushed,
Redis restarted) is recounted from the rows and stored with SET NX, so it is rebuilt,
never reset to zero. A recount racing a write can be off by one; the TTL bounds how
long such drift can live, because the next read after expiry recounts.

Redis down (``db/redis.py``): a failed read recounts every id from the rows and stores
nothing; a failed adjustment does not fail the request, and the counter is deleted when
Redis answers again (before any cached read), so it is recounted rather than left stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
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

_INCR_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return nil
"""

CountQuery = Callable[[AsyncSession, list[int]], Awaitable[dict[int, int]]]


class HotCounters:
    def __init__(self, redis: Redis, *, name: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_seconds = ttl_seconds
        self._incr = redis.register_script(_INCR_IF_PRESENT)

    def key(self, object_id: int) -> str:
        return f"{self.name}:{object_id}"

    async def get_many(
        self, ids: Sequence[int], *, sessions: ShardSessions, count: CountQuery
    ) -> list[int]:
        if not ids:
            return []
        epoch = read_epoch(self.redis)
        cache_answered = True
        try:
            raws = await self.redis.mget([self.key(object_id) for object_id in ids])
        except RedisError as error:
            note_failure(self.redis, error)
            raws, cache_answered = [None] * len(ids), False
        values = {
            object_id: int(raw) for object_id, raw in zip(ids, raws, strict=True) if raw is not None
        }
        misses = [object_id for object_id in dict.fromkeys(ids) if object_id not in values]
        if misses:

            async def per_shard(
                session: AsyncSession, shard_ids: list[int]
            ) -> list[tuple[int, int]]:
                return list((await count(session, shard_ids)).items())

            recounted = dict(await sessions.scatter_ids(misses, per_shard))
            if cache_answered and can_fill(self.redis, epoch):
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for object_id, value in recounted.items():
                            pipe.set(self.key(object_id), value, ex=self.ttl_seconds, nx=True)
                        await pipe.execute()
                except RedisError as error:
                    note_failure(self.redis, error)
            values.update(recounted)
        return [max(values.get(object_id, 0), 0) for object_id in ids]

    def plan_get(self, ids: Sequence[int]) -> PlannedRead[dict[int, int]]:
        """The cached counters among ``ids`` (misses left out), as one part of a shared
        round trip (``db.redis.read_together``); ``get_many`` recounts the rest."""
        keys = [self.key(object_id) for object_id in ids]
        if not keys:
            return nothing_to_read({})

        def parse(replies: list[Any]) -> dict[int, int]:
            return {
                object_id: max(int(raw), 0)
                for object_id, raw in zip(ids, replies[0], strict=True)
                if raw is not None
            }

        return PlannedRead(queue=lambda pipe: pipe.mget(keys), replies=1, parse=parse)

    async def cached_batches(self, *, batch: int = 500) -> AsyncIterator[dict[int, int]]:
        """Every counter cached now, a ``SCAN`` step at a time: {object id: value}. Each
        step is bounded; a key written during the scan may be missed, none is lost."""
        cursor = 0
        while True:
            cursor, keys = await self.redis.scan(cursor, match=f"{self.name}:*", count=batch)
            ids = [_object_id(key, prefix=f"{self.name}:") for key in keys]
            found = [
                (object_id, key)
                for object_id, key in zip(ids, keys, strict=True)
                if object_id is not None
            ]
            if found:
                raws = await self.redis.mget([key for _, key in found])
                yield {
                    object_id: int(raw)
                    for (object_id, _), raw in zip(found, raws, strict=True)
                    if raw is not None
                }
            if cursor == 0:
                return

    async def discard(self, ids: Sequence[int]) -> None:
        """Drop these counters: the next read recounts them from the rows."""
        if ids:
            await self.redis.delete(*(self.key(object_id) for object_id in ids))

    async def adjust(self, object_id: int, delta: int) -> None:
        """Call after the row change committed."""
        key = self.key(object_id)
        try:
            await self._incr(keys=[key], args=[delta])
        except RedisError as error:
            invalidate_later(self.redis, error, key)


def _object_id(key: bytes | str, *, prefix: str) -> int | None:
    text = key.decode() if isinstance(key, bytes) else key
    suffix = text.removeprefix(prefix)
    return int(suffix) if suffix.isascii() and suffix.isdigit() else None
