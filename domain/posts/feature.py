"""Posts, hashtags, mentions, comments, likes and saved posts."""

from __future__ import annotations

from db.posts import models
from db.posts.caches import PostCaches
from domain.features import DomainFeature, caches, tables_defined_in

FEATURE = DomainFeature(
    name="posts",
    tables=tables_defined_in(models),
    services={PostCaches: caches(PostCaches)},
)
