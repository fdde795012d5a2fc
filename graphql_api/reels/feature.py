"""Reels in the API."""

from __future__ import annotations

from graphql_api.features import ApiFeature
from graphql_api.reels.schema import ReelMutations, ReelQueries

FEATURE = ApiFeature(name="reels", query=ReelQueries, mutation=ReelMutations)
