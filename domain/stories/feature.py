"""Stories: 24 hours, close friends, seen marks."""

from __future__ import annotations

from db.stories import models
from db.stories.caches import StoryCaches
from domain.features import DomainFeature, caches, tables_defined_in

FEATURE = DomainFeature(
    name="stories",
    tables=tables_defined_in(models),
    services={StoryCaches: caches(StoryCaches)},
)
