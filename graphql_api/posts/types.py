"""GraphQL types for posts and comments."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from db.accounts.records import UserRecord as UserRow
from db.media.records import MediaRecord as MediaRow
from db.posts.caches import CACHED_LIST_LENGTH
from db.posts.records import CommentRecord as CommentRow
from db.posts.records import PostRecord as PostRow
from domain.errors import BadUserInput
from domain.posts import comments, posts
from domain.posts.pages import PostFields, PostPageAhead, read_ahead
from domain.posts.text import parse_hashtags
from domain.visibility import KnownFacts, known_or_loaded, media_urls_signed
from graphql_api.context import Info
from graphql_api.node import Node
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_cursor,
    encode_cursor,
    has_visible_next,
    page_size,
    to_global_id,
)

if TYPE_CHECKING:
    from graphql_api.accounts.types import User
    from graphql_api.media.types import Media

T = TypeVar("T")
UserType = Annotated["User", strawberry.lazy("graphql_api.accounts.types")]
MediaType = Annotated["Media", strawberry.lazy("graphql_api.media.types")]


async def _user(info: Info, user_id: int) -> UserType | None:
    from graphql_api.accounts.types import User

    row = await info.context.loaders.visibility.user(user_id)
    return User(row=row) if row is not None else None


@dataclass(frozen=True)
class PostPage:
    """What a page of posts asked for, loaded in one batch per relation before the page's
    fields resolve. Each field then answers synchronously: a feed page of 20 posts would
    otherwise await some 80 DataLoader futures, which costs more CPU than the I/O."""

    like_counts: dict[int, int] = field(default_factory=dict)
    comment_counts: dict[int, int] = field(default_factory=dict)
    viewer_liked: dict[int, bool] = field(default_factory=dict)
    viewer_saved: dict[int, bool] = field(default_factory=dict)
    authors: dict[int, UserRow | None] = field(default_factory=dict)
    media: dict[int, MediaRow | None] = field(default_factory=dict)


@strawberry.type(description="A photo or video post.")
class Post(Node):
    row: strawberry.Private[PostRow]
    page: strawberry.Private[PostPage | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Post", self.row.id)

    @strawberry.field
    def caption(self) -> str:
        return self.row.caption

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(description="Hashtags in the caption, lower-cased, without '#'.")
    def hashtags(self) -> list[str]:
        return parse_hashtags(self.row.caption)

    @strawberry.field(graphql_type=UserType | None)
    def author(self, info: Info) -> UserType | Awaitable[UserType | None] | None:
        if self.page is not None and self.row.author_id in self.page.authors:
            from graphql_api.accounts.types import User

            author = self.page.authors[self.row.author_id]
            return User(row=author) if author is not None else None
        return _user(info, self.row.author_id)

    @strawberry.field(description="Existing users @mentioned in the caption.")
    async def mentions(self, info: Info) -> list[UserType]:
        from graphql_api.accounts.types import User

        ids = await info.context.loaders.posts.mentions.load(self.row.id)
        rows = await info.context.loaders.visibility.users(ids)
        return [User(row=row) for row in rows if row is not None]

    @strawberry.field(graphql_type=int)
    def like_count(self, info: Info) -> int | Awaitable[int]:
        if self.page is not None and self.row.id in self.page.like_counts:
            return self.page.like_counts[self.row.id]
        return info.context.loaders.posts.like_count.load(self.row.id)

    @strawberry.field(graphql_type=int, description="All comments, replies included.")
    def comment_count(self, info: Info) -> int | Awaitable[int]:
        if self.page is not None and self.row.id in self.page.comment_counts:
            return self.page.comment_counts[self.row.id]
        return info.context.loaders.posts.comment_count.load(self.row.id)

    @strawberry.field(graphql_type=bool)
    def viewer_has_liked(self, info: Info) -> bool | Awaitable[bool]:
        if self.page is not None and self.row.id in self.page.viewer_liked:
            return self.page.viewer_liked[self.row.id]
        return info.context.loaders.posts.viewer_liked.load(self.row.id)

    @strawberry.field(
        graphql_type=list[MediaType],
        description="The photos and videos, in order (a carousel when several); empty for "
        "a caption-only post.",
    )
    async def media(self, info: Info) -> list[MediaType]:
        from graphql_api.media.types import Media, media_of

        if not self.row.media_ids:
            return []
        author = None
        page = self.page
        if page is not None:
            author = page.authors.get(self.row.author_id)
        if author is None:
            author = await info.context.loaders.accounts.user.load(self.row.author_id)
        if page is not None and all(media_id in page.media for media_id in self.row.media_ids):
            found = (page.media[media_id] for media_id in self.row.media_ids)
            signed = media_urls_signed(author)
            return [
                Media(row=row, signed=signed)
                for row in found
                if row is not None and row.status == "ready"
            ]
        return await media_of(info, list(self.row.media_ids), owner=author)

    @strawberry.field(description="A post of one video: shown in reelsFeed, counts views.")
    def is_reel(self) -> bool:
        return self.row.is_reel

    @strawberry.field(description="People who watched this reel (null for other posts).")
    async def view_count(self, info: Info) -> int | None:
        if not self.row.is_reel:
            return None
        return await info.context.loaders.posts.view_count.load(self.row.id)

    @strawberry.field(graphql_type=bool, description="Whether the viewer saved the post.")
    def viewer_has_saved(self, info: Info) -> bool | Awaitable[bool]:
        if self.page is not None and self.row.id in self.page.viewer_saved:
            return self.page.viewer_saved[self.row.id]
        return info.context.loaders.posts.viewer_saved.load(self.row.id)

    @strawberry.field(description="Top-level comments, oldest first.")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Comment]:
        return await _comment_page(
            info, owner_id=self.row.id, replies=False, first=first, after=after
        )


@strawberry.type(description="A comment on a post, or a reply to one.")
class Comment(Node):
    row: strawberry.Private[CommentRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Comment", self.row.id)

    @strawberry.field
    def body(self) -> str:
        return self.row.body

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    async def author(self, info: Info) -> UserType | None:
        return await _user(info, self.row.author_id)

    @strawberry.field
    async def post(self, info: Info) -> Post | None:
        row = await info.context.loaders.visibility.post(self.row.post_id)
        return Post(row=row) if row is not None else None

    @strawberry.field
    async def like_count(self, info: Info) -> int:
        return await info.context.loaders.posts.comment_like_count.load(self.row.id)

    @strawberry.field
    async def viewer_has_liked(self, info: Info) -> bool:
        return await info.context.loaders.posts.viewer_liked_comment.load(self.row.id)

    @strawberry.field(description="Replies, oldest first. Replies have no replies of their own.")
    async def replies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Comment]:
        return await _comment_page(
            info, owner_id=self.row.id, replies=True, first=first, after=after
        )


async def _comment_page(
    info: Info, *, owner_id: int, replies: bool, first: int | None, after: str | None
) -> Connection[Comment]:
    limit = page_size(first)
    after_id = decode_cursor(after)
    loaders = info.context.loaders
    if after_id is None and limit < CACHED_LIST_LENGTH:
        # The first page of many threads in one batch (a feed page's comment previews).
        loader = loaders.posts.first_replies if replies else loaders.posts.first_comments
        ids = await loader.load((owner_id, limit + 1))
    else:
        ids = await comments.comment_page_ids(
            info.context.state,
            info.context.sessions,
            owner_id=owner_id,
            replies=replies,
            after_id=after_id,
            limit=limit + 1,
        )
    rows = await loaders.visibility.comments(ids)
    by_id = {row.id: row for row in rows if row is not None}

    async def visible(comment_ids: Sequence[int]) -> list[bool]:
        return [row is not None for row in await loaders.visibility.comments(comment_ids)]

    async def read_after(comment_id: int, count: int) -> list[int]:
        return await comments.comment_page_ids(
            info.context.state,
            info.context.sessions,
            owner_id=owner_id,
            replies=replies,
            after_id=comment_id,
            limit=count,
        )

    return build_connection(
        ids,
        limit=limit,
        cursor_of=lambda comment_id: comment_id,
        node_of=lambda comment_id: Comment(row=by_id[comment_id]) if comment_id in by_id else None,
        has_next=await has_visible_next(
            ids[limit:], visible=visible, read_after=read_after, limit=limit
        ),
    )


def _flatten(selections: Sequence[Selection]) -> list[SelectedField]:
    fields: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            fields.append(selection)
        else:  # fragments: their fields count as if written inline
            fields += _flatten(selection.selections)
    return fields


def _field_names(selected: Sequence[Selection]) -> set[str]:
    """Names of the fields selected on the object a field returns."""
    return {part.name for field in _flatten(selected) for part in _flatten(field.selections)}


def _node_field_names(info: Info) -> set[str]:
    """Names of the fields selected on the posts of a connection (edges.node or nodes)."""
    names: set[str] = set()
    for connection in info.selected_fields:
        for part in _flatten(connection.selections):
            if part.name == "nodes":
                names.update(f.name for f in _flatten(part.selections))
            elif part.name == "edges":
                for edge_field in _flatten(part.selections):
                    if edge_field.name == "node":
                        names.update(f.name for f in _flatten(edge_field.selections))
    return names


def page_fields(info: Info) -> PostFields:
    """What the query asks of each post of the connection being resolved."""
    return _post_fields(_node_field_names(info))


def _post_fields(wanted: set[str]) -> PostFields:
    return PostFields(
        like_count="likeCount" in wanted,
        comment_count="commentCount" in wanted,
        viewer_has_liked="viewerHasLiked" in wanted,
        viewer_has_saved="viewerHasSaved" in wanted,
        media="media" in wanted,
    )


async def read_ahead_posts(
    info: Info, post_ids: Sequence[int], fields: PostFields
) -> PostPageAhead | None:
    """Read ahead what a page of posts needs, in two round trips (``domain/posts/pages.py``)."""
    context = info.context
    return await read_ahead(
        context.state, context.loaders.visibility, post_ids=post_ids, fields=fields
    )


async def _loaded(
    ids: Sequence[int], known: dict[int, T], load: Callable[[list[int]], Awaitable[list[T]]]
) -> dict[int, T]:
    return dict(zip(ids, await known_or_loaded(known, ids, load), strict=True))


async def posts_for_page(
    info: Info,
    rows: Sequence[PostRow],
    ahead: PostPageAhead | None = None,
    *,
    wanted: set[str] | None = None,
) -> dict[int, Post]:
    """Post objects for a page, with the relations the query selected (``wanted``, by
    default those of a connection's posts): what the page's planned read found
    (``ahead``), the rest loaded in batches."""
    wanted = _node_field_names(info) if wanted is None else wanted
    loaders = info.context.loaders
    ahead = ahead or PostPageAhead(facts=KnownFacts())
    ids = [row.id for row in rows]
    author_ids = list(dict.fromkeys(row.author_id for row in rows))

    async def nothing() -> dict[int, Any]:
        return {}

    async def authors() -> dict[int, UserRow | None]:
        return dict(zip(author_ids, await loaders.visibility.users(author_ids), strict=True))

    likes, comments, liked, saved, authors_by_id = await asyncio.gather(
        _loaded(ids, ahead.like_counts, loaders.posts.like_count.load_many)
        if "likeCount" in wanted
        else nothing(),
        _loaded(ids, ahead.comment_counts, loaders.posts.comment_count.load_many)
        if "commentCount" in wanted
        else nothing(),
        _loaded(ids, ahead.viewer_liked, loaders.posts.viewer_liked.load_many)
        if "viewerHasLiked" in wanted
        else nothing(),
        _loaded(ids, ahead.viewer_saved, loaders.posts.viewer_saved.load_many)
        if "viewerHasSaved" in wanted
        else nothing(),
        authors() if "author" in wanted else nothing(),
    )
    page = PostPage(
        like_counts=likes,
        comment_counts=comments,
        viewer_liked=liked,
        viewer_saved=saved,
        authors=authors_by_id,
        media=ahead.media,
    )
    return {row.id: Post(row=row, page=page) for row in rows}


# Reads the ids that come after a post id in a connection's list, this many at most.
ReadAfter = Callable[[int, int], Awaitable[Sequence[int]]]


async def post_connection(
    info: Info,
    ids: list[int],
    *,
    limit: int,
    read_after: ReadAfter,
    cursors: Callable[[int], str] | None = None,
) -> Connection[Post]:
    """A page of post ids (``limit + 1`` of them at most) as a connection of visible posts.
    Cursors are the post ids (keyset paging by id), unless ``cursors`` gives each one.
    ``read_after`` reads on past the page when its next post is hidden, so that
    ``hasNextPage`` counts only posts the viewer may see (``has_visible_next``)."""
    # The one past the page is read ahead too: whether it is visible is hasNextPage.
    ahead = await read_ahead_posts(info, ids, page_fields(info))
    visibility = info.context.loaders.visibility
    rows = await visibility.posts(ids)
    page = await posts_for_page(info, [row for row in rows[:limit] if row is not None], ahead)

    async def visible(post_ids: Sequence[int]) -> list[bool]:
        return [row is not None for row in await visibility.posts(post_ids)]

    has_next = await has_visible_next(
        ids[limit:], visible=visible, read_after=read_after, limit=limit
    )
    if cursors is not None:
        return build_connection(
            ids,
            limit=limit,
            cursor_of=cursors,
            node_of=page.get,
            encode=lambda cursor: cursor,
            has_next=has_next,
        )
    return build_connection(
        ids, limit=limit, cursor_of=lambda post_id: post_id, node_of=page.get, has_next=has_next
    )


async def ranked_post_page(
    info: Info, ranked: list[int], *, first: int | None, after: str | None
) -> Connection[Post]:
    """A page of a ranked list of post ids (reels, Explore): the cursor is the position."""
    limit = page_size(first)
    start = decode_cursor(after)
    offset = 0 if start is None else start + 1
    if offset < 0:
        raise BadUserInput("'after' is not a cursor of this list", field="after")
    position = {post_id: index for index, post_id in enumerate(ranked)}

    async def read_after(post_id: int, count: int) -> list[int]:
        return ranked[position[post_id] + 1 : position[post_id] + 1 + count]

    return await post_connection(
        info,
        ranked[offset : offset + limit + 1],
        limit=limit,
        read_after=read_after,
        cursors=lambda post_id: encode_cursor(position[post_id]),
    )


async def profile_posts(
    info: Info, author: UserRow, *, first: int | None, after: str | None
) -> Connection[Post]:
    limit = page_size(first)

    async def read(before_id: int | None, count: int) -> list[int]:
        return await posts.author_post_ids(
            info.context.state,
            info.context.sessions,
            info.context.loaders.visibility,
            author,
            before_id=before_id,
            limit=count,
        )

    ids = await read(decode_cursor(after), limit + 1)
    return await post_connection(info, ids, limit=limit, read_after=read)


async def resolve_post_node(info: Info, post_id: int) -> Post | None:
    if not any(
        isinstance(selected, SelectedField) and selected.name == "node"
        for selected in info.selected_fields
    ):
        # ``nodes(ids)``: the ids batch through the loaders instead.
        row = await info.context.loaders.visibility.post(post_id)
        return Post(row=row) if row is not None else None
    # A post's page (``node(id)``): what it shows is read ahead with the row.
    wanted = _field_names(info.selected_fields)
    ahead = await read_ahead_posts(info, [post_id], _post_fields(wanted))
    row = await info.context.loaders.visibility.post(post_id)
    if row is None:
        return None
    return (await posts_for_page(info, [row], ahead, wanted=wanted))[row.id]


async def resolve_comment_node(info: Info, comment_id: int) -> Comment | None:
    row = await info.context.loaders.visibility.comment(comment_id)
    return Comment(row=row) if row is not None else None
