"""Media in the API: uploads and what a photo or video offers its viewers."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from domain.state import AppState
from graphql_api.features import ApiFeature
from graphql_api.media.loaders import MediaLoaders
from graphql_api.media.route import MediaEndpoint
from graphql_api.media.schema import MediaMutations, MediaQueries
from graphql_api.media.types import Media


def _routes(state: AppState) -> list[BaseRoute]:
    return [Route("/media/{key:path}", MediaEndpoint(state).serve, methods=["GET", "HEAD"])]


FEATURE = ApiFeature(
    name="media",
    routes=_routes,
    query=MediaQueries,
    mutation=MediaMutations,
    types=(Media,),
    loaders={MediaLoaders: MediaLoaders},
    list_bounds={("Media", "variants"): 6},  # three widths in two formats
    compiled_fields={
        "Media": frozenset(
            {
                "id",
                "kind",
                "width",
                "height",
                "aspectRatio",
                "placeholder",
                "durationSeconds",
                "url",
                "videoUrl",
            }
        ),
    },
)
