"""Reels in the authorization audit. Their probes are the feeds' (``test_feed.py``) and
mutations on hidden objects (``test_mutations.py``)."""

from __future__ import annotations

from tests.authorization.audit import FEEDS, GUARDED, MUTATIONS, Classified, classify

AUDIT: list[Classified] = [
    *classify(GUARDED, FEEDS, "Query", "reelsFeed"),
    *classify(GUARDED, MUTATIONS, "Mutation", "recordReelView"),
    *classify(GUARDED, MUTATIONS, "RecordReelViewPayload", "post viewCount"),
]
