"""Reels: posts of one video, ranked, with their views."""

from __future__ import annotations

from db.reels import models
from db.reels.caches import ReelCaches
from domain.features import DomainFeature, caches, tables_defined_in

FEATURE = DomainFeature(
    name="reels",
    tables=tables_defined_in(models),
    services={ReelCaches: caches(ReelCaches)},
)
