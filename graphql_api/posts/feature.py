"""Posts in the API: posts, comments, likes, saved posts, hashtags and mentions."""

from __future__ import annotations

from domain.posts.posts import MAX_MEDIA_PER_POST
from graphql_api.features import ApiFeature
from graphql_api.posts.loaders import PostLoaders
from graphql_api.posts.schema import PostMutations, PostQueries
from graphql_api.posts.types import Comment, Post

FEATURE = ApiFeature(
    name="posts",
    query=PostQueries,
    mutation=PostMutations,
    types=(Post, Comment),
    loaders={PostLoaders: PostLoaders},
    list_bounds={("Post", "mentions"): 20, ("Post", "media"): MAX_MEDIA_PER_POST},
    compiled_fields={
        "PostConnection": frozenset({"edges", "pageInfo", "nodes"}),
        "PostEdge": frozenset({"node", "cursor"}),
        "Post": frozenset(
            {
                "id",
                "caption",
                "createdAt",
                "updatedAt",
                "hashtags",
                "author",
                "likeCount",
                "commentCount",
                "viewerHasLiked",
                "viewerHasSaved",
                "media",
                "isReel",
                "viewCount",
            }
        ),
    },
)
