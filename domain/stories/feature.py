"""Stories: 24 hours, close friends, seen marks."""

from __future__ import annotations

from db.base import tables_of
from db.stories.caches import StoryCaches
from domain.features import DomainFeature, caches

FEATURE = DomainFeature(
    name="stories",
    tables=tables_of("db.stories"),
    services={StoryCaches: caches(StoryCaches)},
)
