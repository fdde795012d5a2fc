"""Reels' Redis structures, and the names of their keys."""

from __future__ import annotations

from redis.asyncio import Redis

from db.scored_sets import ScoredSet
from infra.settings import Settings


class ReelCaches:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        # Every recent reel, scored by creation time in ms, as one global set ("reels:0").
        self.reels_index = ScoredSet(redis, name="reels", ttl_seconds=settings.cache_ttl_seconds)
