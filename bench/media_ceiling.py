"""The in-memory ceiling of the feed with media (``bench.media``): stock Strawberry,
with its parser and validation caches, executing the same document over the same values,
built from one real response of the server, as ``bench.read_path``'s ceiling does for the
media-less feed. What the server spends beyond it is HTTP, the session check, the rate
limiter, cost analysis, the reads from Valkey and the work of choosing and signing URLs."""

from __future__ import annotations

import enum
from typing import Any

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

FEED_MEDIA_QUERY = (
    "query { homeFeed(first: 20) { edges { node { id caption author { username "
    "avatar { url(width: 320) } } likeCount commentCount viewerHasLiked isReel "
    "media { id kind width height aspectRatio placeholder url(width: 640) } } } } }"
)


@strawberry.enum
class CeilingMediaKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"


@strawberry.type
class CeilingAvatar:
    url_value: strawberry.Private[str]

    @strawberry.field
    def url(self, width: int | None = None) -> str:
        return self.url_value


@strawberry.type
class CeilingMediaAuthor:
    username: str
    avatar: CeilingAvatar | None


@strawberry.type
class CeilingMedia:
    id: strawberry.ID
    kind: CeilingMediaKind
    width: int | None
    height: int | None
    aspect_ratio: float | None
    placeholder: str | None
    url_value: strawberry.Private[str | None]

    @strawberry.field
    def url(self, width: int | None = None) -> str | None:
        return self.url_value


@strawberry.type
class CeilingMediaPost:
    id: strawberry.ID
    caption: str
    author: CeilingMediaAuthor
    like_count: int
    comment_count: int
    viewer_has_liked: bool
    is_reel: bool
    media: list[CeilingMedia]


@strawberry.type
class CeilingMediaEdge:
    node: CeilingMediaPost


@strawberry.type
class CeilingMediaConnection:
    edges: list[CeilingMediaEdge]


def _post(node: dict[str, Any]) -> CeilingMediaPost:
    author = node["author"]
    avatar = author["avatar"]
    return CeilingMediaPost(
        id=strawberry.ID(node["id"]),
        caption=node["caption"],
        author=CeilingMediaAuthor(
            username=author["username"],
            avatar=None if avatar is None else CeilingAvatar(url_value=avatar["url"]),
        ),
        like_count=node["likeCount"],
        comment_count=node["commentCount"],
        viewer_has_liked=node["viewerHasLiked"],
        is_reel=node["isReel"],
        media=[
            CeilingMedia(
                id=strawberry.ID(item["id"]),
                kind=CeilingMediaKind[item["kind"]],
                width=item["width"],
                height=item["height"],
                aspect_ratio=item["aspectRatio"],
                placeholder=item["placeholder"],
                url_value=item["url"],
            )
            for item in node["media"]
        ],
    )


def media_ceiling_schema(response: dict[str, Any]) -> strawberry.Schema:
    """A schema that answers ``FEED_MEDIA_QUERY`` with ``response``'s data, from memory."""
    posts = [_post(edge["node"]) for edge in response["data"]["homeFeed"]["edges"]]

    @strawberry.type
    class CeilingMediaQuery:
        @strawberry.field
        def home_feed(self, first: int) -> CeilingMediaConnection:
            return CeilingMediaConnection(edges=[CeilingMediaEdge(node=p) for p in posts[:first]])

    return strawberry.Schema(query=CeilingMediaQuery, extensions=[ParserCache, ValidationCache])
