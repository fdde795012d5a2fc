"""Explore's derived data: the model artifacts in object storage, and in Redis the
current model version, each active person's precomputed candidates and the trending
list. All of it is rebuilt by the next training run; none of it is the truth.

Keys:
- ``explore:model`` the current model version (also ``models/explore/LATEST`` in S3,
  which survives a lost Redis);
- ``explore:cand:<user>`` that person's ranked candidate post ids (int64, packed);
- ``explore:trending`` the trending post ids (int64, packed), for everyone else.
"""

from __future__ import annotations

import contextlib
import struct

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.media.storage import ObjectStore

MODEL_KEY = "explore:model"
TRENDING_KEY = "explore:trending"
MODEL_PREFIX = "models/explore/"
LATEST_OBJECT = MODEL_PREFIX + "LATEST"
CANDIDATE_TTL_SECONDS = 3 * 86_400
# Short: trending is cheap to rebuild from the log, and must follow what is hot now.
TRENDING_TTL_SECONDS = 600


def candidates_key(user_id: int) -> str:
    return f"explore:cand:{user_id}"


def _pack(ids: list[int]) -> bytes:
    return struct.pack(f"<{len(ids)}q", *ids)


def _unpack(raw: bytes | str | None) -> list[int] | None:
    if raw is None or isinstance(raw, str):
        return None
    return list(struct.unpack(f"<{len(raw) // 8}q", raw))


class ExploreStore:
    def __init__(self, redis: Redis, objects: ObjectStore) -> None:
        self.redis = redis
        self.objects = objects

    # Models -----------------------------------------------------------------------------

    async def save_model(self, version: str, artifact: bytes) -> None:
        await self.objects.put(
            key=f"{MODEL_PREFIX}{version}.npz", body=artifact, content_type="application/x-npz"
        )
        await self.objects.put(key=LATEST_OBJECT, body=version.encode(), content_type="text/plain")
        # Without Redis, readers find the version in LATEST.
        with contextlib.suppress(RedisError):
            await self.redis.set(MODEL_KEY, version)

    async def current_version(self) -> str | None:
        try:
            raw = await self.redis.get(MODEL_KEY)
        except RedisError:
            raw = None
        if raw is not None:
            return raw.decode() if isinstance(raw, bytes) else str(raw)

        if await self.objects.head(LATEST_OBJECT) is None:
            return None
        return (await self.objects.get(LATEST_OBJECT)).decode()

    async def load_model(self, version: str) -> bytes:
        return await self.objects.get(f"{MODEL_PREFIX}{version}.npz")

    # Candidates -------------------------------------------------------------------------

    async def store_candidates(self, ranked: dict[int, list[int]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, post_ids in ranked.items():
                pipe.set(candidates_key(user_id), _pack(post_ids), ex=CANDIDATE_TTL_SECONDS)
            await pipe.execute()

    async def store_trending(self, post_ids: list[int]) -> None:
        await self.redis.set(TRENDING_KEY, _pack(post_ids), ex=TRENDING_TTL_SECONDS)

    async def candidates(self, user_id: int) -> tuple[list[int] | None, list[int] | None]:
        """(the person's candidates, the trending list), either None when missing."""
        try:
            mine, trending = await self.redis.mget(candidates_key(user_id), TRENDING_KEY)
        except RedisError:
            return None, None
        return _unpack(mine), _unpack(trending)
