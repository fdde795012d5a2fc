"""Explore in the API."""

from __future__ import annotations

from graphql_api.explore.schema import ExploreQueries
from graphql_api.features import ApiFeature

FEATURE = ApiFeature(name="explore", query=ExploreQueries)
