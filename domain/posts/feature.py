"""Posts, hashtags, mentions, comments, likes and saved posts."""

from __future__ import annotations

from db.base import tables_of
from db.posts.caches import PostCaches
from domain.features import DomainFeature, caches

FEATURE = DomainFeature(
    name="posts",
    tables=tables_of("db.posts"),
    services={PostCaches: caches(PostCaches)},
)
