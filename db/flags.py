"""Per-viewer yes/no flags in a Redis hash (has the viewer liked post X).

Readers fill missing fields with HSETNX; writers HSET after committing, so a reader that
read PostgreSQL before a like committed cannot overwrite the writer's answer.

Redis down (``db/redis.py``): a failed read knows nothing (the caller asks PostgreSQL),
fills are skipped, and a failed write does not fail the request: the viewer's whole hash
is deleted when Redis answers again, before any cached read.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import PlannedRead, can_fill, invalidate_later, note_failure, nothing_to_read


def _known(ids: Sequence[int], raws: Sequence[bytes | str | None]) -> dict[int, bool]:
    return {
        object_id: raw == b"1" for object_id, raw in zip(ids, raws, strict=True) if raw is not None
    }


class ViewerFlags:
    def __init__(self, redis: Redis, *, name: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.ttl_seconds = ttl_seconds

    def key(self, viewer_id: int) -> str:
        return f"{self.name}:{viewer_id}"

    async def get_many(self, viewer_id: int, ids: Sequence[int]) -> dict[int, bool]:
        if not ids:
            return {}
        try:
            raws = await self.redis.hmget(self.key(viewer_id), [str(i) for i in ids])
        except RedisError as error:
            note_failure(self.redis, error)
            return {}
        return _known(ids, raws)

    def plan_get(self, viewer_id: int, ids: Sequence[int]) -> PlannedRead[dict[int, bool]]:
        """``get_many`` as one part of a shared round trip (``db.redis.read_together``)."""
        if not ids:
            return nothing_to_read({})
        key, fields = self.key(viewer_id), [str(i) for i in ids]
        return PlannedRead(
            queue=lambda pipe: pipe.hmget(key, fields),
            replies=1,
            parse=lambda replies: _known(ids, replies[0]),
        )

    async def fill(
        self, viewer_id: int, flags: dict[int, bool], *, epoch: int | None = None
    ) -> None:
        """HSETNX what a reader loaded; ``epoch`` as in ``RowCache.fill``."""
        if not flags or not can_fill(self.redis, epoch):
            return
        key = self.key(viewer_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for object_id, flag in flags.items():
                    pipe.hsetnx(key, str(object_id), "1" if flag else "0")
                pipe.expire(key, self.ttl_seconds)
                await pipe.execute()
        except RedisError as error:
            note_failure(self.redis, error)

    async def store(self, viewer_id: int, object_id: int, flag: bool) -> None:
        key = self.key(viewer_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, str(object_id), "1" if flag else "0")
                pipe.expire(key, self.ttl_seconds)
                await pipe.execute()
        except RedisError as error:
            invalidate_later(self.redis, error, key)
