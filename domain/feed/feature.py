"""The home feed, precomputed by fan-out on write."""

from __future__ import annotations

from db.feed.caches import FeedCaches
from domain.features import DomainFeature, caches

FEATURE = DomainFeature(
    name="feed",
    tables=(),
    services={FeedCaches: caches(FeedCaches)},
)
