"""The home feed in the API."""

from __future__ import annotations

from graphql_api.features import ApiFeature
from graphql_api.feed.schema import FeedQueries

FEATURE = ApiFeature(
    name="feed", query=FeedQueries, compiled_fields={"Query": frozenset({"homeFeed"})}
)
