"""Explore in the authorization audit. Its probe is the feeds' (``test_feed.py``)."""

from __future__ import annotations

from tests.authorization.audit import FEEDS, GUARDED, Classified, classify

AUDIT: list[Classified] = [
    *classify(GUARDED, FEEDS, "Query", "explore similarPosts suggestedAccounts"),
]
