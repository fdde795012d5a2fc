"""The home feed's Redis structures, and the names of their keys."""

from __future__ import annotations

from redis.asyncio import Redis

from db.feed.activity import ActivityMarks
from db.feed.store import FeedStore
from db.relation_cache import RelationSetCache
from infra.settings import Settings


class FeedCaches:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.feeds = FeedStore(redis, capacity=settings.feed_capacity)
        self.activity = ActivityMarks(redis)
        # Authors above the fan-out threshold, as one global set (key "large-accounts:0").
        self.large_accounts = RelationSetCache(
            redis, name="large-accounts", ttl_seconds=settings.cache_ttl_seconds
        )
