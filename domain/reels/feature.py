"""Reels: posts of one video, ranked, with their views."""

from __future__ import annotations

from db.base import tables_of
from db.reels.caches import ReelCaches
from domain.features import DomainFeature, caches

FEATURE = DomainFeature(
    name="reels",
    tables=tables_of("db.reels"),
    services={ReelCaches: caches(ReelCaches)},
)
