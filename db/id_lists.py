"""The first page of ids under an owner (a post's first comments, an author's newest
posts), cached so a warm page needs no SQL.

Writers recompute the list from PostgreSQL after committing and overwrite it; readers
fill with SET NX, so a reader that read before the commit cannot undo the writer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis


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
        raws = await self.redis.mget([self.key(owner) for owner in owner_ids])
        return {
            owner: json.loads(raw)
            for owner, raw in zip(owner_ids, raws, strict=True)
            if raw is not None
        }

    async def fill(self, lists: dict[int, list[int]]) -> None:
        if not lists:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for owner, ids in lists.items():
                pipe.set(
                    self.key(owner), json.dumps(ids[: self.capacity]), ex=self.ttl_seconds, nx=True
                )
            await pipe.execute()

    async def store(self, owner_id: int, ids: list[int]) -> None:
        await self.redis.set(
            self.key(owner_id), json.dumps(ids[: self.capacity]), ex=self.ttl_seconds
        )
