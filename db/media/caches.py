"""Media's Redis structures, and the names of their keys."""

from __future__ import annotations

from redis.asyncio import Redis

from db.cache import RowCache
from db.media.models import Media
from db.media.records import MediaRecord
from infra.settings import Settings


class MediaCaches:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.media_cache = RowCache(
            redis, Media, MediaRecord, prefix="media", ttl_seconds=settings.cache_ttl_seconds
        )
