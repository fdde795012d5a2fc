"""Stories in the API."""

from __future__ import annotations

from graphql_api.features import ApiFeature
from graphql_api.stories.loaders import StoryLoaders
from graphql_api.stories.schema import StoryMutations, StoryQueries
from graphql_api.stories.types import Story

FEATURE = ApiFeature(
    name="stories",
    query=StoryQueries,
    mutation=StoryMutations,
    types=(Story,),
    loaders={StoryLoaders: StoryLoaders},
)
