"""The first page of ids under an owner (a post's first comments, an author's newest
posts), cached so a warm page needs no SQL.

Writers recompute the list from PostgreSQL after committing and overwrite it; readers
fill with SET NX, so a reader that read before the commit cannot undo the writer.

Redis down (``db/redis.py``): a failed read is a miss for every owner (the caller asks
PostgreSQL), fills are skipped, and a failed write does not fail the request: the list is
deleted when Redis answers again, before any cached read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import can_fill, invalidate_later, note_failure


class IdListCache:
    def __init__(self, redis: Redis, *, name: str, capacity: int, ttl_seconds: int) -> None:
        self.redis = redis
        self.name = name
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds

    def key(self, owner_id: int) -> str:
        return f"{self.name}:{owner_id}"

    async def get_many(self, owner_ids: Sequence[int]) -> dict[int, list[int]]:
        if not owner_ids:
            return {}
        try:
            raws = await self.redis.mget([self.key(owner) for owner in owner_ids])
        except RedisError as error:
            note_failure(self.redis, error)
            return {}
        return {
            owner: json.loads(raw)
            for owner, raw in zip(owner_ids, raws, strict=True)
            if raw is not None
        }

    async def fill(self, lists: dict[int, list[int]], *, epoch: int | None = None) -> None:
        """SET NX what a reader loaded; ``epoch`` as in ``RowCache.fill``."""
        if not lists or not can_fill(self.redis, epoch):
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for owner, ids in lists.items():
                    pipe.set(
                        self.key(owner),
                        json.dumps(ids[: self.capacity]),
                        ex=self.ttl_seconds,
                        nx=True,
                    )
                await pipe.execute()
        except RedisError as error:
            note_failure(self.redis, error)

    async def store(self, owner_id: int, ids: list[int]) -> None:
        key = self.key(owner_id)
        try:
            await self.redis.set(key, json.dumps(ids[: self.capacity]), ex=self.ttl_seconds)
        except RedisError as error:
            invalidate_later(self.redis, error, key)
