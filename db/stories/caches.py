"""Stories' Redis structures, and the names of their keys."""

from __future__ import annotations

from redis.asyncio import Redis

from db.cache import RowCache
from db.relation_cache import RelationSetCache
from db.scored_sets import ScoredSet
from db.stories.models import Story
from db.stories.records import StoryRecord
from infra.settings import Settings


class StoryCaches:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        ttl = settings.cache_ttl_seconds
        self.story_cache = RowCache(redis, Story, StoryRecord, prefix="story", ttl_seconds=ttl)
        # An author's live stories ("<id>" or "<id>:c" for close friends, scored by expiry
        # in ms) and a viewer's seen stories (scored likewise), rebuilt from rows when
        # missing.
        self.story_index = ScoredSet(redis, name="stories", ttl_seconds=ttl)
        self.stories_seen = ScoredSet(redis, name="story-seen", ttl_seconds=ttl)
        self.close_friends = RelationSetCache(redis, name="close-friends", ttl_seconds=ttl)
